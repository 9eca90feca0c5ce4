"""Every example manifest validates against its CRD; invalid specs are rejected with the CRD's
messages; the operator's constants and defaults match the CRD YAML."""

from pathlib import Path
from typing import Any

import pytest
import yaml
from crd_schema import ROOT, apply_defaults, load_crds, schema_of, validate

from livedub.operator import constants as c
from livedub.operator.spec import PoolSpec, VoiceSpec

EXAMPLES = sorted((ROOT / "deploy" / "examples").glob("*.yaml"))
OURS = {c.GROUP, "kopf.dev"}


def _docs(path: Path) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d and d["apiVersion"].split("/")[0] in OURS]


def test_examples_exist() -> None:
    kinds = {d["kind"] for p in EXAMPLES for d in _docs(p)}
    assert {"DubbingPool", "VoiceProfile"} <= kinds


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_example_validates(path: Path) -> None:
    for doc in _docs(path):
        assert validate(doc) == [], doc["metadata"]["name"]


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_example_parses_in_operator(path: Path) -> None:
    for doc in _docs(path):
        model = PoolSpec if doc["kind"] == "DubbingPool" else VoiceSpec
        model.model_validate(doc["spec"])


TOKENS = {"authTokensSecretRef": {"name": "workers"}}


def pool(**spec: Any) -> dict[str, Any]:
    return {"apiVersion": c.API_VERSION, "kind": "DubbingPool", "metadata": {"name": "p"}, "spec": {**TOKENS, **spec}}


def voice(**spec: Any) -> dict[str, Any]:
    return {"apiVersion": c.API_VERSION, "kind": "VoiceProfile", "metadata": {"name": "v"}, "spec": spec}


@pytest.mark.parametrize(
    ("obj", "expected"),
    [
        ({**pool(), "spec": {}}, "'authTokensSecretRef' is a required property"),
        (pool(minReplicas=5, maxReplicas=2), "minReplicas must be less than or equal to maxReplicas"),
        (pool(replicas=9, maxReplicas=4), "replicas must lie between"),
        (pool(mt={"engine": "deepl"}), "mt.engine deepl needs mt.deeplSecretRef"),
        (pool(asr={"modelSize": "huge"}), "'huge' is not one of"),
        (pool(autoscaling={"maxStreamsPerPod": 0}), "less than the minimum"),
        (pool(autoscaling={"targetUtilization": 0}), "less than the minimum"),
        (pool(autoscaling={"backpressureSeverity": "extreme"}), "is not one of"),
        (pool(resources={"gpu": 9}), "greater than the maximum"),
        (pool(languages={"targets": ["Spanish"]}), "does not match"),
        (pool(service={"type": "ExternalName"}), "is not one of"),
        (pool(topologySpreadConstraints=[{"maxSkew": 1, "topologyKey": "zone"}]), "'whenUnsatisfiable' is a required"),
        (
            pool(topologySpreadConstraints=[{"maxSkew": 0, "topologyKey": "z", "whenUnsatisfiable": "ScheduleAnyway"}]),
            "less than the minimum",
        ),
        (pool(affinity=[]), "is not of type 'object'"),
        (voice(language="es"), "'gender' is a required property"),
        (voice(language="es", gender="female", referenceAudio={}), "set exactly one of"),
        (
            voice(
                language="es",
                gender="female",
                referenceAudio={"url": "https://x/a.wav", "configMapKeyRef": {"name": "a", "key": "b"}},
            ),
            "set exactly one of",
        ),
        (voice(language="es", gender="female", referenceAudio={"url": "ftp://x/a.wav"}), "does not match"),
    ],
)
def test_invalid_specs_are_rejected(obj: dict[str, Any], expected: str) -> None:
    errors = validate(obj)
    assert any(expected in e for e in errors), errors


def test_minimal_pool_is_valid_and_defaulted() -> None:
    assert validate(pool()) == []
    spec = apply_defaults(schema_of(load_crds()[f"{c.GROUP}/DubbingPool"]), pool())["spec"]
    assert spec["autoscaling"]["targetUtilization"] == 0.85
    assert "maxStreamsPerPod" not in spec["autoscaling"]  # per device, in the operator
    assert spec["service"]["sessionAffinity"] == "None"
    assert spec["asr"]["modelSize"] == "base"


def _meaningful(value: Any) -> Any:
    """Drop None and empty collections: the CRD leaves those unset where the model has empties."""
    if isinstance(value, dict):
        cleaned = {k: _meaningful(v) for k, v in value.items()}
        return {k: v for k, v in cleaned.items() if v not in (None, {}, [])}
    return value


@pytest.mark.parametrize(
    ("kind", "model", "minimal"),
    [
        ("DubbingPool", PoolSpec, TOKENS),
        ("VoiceProfile", VoiceSpec, {"language": "es", "gender": "male"}),
    ],
)
def test_operator_defaults_match_crd_defaults(kind: str, model: Any, minimal: dict[str, Any]) -> None:
    # The operator re-applies defaults for servers that did not (kmock, old objects): they must agree.
    schema = schema_of(load_crds()[f"{c.GROUP}/{kind}"])["properties"]["spec"]
    from_crd = _meaningful(apply_defaults(schema, minimal))
    from_model = _meaningful(model.model_validate(minimal).model_dump(by_alias=True, mode="json"))
    assert from_model == from_crd


def test_constants_match_crds() -> None:
    crds = load_crds()
    pool_crd, voice_crd = crds[f"{c.GROUP}/{c.POOL_KIND}"], crds[f"{c.GROUP}/{c.VOICE_KIND}"]
    assert pool_crd["spec"]["names"]["plural"] == c.POOL_PLURAL
    assert voice_crd["spec"]["names"]["plural"] == c.VOICE_PLURAL
    for crd in (pool_crd, voice_crd):
        assert [v["name"] for v in crd["spec"]["versions"]] == [c.VERSION]
        assert crd["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"
    scale = pool_crd["spec"]["versions"][0]["subresources"]["scale"]
    assert scale == {
        "specReplicasPath": ".spec.replicas",
        "statusReplicasPath": ".status.replicas",
        "labelSelectorPath": ".status.selector",
    }
    columns = {col["name"] for col in pool_crd["spec"]["versions"][0]["additionalPrinterColumns"]}
    assert {"Desired", "Ready", "Phase", "Age"} <= columns
