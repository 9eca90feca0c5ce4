"""Fixtures for the operator integration tests; the machinery lives in kopf_harness.py."""

import json
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from kopf_harness import Background, Cluster, MetricsPod

from livedub.operator import client as operator_client


@pytest.fixture
def background() -> Iterator[Background]:
    bg = Background()
    yield bg
    bg.close()


@pytest.fixture
def cluster(background: Background, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Cluster]:
    cluster = Cluster(background)
    background.run(cluster.start())
    kubeconfig = {
        "apiVersion": "v1",
        "kind": "Config",
        "current-context": "kmock",
        "clusters": [{"name": "kmock", "cluster": {"server": cluster.url}}],
        "users": [{"name": "kmock", "user": {"token": "test"}}],
        "contexts": [{"name": "kmock", "context": {"cluster": "kmock", "user": "kmock"}}],
    }
    (tmp_path / "kubeconfig").write_text(json.dumps(kubeconfig))
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "kubeconfig"))
    operator_client.reset_configuration()
    yield cluster
    background.run(cluster.stop())
    operator_client.reset_configuration()


@pytest.fixture
def metrics_pods(background: Background) -> Iterator[Callable[[], MetricsPod]]:
    started: list[MetricsPod] = []

    def start() -> MetricsPod:
        pod = MetricsPod(background)
        background.run(pod.start())
        started.append(pod)
        return pod

    yield start
    for pod in started:
        background.run(pod.stop())


@pytest.fixture
def operator(cluster: Cluster) -> Iterator[Any]:
    from kopf.testing import KopfRunner

    args = ["run", "-A", "--standalone", "--verbose", "-m", "livedub.operator.main"]
    with KopfRunner(args, timeout=30) as runner:
        yield runner
    assert runner.exit_code == 0, runner.output
    assert runner.exception is None, runner.output
