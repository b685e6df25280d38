"""A small Kubernetes API server over plain HTTP, for driving the real `kubernetes` client in tests.

No API server can be installed on this machine, so `pxtui deploy`, `pxtui delete` and the
port-forward behind `--cluster` are tested against this one. It implements what they use, with the
API server's wire behaviour:

- server-side apply: PATCH with `Content-Type: application/apply-patch+yaml`, `fieldManager` and
  `force` in the query; 201 when it creates the object, 200 when it updates it;
- GET of one object and of a pod list (with an equality `labelSelector`), DELETE of one object;
- errors as `Status` objects: 401 without the bearer token, 403 for paths a test forbids, 404;
- the pod `portforward` subresource as the kubelet serves it over a websocket with the
  `v4.channel.k8s.io` subprotocol (pkg/kubelet/cri/streaming/portforward/websocket.go): per port a
  data channel (2i) and an error channel (2i+1), each opened by the server with the port number as a
  little-endian uint16; every later frame is one channel byte followed by payload. Data is proxied
  to a real local TCP server that stands in for the pod's port.

Every request is recorded (method, path, query, headers, body) so tests can assert what the client
sent and in which order.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import socket
import struct
import threading
import time
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from wsproto.connection import Connection, ConnectionType
from wsproto.events import BytesMessage, CloseConnection, Ping, TextMessage
from wsproto.utilities import LocalProtocolError

WS_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
PORTFORWARD_PROTOCOL = "v4.channel.k8s.io"
TOKEN = "pxtui-test-token"
USER = "system:serviceaccount:ci:tester"


@dataclass
class Recorded:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: Any


@dataclass(frozen=True)
class ResourcePath:
    """A parsed API path: /api/v1/namespaces/ns/pods/name/portforward and friends."""

    group_version: str
    namespace: str | None
    plural: str
    name: str | None
    subresource: str | None

    @classmethod
    def parse(cls, path: str) -> ResourcePath | None:
        parts = [p for p in path.split("/") if p]
        if len(parts) >= 2 and parts[0] == "api":
            gv, rest = parts[1], parts[2:]
        elif len(parts) >= 3 and parts[0] == "apis":
            gv, rest = f"{parts[1]}/{parts[2]}", parts[3:]
        else:
            return None
        ns = None
        if len(rest) >= 3 and rest[0] == "namespaces":
            ns, rest = rest[1], rest[2:]
        if not rest:
            return None
        return cls(gv, ns, rest[0], rest[1] if len(rest) > 1 else None, rest[2] if len(rest) > 2 else None)

    @property
    def key(self) -> tuple[str, str | None, str, str | None]:
        return (self.group_version, self.namespace, self.plural, self.name)


@dataclass
class FakeApiServer:
    """Start with `with FakeApiServer() as api:`; `api.url` is its base URL."""

    pods: list[dict[str, Any]] = field(default_factory=list)
    # (namespace, pod, port) -> (host, port) of the real TCP server behind the pod's port
    port_targets: dict[tuple[str, str, int], tuple[str, int]] = field(default_factory=dict)
    # (method, path) pairs answered with 403
    forbidden: set[tuple[str, str]] = field(default_factory=set)
    requests: list[Recorded] = field(default_factory=list)
    objects: dict[tuple[str, str | None, str, str | None], dict[str, Any]] = field(default_factory=dict)
    portforward_sessions: int = 0

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # ---- lifecycle ---------------------------------------------------------------------------
    def __enter__(self) -> FakeApiServer:
        server = self

        class Handler(_Handler):
            api = server

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, name="fake-k8s-api", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._httpd is not None and self._thread is not None
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)

    @property
    def url(self) -> str:
        assert self._httpd is not None
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}"

    def kubeconfig(self, context: str = "fake", namespace: str = "default", token: str = TOKEN) -> dict[str, Any]:
        """A kubeconfig document whose context `context` points at this server."""
        return {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "fake-cluster", "cluster": {"server": self.url}}],
            "users": [{"name": "tester", "user": {"token": token}}],
            "contexts": [
                {"name": context, "context": {"cluster": "fake-cluster", "user": "tester", "namespace": namespace}}
            ],
            "current-context": context,
        }

    # ---- what tests read -------------------------------------------------------------------------
    def calls(self, *methods: str) -> list[tuple[str, str]]:
        """(method, path) of the recorded requests, optionally only these methods."""
        with self._lock:
            return [(r.method, r.path) for r in self.requests if not methods or r.method in methods]

    def record(self, rec: Recorded) -> None:
        with self._lock:
            self.requests.append(rec)


def _status(code: int, reason: str, message: str, details: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
        "details": details or {},
        "code": code,
    }


class _Handler(BaseHTTPRequestHandler):
    api: FakeApiServer
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: the recorded requests are what tests look at."""

    # ---- plumbing ------------------------------------------------------------------------------
    def _send_json(self, code: int, doc: dict[str, Any]) -> None:
        body = json.dumps(doc).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _begin(self) -> tuple[Recorded, ResourcePath | None] | None:
        """Record the request; answer 401/403 here. None when it has been answered."""
        split = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        try:
            body: Any = json.loads(raw) if raw else None
        except json.JSONDecodeError:
            body = raw.decode(errors="replace")
        rec = Recorded(
            self.command, split.path, parse_qs(split.query), {k.lower(): v for k, v in self.headers.items()}, body
        )
        self.api.record(rec)
        if self.headers.get("Authorization") != f"Bearer {self.api_token()}":
            self._send_json(401, _status(401, "Unauthorized", "Unauthorized"))
            return None
        rp = ResourcePath.parse(split.path)
        if (self.command, split.path) in self.api.forbidden and rp is not None:
            where = f' in the namespace "{rp.namespace}"' if rp.namespace else " at the cluster scope"
            group = rp.group_version.split("/")[0] if "/" in rp.group_version else ""
            verb = {"PATCH": "patch", "DELETE": "delete", "POST": "create"}.get(self.command, "get")
            res = rp.plural + (f"/{rp.subresource}" if rp.subresource else "")
            msg = (
                f'{res} "{rp.name}" is forbidden: User "{USER}" cannot {verb} resource "{res}" '
                f'in API group "{group}"{where}'
            )
            self._send_json(403, _status(403, "Forbidden", msg, {"name": rp.name, "kind": rp.plural}))
            return None
        if rp is None:
            self._send_json(404, _status(404, "NotFound", f"the server could not find {split.path}"))
            return None
        return rec, rp

    def api_token(self) -> str:
        return TOKEN

    # ---- verbs -----------------------------------------------------------------------------------
    def do_PATCH(self) -> None:
        begun = self._begin()
        if begun is None:
            return
        rec, rp = begun
        assert rp is not None
        if rec.headers.get("content-type") != "application/apply-patch+yaml":
            self._send_json(
                415,
                _status(
                    415, "UnsupportedMediaType", f"only server-side apply here, not {rec.headers.get('content-type')}"
                ),
            )
            return
        if "fieldManager" not in rec.query:
            self._send_json(400, _status(400, "BadRequest", "fieldManager is required for apply requests"))
            return
        obj = rec.body
        if not isinstance(obj, dict) or obj.get("metadata", {}).get("name") != rp.name:
            self._send_json(400, _status(400, "BadRequest", "the name in the body does not match the URL"))
            return
        with self.api._lock:
            old = self.api.objects.get(rp.key)
            stored = json.loads(json.dumps(obj))
            meta = stored.setdefault("metadata", {})
            if rp.namespace:
                meta["namespace"] = rp.namespace
            meta["uid"] = (old or {}).get("metadata", {}).get("uid") or str(uuid.uuid4())
            meta["resourceVersion"] = str(int(time.time_ns() % 10**12))
            meta["creationTimestamp"] = "2026-01-01T00:00:00Z"
            self.api.objects[rp.key] = stored
        self._send_json(200 if old else 201, stored)

    def do_DELETE(self) -> None:
        begun = self._begin()
        if begun is None:
            return
        _, rp = begun
        assert rp is not None
        with self.api._lock:
            gone = self.api.objects.pop(rp.key, None)
        if gone is None:
            self._send_json(
                404,
                _status(404, "NotFound", f'{rp.plural} "{rp.name}" not found', {"name": rp.name, "kind": rp.plural}),
            )
            return
        self._send_json(
            200,
            {
                "kind": "Status",
                "apiVersion": "v1",
                "metadata": {},
                "status": "Success",
                "details": {"name": rp.name, "kind": rp.plural, "uid": gone["metadata"]["uid"]},
            },
        )

    def do_GET(self) -> None:
        if self.headers.get("Upgrade", "").lower() == "websocket":
            self._portforward()
            return
        begun = self._begin()
        if begun is None:
            return
        rec, rp = begun
        assert rp is not None
        if rp.plural == "pods" and rp.name is None:
            self._send_json(200, self._pod_list(rp.namespace, rec.query.get("labelSelector", [""])[0]))
            return
        with self.api._lock:
            obj = self.api.objects.get(rp.key)
        if obj is None:
            self._send_json(
                404,
                _status(404, "NotFound", f'{rp.plural} "{rp.name}" not found', {"name": rp.name, "kind": rp.plural}),
            )
            return
        self._send_json(200, obj)

    def _pod_list(self, namespace: str | None, selector: str) -> dict[str, Any]:
        want = dict(term.split("=", 1) for term in selector.split(",") if term)
        items = [
            p
            for p in self.api.pods
            if p["metadata"].get("namespace") == namespace
            and all(p["metadata"].get("labels", {}).get(k) == v for k, v in want.items())
        ]
        return {"kind": "PodList", "apiVersion": "v1", "metadata": {"resourceVersion": "1"}, "items": items}

    # ---- portforward: the kubelet's v4 websocket protocol ----------------------------------------
    def _portforward(self) -> None:
        begun = self._begin()
        if begun is None:
            return
        rec, rp = begun
        assert rp is not None
        if rp.subresource != "portforward" or rp.plural != "pods":
            self._send_json(400, _status(400, "BadRequest", "websocket upgrade only for pods/portforward"))
            return
        offered = [p.strip() for p in rec.headers.get("sec-websocket-protocol", "").split(",")]
        if PORTFORWARD_PROTOCOL not in offered:
            self._send_json(400, _status(400, "BadRequest", f"subprotocol {PORTFORWARD_PROTOCOL} not offered"))
            return
        ports = [int(p) for v in rec.query.get("ports", []) for p in v.split(",")]
        if not ports:
            self._send_json(400, _status(400, "BadRequest", 'query parameter "ports" is required'))
            return
        key = rec.headers["sec-websocket-key"]
        accept = base64.b64encode(hashlib.sha1((key + WS_GUID).encode()).digest()).decode()
        self.wfile.write(
            b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            + f"Sec-WebSocket-Accept: {accept}\r\nSec-WebSocket-Protocol: {PORTFORWARD_PROTOCOL}\r\n\r\n".encode()
        )
        self.wfile.flush()
        self.close_connection = True
        with self.api._lock:
            self.api.portforward_sessions += 1
        _PortForwardSession(self.connection, rp.namespace or "", rp.name or "", ports, self.api.port_targets).run()


class _PortForwardSession:
    """One websocket: proxies the data channel of its (single) port to the target TCP server."""

    def __init__(
        self,
        sock: socket.socket,
        namespace: str,
        pod: str,
        ports: list[int],
        targets: dict[tuple[str, str, int], tuple[str, int]],
    ) -> None:
        self.sock = sock
        self.ws = Connection(ConnectionType.SERVER)
        self.namespace, self.pod, self.ports, self.targets = namespace, pod, ports, targets
        self._message = bytearray()
        self._send_lock = threading.Lock()

    def _send(self, event: Any) -> None:
        with self._send_lock:  # wsproto's state is shared by both directions
            self.sock.sendall(self.ws.send(event))

    def _frame(self, channel: int, payload: bytes) -> None:
        self._send(BytesMessage(data=bytes([channel]) + payload))

    def run(self) -> None:
        for i, port in enumerate(self.ports):  # the opening frames: port number on data and error channels
            self._frame(2 * i, struct.pack("<H", port))
            self._frame(2 * i + 1, struct.pack("<H", port))
        port = self.ports[0]
        target = self.targets.get((self.namespace, self.pod, port))
        try:
            if target is None:
                raise ConnectionRefusedError(f"nothing listens on port {port} in the pod")
            upstream = socket.create_connection(target, timeout=5)
        except OSError as e:
            self._frame(1, f"error forwarding port {port} to pod {self.pod}, uid : {e}".encode())
            self._send(CloseConnection(code=1000))
            self.sock.close()
            return
        upstream.settimeout(None)
        try:
            self._pump(upstream)
        finally:
            upstream.close()
            self.sock.close()

    def _pump(self, upstream: socket.socket) -> None:
        """One thread per direction, as the kubelet copies each stream on its own goroutine."""
        back = threading.Thread(target=self._upstream_to_client, args=(upstream,), daemon=True)
        back.start()
        try:
            while raw := self.sock.recv(65536):
                self.ws.receive_data(raw)
                if not self._client_events(upstream):
                    break
        except OSError:
            pass
        with contextlib.suppress(OSError):
            upstream.shutdown(socket.SHUT_RDWR)
        back.join(timeout=10)

    def _upstream_to_client(self, upstream: socket.socket) -> None:
        try:
            while data := upstream.recv(65536):
                self._frame(0, data)
            self._send(CloseConnection(code=1000))  # the pod's side closed: close, as the kubelet does
        except (OSError, LocalProtocolError):
            pass

    def _client_events(self, upstream: socket.socket) -> bool:
        """Handle what the client sent; False when the websocket is closing."""
        for ev in self.ws.events():
            if isinstance(ev, CloseConnection):
                self._send(ev.response())
                return False
            if isinstance(ev, Ping):
                self._send(ev.response())
            elif isinstance(ev, BytesMessage | TextMessage):
                self._message += ev.data if isinstance(ev.data, bytes) else ev.data.encode()
                if ev.message_finished:
                    msg, self._message = bytes(self._message), bytearray()
                    if msg and msg[0] == 0:
                        upstream.sendall(msg[1:])
        return True
