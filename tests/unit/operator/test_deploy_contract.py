"""The environment the operator and docker-compose hand the runtime uses only names the runtime
reads (its pydantic Settings), so a renamed variable fails here instead of being silently ignored."""

from typing import Any

import pytest
import yaml
from crd_schema import ROOT

from livedub.contract import env
from livedub.operator.builders.deployment import build_deployment
from livedub.operator.spec import parse_pool_spec

settings_module = pytest.importorskip("livedub.runtime.config")
RUNTIME_ENV = {name.upper() for name in settings_module.Settings.model_fields} | env.LIBRARY


def test_operator_env_names_are_runtime_settings() -> None:
    spec = parse_pool_spec(
        {
            "authTokensSecretRef": {"name": "t"},
            "mt": {"engine": "deepl", "deeplSecretRef": {"name": "d"}, "deeplServerUrl": "https://api.deepl.com"},
            "asr": {"modelPath": "/models/asr"},
            "tts": {"modelPath": "/models/tts"},
            "runtime": {"maxInflight": 4, "artifactsEnabled": True},
        }
    )
    dep = build_deployment("p", "ns", spec, [], 1)
    names = {e["name"] for e in dep["spec"]["template"]["spec"]["containers"][0]["env"]}
    # The issue-12 placement names are set ahead of the runtime reading them (tests/unit/test_contract.py).
    assert names - RUNTIME_ENV == set()


def test_compose_env_names_are_runtime_settings() -> None:
    compose: dict[str, Any] = yaml.safe_load((ROOT / "deploy" / "docker-compose.yml").read_text())
    for name, service in compose["services"].items():
        unknown = set(service["environment"]) - RUNTIME_ENV
        assert not unknown, (name, unknown)
        # Longer than the drain the runtime is allowed, so a stop does not cut fragments.
        assert int(service["stop_grace_period"].rstrip("s")) > int(service["environment"]["DRAIN_TIMEOUT_S"])


def test_runtime_dockerfile_installs_through_the_shared_definition() -> None:
    text = (ROOT / "deploy" / "Dockerfile.runtime").read_text()
    # The engines' system packages come from one list (runtime/apt-packages.txt) via hack/install.sh.
    assert 'RUN bash hack/install.sh /opt/venv "${INSTALL_TARGET}"' in text
    assert "COPY runtime ./runtime" in text and "COPY constraints.txt" in text
    listed = (ROOT / "runtime" / "apt-packages.txt").read_text().split()
    for package in ("rubberband-cli", "ffmpeg", "libsndfile1", "espeak-ng", "apertium", "apertium-eng-spa"):
        assert package in listed
        assert package not in text.replace("apt-packages.txt", ""), f"{package} typed into the Dockerfile again"
    assert 'CMD ["livedub", "serve", "--host", "0.0.0.0", "--port", "8000"]' in text
