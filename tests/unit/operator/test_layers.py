"""The operator's layers point one way: handlers -> builders/scaling -> (nothing of ours but spec,
constants). Builders and the scaling maths stay pure: no kopf, no API client, no handlers."""

import ast
from pathlib import Path

import pytest

OPERATOR = Path(__file__).resolve().parents[3] / "operator"
PURE = sorted([*OPERATOR.glob("builders/*.py"), *OPERATOR.glob("scaling/*.py"), OPERATOR / "spec.py"])
FORBIDDEN = (
    "kopf",
    "kubernetes_asyncio",
    "livedub.operator.client",
    "livedub.operator.handlers",
    "livedub.operator.main",
    "livedub.runtime",
)


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


@pytest.mark.parametrize("path", PURE, ids=lambda p: str(p.relative_to(OPERATOR)))
def test_pure_modules_import_no_io_layer(path: Path) -> None:
    bad = {name for name in _imports(path) for prefix in FORBIDDEN if name == prefix or name.startswith(prefix + ".")}
    assert not bad, f"{path.name} imports {bad}"


def test_operator_never_imports_the_runtime() -> None:
    for path in OPERATOR.rglob("*.py"):
        assert not any(n.startswith("livedub.runtime") for n in _imports(path)), path


def test_no_top_level_init() -> None:
    # A top-level operator/__init__.py would shadow the stdlib `operator` from the repo root.
    assert not (OPERATOR / "__init__.py").exists()
