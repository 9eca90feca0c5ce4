"""Types are checked with the tests, so CI enforces them: mypy --strict over livedub.runtime and livedub.operator.

The packages, the search path and strictness live in pyproject.toml [tool.mypy]: plain ``mypy`` from the
repo root checks them under their import names through hack/mypy/ (symlinks that mirror the editable
install's package-dir mapping), so ``from livedub.runtime...`` imports resolve to the real modules.
"""

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
#: mypy prints paths as it found them, through the symlinks; map them back to the files to edit.
_MIRROR = "hack/mypy/livedub/"


def test_mypy_strict_is_clean():
    if importlib.util.find_spec("mypy") is None:
        pytest.skip("mypy is not installed (pip install -e '.[dev]')")
    result = subprocess.run([sys.executable, "-m", "mypy"], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, (result.stdout + result.stderr).replace(_MIRROR, "")[-5000:]
