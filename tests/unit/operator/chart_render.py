"""Render the chart offline (helm-python-sdk, the Helm v4 SDK): shared by the chart tests."""

from typing import Any

import pytest
import yaml
from crd_schema import ROOT

helm = pytest.importorskip("helm_python", reason="helm-python-sdk not installed")

CHART = ROOT / "charts" / "livedub-operator"


def render(values: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    chart = helm.Chart.load(str(CHART))
    rendered = chart.render(values, name="livedub", namespace="livedub-system", is_install=True)
    docs = []
    for path, text in rendered.items():
        if path.endswith(".txt"):
            continue
        docs += [d for d in yaml.safe_load_all(text) if d]
    return docs


def by_kind(docs: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [d for d in docs if d["kind"] == kind]
