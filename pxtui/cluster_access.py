"""Reach a Kubernetes cluster with the `kubernetes` client: kubeconfig, clear errors, port-forward.

`pxtui live|run|status --cluster CONTEXT` talks to the in-cluster broker through
`vizier_port_forward`, which listens on a loopback port and carries each connection made to it over
its own websocket to the pxtui-vizier pod's port 51400 (the API server's pods/portforward, the same
path `kubectl port-forward` takes, without kubectl). gRPC keeps one HTTP/2 connection, so one
websocket serves a whole session.
"""

from __future__ import annotations

import ast
import contextlib
import json
import logging
import os
import re
import socket
import threading
from collections.abc import Iterator
from typing import Any

from kubernetes import client as k8s
from kubernetes import config as k8s_config
from kubernetes.client.exceptions import ApiException
from kubernetes.config.config_exception import ConfigException
from kubernetes.stream import portforward
from urllib3.exceptions import HTTPError as Urllib3Error

log = logging.getLogger(__name__)

VIZIER_PORT = 51400
VIZIER_SELECTOR = "app.kubernetes.io/name=pxtui-vizier"
DEFAULT_NAMESPACE = "pxtui"
REQUEST_TIMEOUT = (5.0, 30.0)  # (connect, read) seconds for each API call


class KubeError(Exception):
    """A cluster operation that failed for a reason the user can act on.

    `config` is True when the problem is the local kubeconfig (a usage error), False when the API
    server could not be reached or refused the request.
    """

    def __init__(self, message: str, config: bool = False) -> None:
        super().__init__(message)
        self.config = config


def api_client(context: str | None) -> k8s.ApiClient:
    """An ApiClient for `context` (None: the kubeconfig's current context), from KUBECONFIG or ~/.kube/config."""
    # Read KUBECONFIG now: the client's default is frozen when the kubernetes module is imported.
    config_file = os.environ.get("KUBECONFIG") or "~/.kube/config"
    try:
        contexts, current = k8s_config.list_kube_config_contexts(config_file)
    except ConfigException as e:
        raise KubeError(
            f"no usable Kubernetes configuration: {e} (set KUBECONFIG or create ~/.kube/config)", config=True
        ) from None
    names = [c["name"] for c in contexts or []]
    if context is not None and context not in names:
        raise KubeError(
            f"context {context!r} is not in the kubeconfig; it has: {', '.join(names) or 'none'}", config=True
        )
    if context is None and not current:
        raise KubeError("the kubeconfig has no current context: pass --context NAME", config=True)
    try:
        cfg = k8s.Configuration()
        k8s_config.load_kube_config(config_file, context=context, client_configuration=cfg)
    except (ConfigException, OSError, ValueError) as e:
        raise KubeError(
            f"cannot load context {context or current['name']!r} from the kubeconfig: {e}", config=True
        ) from None
    cfg.retries = 1
    return k8s.ApiClient(cfg)


def server_of(api: k8s.ApiClient) -> str:
    return str(api.configuration.host)


def explain(e: Exception, api: k8s.ApiClient, action: str) -> KubeError:
    """Turn a client exception into one sentence: what was being done, where, and why it failed."""
    where = server_of(api)
    if isinstance(e, ApiException):
        message = _status_message(e)
        if e.status == 401:
            return KubeError(f"{action}: the API server at {where} refused the credentials (401): {message}")
        if e.status == 403:
            return KubeError(f"{action}: forbidden by the API server at {where}: {message}")
        if e.status == 0:  # websocket set-up failures come back as status 0 with the reason in text
            return _explain_handshake(str(e.reason), where, action)
        return KubeError(f"{action}: the API server at {where} answered {e.status} {e.reason}: {message}")
    if isinstance(e, Urllib3Error | OSError):
        return KubeError(f"{action}: cannot reach the Kubernetes API server at {where}: {_root_cause(e)}")
    return KubeError(f"{action}: {e}")


def _explain_handshake(reason: str, where: str, action: str) -> KubeError:
    """websocket-client's "Handshake status 403 Forbidden -+-+- {headers} -+-+- {body}" in one sentence."""
    parts = reason.split(" -+-+- ")
    m = re.match(r"Handshake status (\d+)", parts[0])
    if not m:
        return KubeError(f"{action}: {reason} (API server {where})")
    code, message = int(m.group(1)), parts[0].removeprefix("Handshake status ")
    body = parts[-1] if len(parts) >= 3 else ""
    with contextlib.suppress(ValueError, SyntaxError):
        if body.startswith(("b'", 'b"')):
            body = ast.literal_eval(body).decode(errors="replace")
    with contextlib.suppress(ValueError, TypeError):
        doc = json.loads(body)
        if isinstance(doc, dict) and doc.get("message"):
            message = f"{code}: {doc['message']}"
    if code == 403:
        return KubeError(f"{action}: forbidden by the API server at {where} ({message})")
    if code == 401:
        return KubeError(f"{action}: the API server at {where} refused the credentials ({message})")
    return KubeError(f"{action}: the API server at {where} refused the websocket ({message})")


def _status_message(e: ApiException) -> str:
    with contextlib.suppress(TypeError, ValueError, AttributeError):
        doc = json.loads(e.body)
        if isinstance(doc, dict) and doc.get("message"):
            return str(doc["message"])
    return str(e.reason or "")


def _root_cause(e: BaseException) -> str:
    reason = getattr(e, "reason", None)
    while isinstance(reason, BaseException) and getattr(reason, "reason", None) is not None:
        reason = reason.reason  # type: ignore[attr-defined]
    return str(reason or e)


def find_ready_pod(core: k8s.CoreV1Api, namespace: str, selector: str = VIZIER_SELECTOR) -> str:
    """The name of a Running, Ready pod matching `selector`; KubeError saying why when there is none."""
    pods = core.list_namespaced_pod(namespace, label_selector=selector, _request_timeout=REQUEST_TIMEOUT).items
    if not pods:
        raise KubeError(
            f"no pod labelled {selector} in namespace {namespace!r} (is pxtui deployed there? "
            f"`pxtui deploy --namespace {namespace}`)"
        )
    for p in pods:
        ready = any(c.type == "Ready" and c.status == "True" for c in (p.status.conditions or []))
        if p.status.phase == "Running" and ready:
            return str(p.metadata.name)
    states = ", ".join(f"{p.metadata.name} ({p.status.phase})" for p in pods)
    raise KubeError(f"no ready {selector} pod in namespace {namespace!r}: {states}")


class PortForwarder:
    """Listens on 127.0.0.1:<free port>; each accepted connection gets its own websocket to the pod."""

    def __init__(self, core: k8s.CoreV1Api, namespace: str, pod: str, port: int) -> None:
        self.core, self.namespace, self.pod, self.port = core, namespace, pod, port
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._closed = threading.Event()
        self._conns: set[socket.socket] = set()
        self._lock = threading.Lock()
        self._accepter = threading.Thread(target=self._accept_loop, name="pxtui-port-forward", daemon=True)
        self.last_error: str | None = None

    @property
    def address(self) -> str:
        host, port = self._listener.getsockname()[:2]
        return f"{host}:{port}"

    def open_stream(self) -> Any:
        """A websocket to the pod's port; raises the client's exception when the API refuses it."""
        return portforward(
            self.core.connect_get_namespaced_pod_portforward, self.pod, self.namespace, ports=str(self.port)
        )

    def start(self) -> None:
        self._accepter.start()

    def close(self) -> None:
        self._closed.set()
        with contextlib.suppress(OSError):
            self._listener.shutdown(socket.SHUT_RDWR)  # wakes the blocked accept(); close() alone does not
        with contextlib.suppress(OSError):
            self._listener.close()
        with self._lock:
            conns = list(self._conns)
        for c in conns:
            with contextlib.suppress(OSError):
                c.shutdown(socket.SHUT_RDWR)
        if self._accepter.ident is not None:  # started
            self._accepter.join(timeout=5)

    def _accept_loop(self) -> None:
        while not self._closed.is_set():
            try:
                conn, _ = self._listener.accept()
            except OSError:
                return
            with self._lock:
                self._conns.add(conn)
            threading.Thread(target=self._serve, args=(conn,), name="pxtui-port-forward-conn", daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        try:
            try:
                pf = self.open_stream()
            except Exception as e:  # the API refused or could not be reached: say why in the next error
                self.last_error = str(e)
                log.warning("port-forward to %s/%s:%d failed: %s", self.namespace, self.pod, self.port, e)
                return
            try:
                _bridge(conn, pf.socket(self.port))
            finally:
                pf.close()
                err = pf.error(self.port)
                if err:
                    self.last_error = err
                    log.warning("port-forward to %s/%s:%d: %s", self.namespace, self.pod, self.port, err)
        finally:
            with self._lock:
                self._conns.discard(conn)
            conn.close()


def _pump(src: Any, dst: Any) -> None:
    """Copy src -> dst until src ends, then pass the end on (half-close) so the other way can finish."""
    try:
        while data := src.recv(256 * 1024):
            dst.sendall(data)
    except OSError:
        pass
    with contextlib.suppress(OSError):
        dst.shutdown(socket.SHUT_WR)


def _bridge(a: socket.socket, b: Any) -> None:
    """Copy bytes both ways until both directions have ended.

    One thread per direction: a side that is slow to read then stalls only its own direction,
    never the other (a single loop doing blocking sends can deadlock two bounded peers).
    """
    a.setblocking(True)
    b.setblocking(True)
    back = threading.Thread(target=_pump, args=(b, a), name="pxtui-port-forward-back", daemon=True)
    back.start()
    _pump(a, b)
    back.join()


@contextlib.contextmanager
def vizier_port_forward(
    context: str | None, namespace: str = DEFAULT_NAMESPACE, port: int = VIZIER_PORT
) -> Iterator[str]:
    """A local `host:port` that reaches the pxtui-vizier pod's gRPC port while the block runs.

    The pod is looked up and one websocket is opened and closed before yielding, so a missing
    deployment, an unreachable API server or a missing `pods/portforward` permission is reported
    here, in words, instead of as a gRPC "unavailable" later.
    """
    api = api_client(context)
    core = k8s.CoreV1Api(api)
    try:
        try:
            pod = find_ready_pod(core, namespace)
        except KubeError:
            raise
        except Exception as e:
            raise explain(e, api, f"finding the pxtui-vizier pod in namespace {namespace!r}") from None
        fwd = PortForwarder(core, namespace, pod, port)
        try:
            fwd.open_stream().close()
        except Exception as e:
            fwd.close()
            raise explain(e, api, f"port-forwarding to pod {namespace}/{pod}:{port}") from None
        fwd.start()
        try:
            yield fwd.address
        finally:
            fwd.close()
    finally:
        api.close()
