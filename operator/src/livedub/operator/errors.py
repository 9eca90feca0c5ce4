"""The operator's two outcomes, as kopf understands them.

A bad spec will not get better by retrying: :class:`InvalidSpecError` is permanent and its message
goes into the pool's status. An API hiccup is temporary: :class:`KubernetesApiError` retries later.
An API refusal that retrying cannot fix (403 Forbidden: RBAC; 422 Invalid and 400: the object we
sent) is :class:`KubernetesApiRejected`, permanent, so kopf does not repeat it every 10 s.
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


#: Statuses a retry cannot change: the request itself is wrong or not allowed.
PERMANENT_STATUSES = frozenset({400, 403, 422})


class KubernetesApiRejected(kopf.PermanentError):
    """The API refused the request for good (RBAC, validation); the message names the call."""

    def __init__(self, message: str, *, status: int) -> None:
        super().__init__(message)
        self.status = status
