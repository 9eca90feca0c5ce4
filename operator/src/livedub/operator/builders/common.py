"""Names and labels every child of a pool shares."""

from livedub.operator import constants as c


def selector_labels(pool: str) -> dict[str, str]:
    """The Deployment/Service/PDB selector. Never add to it: a Deployment's selector is immutable."""
    return {c.LABEL_NAME: c.APP_NAME, c.LABEL_INSTANCE: pool}


def child_labels(pool: str, component: str) -> dict[str, str]:
    return {
        **selector_labels(pool),
        c.LABEL_COMPONENT: component,
        c.LABEL_MANAGED_BY: c.MANAGER,
        c.LABEL_POOL: pool,
    }


def label_selector_string(pool: str) -> str:
    """The scale subresource's ``status.selector`` and the autoscaler's pod query."""
    return ",".join(f"{k}={v}" for k, v in sorted(selector_labels(pool).items()))


def deployment_name(pool: str) -> str:
    return pool


def service_name(pool: str) -> str:
    return pool


def voices_configmap_name(pool: str) -> str:
    return f"{pool}-voices"


def pdb_name(pool: str) -> str:
    return pool


def metadata(name: str, namespace: str, labels: dict[str, str]) -> dict[str, object]:
    return {"name": name, "namespace": namespace, "labels": dict(labels)}
