"""Apply and delete the rendered manifests with the `kubernetes` client (no kubectl).

Apply is server-side apply (PATCH, application/apply-patch+yaml, field manager `pxtui`, force):
one idempotent request per object that creates or updates it, and the API server merges it with
what other managers own. Objects go in the kustomization's order (namespace and RBAC first, the
workloads last) and are deleted in the reverse order.

The signing-key Secret is special: the base carries no key (one in the repository would be every
cluster's key). Deploy fills it with 32 random bytes when the cluster has no valid key yet and
otherwise leaves it alone, so re-deploying never rotates the key under running pods.
"""

from __future__ import annotations

import base64
import binascii
import copy
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from kubernetes import client as k8s
from kubernetes.client.exceptions import ApiException

from cluster.auth.service_tokens import MIN_KEY_BYTES
from pxtui.cluster_access import REQUEST_TIMEOUT, KubeError, explain

FIELD_MANAGER = "pxtui"
SIGNING_SECRET = "pxtui-signing-key"
SIGNING_KEY_ITEM = "signing.key"

# kind -> (API class, snake-case name in the client's method names)
KINDS: dict[str, tuple[type, str]] = {
    "Namespace": (k8s.CoreV1Api, "namespace"),
    "ServiceAccount": (k8s.CoreV1Api, "service_account"),
    "Secret": (k8s.CoreV1Api, "secret"),
    "ConfigMap": (k8s.CoreV1Api, "config_map"),
    "Service": (k8s.CoreV1Api, "service"),
    "ClusterRole": (k8s.RbacAuthorizationV1Api, "cluster_role"),
    "ClusterRoleBinding": (k8s.RbacAuthorizationV1Api, "cluster_role_binding"),
    "Role": (k8s.RbacAuthorizationV1Api, "role"),
    "RoleBinding": (k8s.RbacAuthorizationV1Api, "role_binding"),
    "Deployment": (k8s.AppsV1Api, "deployment"),
    "DaemonSet": (k8s.AppsV1Api, "daemon_set"),
    "StatefulSet": (k8s.AppsV1Api, "stateful_set"),
    "NetworkPolicy": (k8s.NetworkingV1Api, "network_policy"),
}


@dataclass(frozen=True)
class Outcome:
    kind: str
    name: str
    namespace: str | None
    action: str  # created | configured | kept | deleted | absent

    def __str__(self) -> str:
        where = f" in {self.namespace}" if self.namespace else ""
        return f"{self.kind.lower()}/{self.name}{where} {self.action}"


def _ref(obj: dict[str, Any]) -> tuple[str, str, str | None]:
    meta = obj["metadata"]
    return obj["kind"], meta["name"], meta.get("namespace")


def _method(api: k8s.ApiClient, verb: str, kind: str, namespaced: bool) -> Callable[..., Any]:
    if kind not in KINDS:
        raise KubeError(f"pxtui does not know how to {verb} a {kind}", config=True)
    cls, snake = KINDS[kind]
    return getattr(cls(api), f"{verb}_{'namespaced_' if namespaced else ''}{snake}")


def _describe(verb: str, obj: dict[str, Any]) -> str:
    kind, name, ns = _ref(obj)
    return f"{verb} {kind.lower()}/{name}" + (f" in namespace {ns}" if ns else "")


def _drain(resp: Any) -> int:
    """Read and release a raw response (responses are not deserialized: see apply_object); its status."""
    resp.read()
    resp.release_conn()
    return int(resp.status)


def apply_object(api: k8s.ApiClient, obj: dict[str, Any]) -> str:
    """Server-side apply of one object: "created" (201) or "configured" (200).

    The response body is not turned into the client's typed models: they validate strictly, and a
    delete answers with whatever the server chooses (the object or a Status), which must not fail
    an operation that succeeded.
    """
    kind, name, ns = _ref(obj)
    patch = _method(api, "patch", kind, ns is not None)
    args = (name, ns) if ns is not None else (name,)
    resp = patch(
        *args,
        obj,
        field_manager=FIELD_MANAGER,
        force=True,
        _content_type="application/apply-patch+yaml",
        _request_timeout=REQUEST_TIMEOUT,
        _preload_content=False,
    )
    return "created" if _drain(resp) == 201 else "configured"


def _has_valid_key(api: k8s.ApiClient, namespace: str, name: str) -> bool:
    """Whether the cluster's Secret already holds a usable signing key (False when it does not exist)."""
    try:
        secret = k8s.CoreV1Api(api).read_namespaced_secret(name, namespace, _request_timeout=REQUEST_TIMEOUT)
    except ApiException as e:
        if e.status == 404:
            return False
        raise
    raw = (secret.data or {}).get(SIGNING_KEY_ITEM)
    if not raw:
        return False
    try:
        return len(base64.b64decode(raw, validate=True)) >= MIN_KEY_BYTES
    except (binascii.Error, ValueError):
        return False


def with_new_key(secret: dict[str, Any]) -> dict[str, Any]:
    """The Secret object carrying a fresh random signing key (never printed or logged)."""
    out = copy.deepcopy(secret)
    out["data"] = {SIGNING_KEY_ITEM: base64.b64encode(secrets.token_bytes(MIN_KEY_BYTES)).decode()}
    return out


def deploy(api: k8s.ApiClient, objs: list[dict[str, Any]], report: Callable[[Outcome], None]) -> None:
    """Apply every object in order; the first failure stops the deploy with a KubeError saying which."""
    for obj in objs:
        kind, name, ns = _ref(obj)
        try:
            if kind == "Secret" and name == SIGNING_SECRET:
                if _has_valid_key(api, ns or "", name):
                    report(Outcome(kind, name, ns, "kept"))
                    continue
                obj = with_new_key(obj)
            action = apply_object(api, obj)
        except KubeError:
            raise
        except Exception as e:
            raise explain(e, api, _describe("applying", obj)) from None
        report(Outcome(kind, name, ns, action))


def delete(api: k8s.ApiClient, objs: list[dict[str, Any]], report: Callable[[Outcome], None]) -> None:
    """Delete every object in reverse order; objects already gone are reported, not errors."""
    for obj in reversed(objs):
        kind, name, ns = _ref(obj)
        remove = _method(api, "delete", kind, ns is not None)
        args = (name, ns) if ns is not None else (name,)
        try:
            _drain(
                remove(*args, propagation_policy="Background", _request_timeout=REQUEST_TIMEOUT, _preload_content=False)
            )
        except ApiException as e:
            if e.status == 404:
                report(Outcome(kind, name, ns, "absent"))
                continue
            raise explain(e, api, _describe("deleting", obj)) from None
        except Exception as e:
            raise explain(e, api, _describe("deleting", obj)) from None
        report(Outcome(kind, name, ns, "deleted"))
