"""Real-cluster tests: skipped unless KUBECONFIG is set AND the run opts in.

Opt in with ``LIVEDUB_E2E=1`` (or ``--run-e2e`` when pytest is given this folder). They create
objects in ``LIVEDUB_E2E_NAMESPACE`` (default ``livedub-e2e``, which must exist) and delete them.
The operator must already be installed (``hack/kind-e2e.sh`` does all of it on kind).
"""

import contextlib
import os

import pytest


def pytest_addoption(parser: pytest.Parser) -> None:
    # ValueError: a conftest higher up already defines the option.
    with contextlib.suppress(ValueError):
        parser.addoption("--run-e2e", action="store_true", default=False, help="run real-cluster tests")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    opted_in = config.getoption("--run-e2e", default=False) or os.environ.get("LIVEDUB_E2E") == "1"
    reason = None
    if not os.environ.get("KUBECONFIG"):
        reason = "needs KUBECONFIG pointing at a cluster with the operator installed"
    elif not opted_in:
        reason = "real-cluster test: set LIVEDUB_E2E=1 (or pass --run-e2e)"
    for item in items:
        if "e2e" in item.keywords and reason:
            item.add_marker(pytest.mark.skip(reason=reason))
