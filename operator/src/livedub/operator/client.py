"""A small, dict-in dict-out Kubernetes client for the handlers.

Builders produce plain manifest dicts, so the client speaks plain dicts too: it uses
kubernetes_asyncio only for configuration (kubeconfig or in-cluster service account, TLS, tokens)
and its generic ``call_api`` transport, never its typed models. Every failure leaves here as
:class:`KubernetesApiError` (retryable) or, for 400/403/422, :class:`KubernetesApiRejected`
(permanent), with the API's status code kept, chaining the cause.
"""

import contextlib
import os
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import kopf
from kubernetes_asyncio import client as k8s
from kubernetes_asyncio import config as k8s_config
from kubernetes_asyncio.config.config_exception import ConfigException

from livedub.operator.errors import PERMANENT_STATUSES, KubernetesApiError, KubernetesApiRejected

MERGE_PATCH = "application/merge-patch+json"


@dataclass(frozen=True)
class Kind:
    """Where a resource lives in the API: ``/api/v1`` or ``/apis/<group>/<version>``, and its plural."""

    prefix: str
    plural: str

    def path(self, namespace: str | None, name: str | None = None, subresource: str | None = None) -> str:
        # namespace None: a cluster-scoped resource (the kopf peering object).
        parts = [self.prefix, *(["namespaces", namespace] if namespace else []), self.plural]
        parts += [p for p in (name, subresource) if p]
        return "/".join(parts)


DEPLOYMENTS = Kind("/apis/apps/v1", "deployments")
SERVICES = Kind("/api/v1", "services")
CONFIGMAPS = Kind("/api/v1", "configmaps")
PODS = Kind("/api/v1", "pods")
PVCS = Kind("/api/v1", "persistentvolumeclaims")
PDBS = Kind("/apis/policy/v1", "poddisruptionbudgets")
POOLS = Kind("/apis/dubbing.livedub.io/v1alpha1", "dubbingpools")
VOICES = Kind("/apis/dubbing.livedub.io/v1alpha1", "voiceprofiles")
CLUSTER_PEERINGS = Kind("/apis/kopf.dev/v1", "clusterkopfpeerings")

_configuration: k8s.Configuration | None = None


async def load_configuration(*, reload: bool = False) -> k8s.Configuration:
    """In-cluster service account first, then KUBECONFIG/~/.kube/config; loaded once."""
    global _configuration
    if _configuration is None or reload:
        conf = k8s.Configuration()
        try:
            k8s_config.load_incluster_config(client_configuration=conf)  # type: ignore[no-untyped-call]  # untyped lib
        except ConfigException:
            # KUBECONFIG is read now, not when kubernetes_asyncio was imported (its default).
            path = os.environ.get("KUBECONFIG", "").split(os.pathsep)[0] or None
            await k8s_config.load_kube_config(config_file=path, client_configuration=conf)
        _configuration = conf
    return _configuration


def connection_info(conf: k8s.Configuration) -> kopf.ConnectionInfo:
    """The same credentials for kopf's own API client, so both clients always agree."""
    keys = conf.api_key or {}
    auth = keys.get("BearerToken") or keys.get("authorization")
    scheme, token = auth.split(" ", 1) if auth and " " in auth else ("Bearer", auth)
    return kopf.ConnectionInfo(
        server=str(conf.host),
        ca_path=conf.ssl_ca_cert,
        insecure=not conf.verify_ssl,
        scheme=scheme if token else None,
        token=token,
        certificate_path=conf.cert_file,
        private_key_path=conf.key_file,
    )


def reset_configuration() -> None:
    """Forget the loaded configuration (tests start a fresh API server per test)."""
    global _configuration
    _configuration = None


class Client:
    def __init__(self, api: k8s.ApiClient) -> None:
        self._api = api

    async def _call(
        self,
        method: str,
        path: str,
        *,
        body: Any = None,
        query: list[Any] | None = None,
        content_type: str = "application/json",
    ) -> Any:
        try:
            return await self._api.call_api(
                path,
                method,
                query_params=query or [],
                header_params={"Content-Type": content_type, "Accept": "application/json"},
                body=body,
                auth_settings=["BearerToken"],
                response_types_map={200: "object", 201: "object", 202: "object"},
                _return_http_data_only=True,
            )
        except k8s.ApiException as exc:
            message = f"{method} {path}: {exc.status} {exc.reason}"
            if exc.status in PERMANENT_STATUSES:
                raise KubernetesApiRejected(message, status=exc.status) from exc
            raise KubernetesApiError(message, status=exc.status) from exc
        except (OSError, TimeoutError) as exc:
            raise KubernetesApiError(f"{method} {path}: {exc!r}") from exc

    async def get(self, kind: Kind, namespace: str, name: str) -> dict[str, Any] | None:
        try:
            result: dict[str, Any] = await self._call("GET", kind.path(namespace, name))
        except KubernetesApiError as exc:
            if exc.status == 404:
                return None
            raise
        return result

    async def list(self, kind: Kind, namespace: str, selector: str | None = None) -> list[dict[str, Any]]:
        query = [("labelSelector", selector)] if selector else []
        result = await self._call("GET", kind.path(namespace), query=query)
        return list(result.get("items") or [])

    async def create(self, kind: Kind, namespace: str | None, body: dict[str, Any]) -> dict[str, Any]:
        result: dict[str, Any] = await self._call("POST", kind.path(namespace), body=body)
        return result

    async def patch(
        self, kind: Kind, namespace: str, name: str, body: dict[str, Any], subresource: str | None = None
    ) -> dict[str, Any]:
        path = kind.path(namespace, name, subresource)
        result: dict[str, Any] = await self._call("PATCH", path, body=body, content_type=MERGE_PATCH)
        return result

    async def delete(self, kind: Kind, namespace: str, name: str) -> None:
        try:
            await self._call("DELETE", kind.path(namespace, name))
        except KubernetesApiError as exc:
            if exc.status != 404:
                raise


@contextlib.asynccontextmanager
async def connect() -> AsyncIterator[Client]:
    conf = await load_configuration()
    async with k8s.ApiClient(configuration=conf) as api:
        yield Client(api)
