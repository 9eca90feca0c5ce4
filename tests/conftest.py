"""Shared fixtures for every test tier."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from fakes.deepl_server import FakeDeepL
from support.data import FLEURS, SHARED_DATA


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not FLEURS.is_dir():
        pytest.skip(f"shared evaluation data not found at {SHARED_DATA}")
    return SHARED_DATA


@pytest.fixture(scope="session")
def deepl_server() -> Iterator[FakeDeepL]:
    """One local DeepL-compatible server for the whole run (tests/fakes/deepl_server.py)."""
    with FakeDeepL() as fake:
        yield fake


@pytest.fixture
def fake_deepl(deepl_server: FakeDeepL) -> FakeDeepL:
    """The shared DeepL fake, reset to a fresh state for this test."""
    deepl_server.reset()
    return deepl_server
