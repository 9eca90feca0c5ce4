"""The layers of both components, as import-linter contracts (root pyproject.toml [tool.importlinter]),
checked with the tests so CI enforces them. Broken contracts print the import chain that breaks them."""

import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def test_import_linter_contracts_are_kept() -> None:
    lint = shutil.which("lint-imports", path=str(Path(sys.executable).parent)) or shutil.which("lint-imports")
    if lint is None:
        pytest.skip("import-linter is not installed (hack/install.sh VENV dev)")
    result = subprocess.run([lint], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout[-5000:]
    # Every configured contract was checked and kept (a contract over modules it cannot find would
    # not be counted), over the whole of both components.
    contracts = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]["contracts"]
    assert f"Contracts: {len(contracts)} kept, 0 broken." in result.stdout, result.stdout[-2000:]
    analysed = int(re.search(r"Analyzed (\d+) files", result.stdout).group(1))  # type: ignore[union-attr]
    assert analysed >= 100, result.stdout[-2000:]
