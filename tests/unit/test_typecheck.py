"""Types are checked with the tests, so CI enforces them: mypy --strict over the runtime, the operator and
their contract. The packages, the search path (each distribution's src/) and strictness live in the root
pyproject.toml [tool.mypy]: plain ``mypy`` from the repo root, no symlinks or path tricks.
"""

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def test_mypy_strict_is_clean():
    if importlib.util.find_spec("mypy") is None:
        pytest.skip("mypy is not installed (hack/install.sh VENV dev)")
    result = subprocess.run([sys.executable, "-m", "mypy"], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, (result.stdout + result.stderr)[-5000:]
    # All three packages were checked, not a vacuous run over nothing.
    checked = int(result.stdout.rsplit(" in ", 1)[1].split()[0])
    assert checked >= 70, result.stdout
