"""Shared fixtures for every test tier."""

from __future__ import annotations

from pathlib import Path

import pytest

from support.data import FLEURS, SHARED_DATA


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not FLEURS.is_dir():
        pytest.skip(f"shared evaluation data not found at {SHARED_DATA}")
    return SHARED_DATA
