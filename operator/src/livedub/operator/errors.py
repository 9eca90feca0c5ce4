"""The operator's two outcomes, as kopf understands them.

A bad spec will not get better by retrying: :class:`InvalidSpecError` is permanent and its message
goes into the pool's status. An API hiccup is temporary: :class:`KubernetesApiError` retries later.
Client-library exceptions are wrapped here so handlers never depend on the client's types.
"""

import kopf


class InvalidSpecError(kopf.PermanentError):
    """The spec cannot be reconciled as written; the message says what to change."""


class KubernetesApiError(kopf.TemporaryError):
    """A Kubernetes API call failed in a way that may pass (conflict, 5xx, timeout)."""

    def __init__(self, message: str, *, status: int | None = None, delay: float = 10.0) -> None:
        super().__init__(message, delay=delay)
        self.status = status
