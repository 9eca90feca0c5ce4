"""The runtime keeps the promises the operator relies on (livedub.contract): a rename on either side
fails here, instead of an autoscaler that silently reads zeros or a setting that is silently ignored."""

from prometheus_client.parser import text_string_to_metric_families

from livedub.contract import env, metrics
from livedub.operator.builders.deployment import build_deployment
from livedub.operator.spec import parse_pool_spec
from livedub.runtime.config import Settings
from livedub.runtime.metrics import Metrics


def _exposed() -> set[str]:
    m = Metrics()
    m.backpressure.labels(severity="high").inc()
    m.rejected.labels(code="BACKPRESSURE_EXCEEDED").inc()
    return {sample.name for family in text_string_to_metric_families(m.render().decode()) for sample in family.samples}


def test_runtime_exposes_every_metric_the_operator_reads() -> None:
    assert metrics.READ_BY_OPERATOR - _exposed() == set()


def test_every_variable_the_operator_may_set_is_read_by_the_runtime() -> None:
    runtime_env = {name.upper() for name in Settings.model_fields}
    assert env.SET_BY_OPERATOR - env.LIBRARY - runtime_env == set()


def test_the_builder_sets_only_contract_variables() -> None:
    spec = parse_pool_spec(
        {
            "authTokensSecretRef": {"name": "t"},
            "mt": {"engine": "deepl", "deeplSecretRef": {"name": "d"}, "deeplServerUrl": "https://api.deepl.com"},
            "asr": {"modelPath": "/models/asr"},
            "tts": {"modelPath": "/models/tts", "device": "cpu"},
            "resources": {"cpu": "4"},
            "runtime": {"maxInflight": 4, "artifactsEnabled": True},
        }
    )
    container = build_deployment("p", "ns", spec, [], 1)["spec"]["template"]["spec"]["containers"][0]
    names = {e["name"] for e in container["env"]}
    assert names - env.SET_BY_OPERATOR == set()
    assert {env.TTS_CPU_THREADS, env.DEEPL_AUTH_KEY, env.ASR_MODEL_PATH} <= names


def test_the_in_flight_defaults_the_operator_sizes_from_are_the_runtimes() -> None:
    defaults = Settings(_env_file=None)
    assert defaults.max_inflight == env.DEFAULT_STREAM_INFLIGHT
    assert defaults.max_pod_inflight == env.DEFAULT_POD_INFLIGHT
