"""Tests of the production engines (torch, coqui-tts, demucs): skip where not installed, fail in CI.

``make test`` runs them in ``.venv-production``, built from the production install definition, with
``LIVEDUB_PRODUCTION_TESTS=1``: there a missing engine is a broken install, not a reason to skip.
"""

from __future__ import annotations

import os

import pytest


def require(module: str, why: str = "") -> None:
    if os.environ.get("LIVEDUB_PRODUCTION_TESTS") == "1":
        __import__(module)
    else:
        pytest.importorskip(module, reason=why or f"{module} is not installed (these tests run in .venv-production)")
