"""Three distributions under one import namespace, and nothing that shadows the standard library.

livedub-runtime (runtime/), livedub-operator (operator/) and livedub-contract (runtime/contract/) each
install a sub-package of ``livedub``; ``livedub`` itself is a namespace package that none of them owns,
so any subset can be installed side by side (the operator image has no runtime at all).
"""

import importlib.metadata as md
import importlib.util
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DISTRIBUTIONS = {
    "livedub-runtime": ROOT / "runtime",
    "livedub-operator": ROOT / "operator",
    "livedub-contract": ROOT / "runtime" / "contract",
}
SPEECH_PACKAGES = {"faster-whisper", "ctranslate2", "onnxruntime", "kokoro-onnx", "torch", "coqui-tts"}


def _project(folder: Path) -> dict[str, object]:
    project: dict[str, object] = tomllib.loads((folder / "pyproject.toml").read_text())["project"]
    return project


def _names(requirements: object) -> set[str]:
    assert isinstance(requirements, list)
    return {str(r).split(";")[0].split("[")[0].split("=")[0].split("<")[0].split(">")[0].strip() for r in requirements}


def test_livedub_is_a_namespace_package_nobody_owns() -> None:
    spec = importlib.util.find_spec("livedub")
    assert spec is not None and spec.origin in (None, "namespace"), spec
    for folder in DISTRIBUTIONS.values():
        assert not (folder / "src" / "livedub" / "__init__.py").exists(), folder
    for name in DISTRIBUTIONS:
        files = md.distribution(name).files or []
        assert not any(str(f).replace("\\\\", "/") == "livedub/__init__.py" for f in files), name


def test_each_distribution_installs_its_own_package() -> None:
    for name, package in (
        ("livedub-runtime", "livedub.runtime"),
        ("livedub-operator", "livedub.operator"),
        ("livedub-contract", "livedub.contract"),
    ):
        spec = importlib.util.find_spec(package)
        assert spec is not None and spec.origin is not None, package
        assert Path(spec.origin).resolve().is_relative_to(DISTRIBUTIONS[name] / "src"), (package, spec.origin)


def test_console_scripts_come_from_their_component() -> None:
    scripts = {ep.name: ep for ep in md.entry_points(group="console_scripts") if ep.name.startswith("livedub")}
    assert scripts["livedub"].value == "livedub.runtime.cli:main"
    assert scripts["livedub"].dist is not None and scripts["livedub"].dist.name == "livedub-runtime"
    assert scripts["livedub-operator"].value == "livedub.operator.cli:main"
    assert scripts["livedub-operator"].dist is not None and scripts["livedub-operator"].dist.name == "livedub-operator"


def test_the_operator_declares_no_speech_package() -> None:
    operator = _names(_project(DISTRIBUTIONS["livedub-operator"])["dependencies"])
    assert not operator & SPEECH_PACKAGES
    assert "livedub-runtime" not in operator and "livedub-contract" in operator
    assert _names(_project(DISTRIBUTIONS["livedub-contract"])["dependencies"]) == set()
    # The runtime's speech models are its base dependencies (the embedded default), not an extra.
    assert {"faster-whisper", "kokoro-onnx"} <= _names(_project(DISTRIBUTIONS["livedub-runtime"])["dependencies"])


@pytest.mark.parametrize("cwd", [ROOT, ROOT / "operator", ROOT / "runtime"], ids=["root", "operator", "runtime"])
def test_stdlib_operator_is_not_shadowed(cwd: Path) -> None:
    code = "import operator, sys; assert operator.add(2, 3) == 5; print(operator.__file__)"
    out = subprocess.run([sys.executable, "-c", code], cwd=cwd, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert "livedub" not in out.stdout and str(ROOT) not in out.stdout, out.stdout


def test_every_pin_is_exact_and_used_by_every_install() -> None:
    lines = [line for line in (ROOT / "constraints.txt").read_text().splitlines() if line and line[0] != "#"]
    assert lines and all("==" in line and "+" not in line for line in lines), [x for x in lines if "==" not in x]
    install = (ROOT / "hack" / "install.sh").read_text()
    assert '-c "$CONSTRAINTS"' in install
    for dockerfile in ("Dockerfile.runtime", "Dockerfile.operator"):
        text = (ROOT / "deploy" / dockerfile).read_text()
        assert "bash hack/install.sh /opt/venv" in text, dockerfile
        assert "pip install" not in text, f"{dockerfile} installs packages outside hack/install.sh"
