"""`pxtui deploy` / `pxtui delete` and the `--cluster` port-forward, driven through the real
`kubernetes` client against tests/k8s_fake_api.py (no real API server can be installed here).

What is proved: the requests the client really sends (server-side apply of every rendered object,
in order, deletes in reverse), that the signing key is generated once and kept, the error messages
for a missing kubeconfig, an unreachable or refusing API server, and that bytes — raw TCP, gRPC,
and a real `pxtui status`/`pxtui run` against the embedded Vizier — flow through pxtui's own
port-forwarder over the kubelet's v4.channel.k8s.io websocket protocol.
"""

from __future__ import annotations

import base64
import json
import os
import socket
import threading
from collections.abc import Iterator
from concurrent import futures
from pathlib import Path
from typing import Any

import grpc
import pytest
import yaml
from click.testing import CliRunner

from pxtui.cli import main
from pxtui.cluster_access import KubeError, vizier_port_forward
from pxtui.k8s_manifests import default_base_dir, render
from tests.conftest import Vizier, free_port
from tests.k8s_fake_api import TOKEN, FakeApiServer

CORE = "/api/v1/namespaces/pxtui"
APPS = "/apis/apps/v1/namespaces/pxtui"
RBAC = "/apis/rbac.authorization.k8s.io/v1"
APPLY_PATHS = [
    CORE,
    f"{CORE}/serviceaccounts/pxtui",
    f"{RBAC}/clusterroles/pxtui-reader",
    f"{RBAC}/clusterrolebindings/pxtui-reader",
    f"{CORE}/secrets/pxtui-signing-key",
    f"{CORE}/services/pxtui-vizier",
    f"{APPS}/deployments/pxtui-vizier",
    f"{APPS}/deployments/pxtui-kelvin",
    f"{APPS}/daemonsets/pxtui-pem",
]


def _write_kubeconfig(path: Path, doc: dict[str, Any]) -> Path:
    path.write_text(yaml.safe_dump(doc))
    return path


@pytest.fixture
def api(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeApiServer]:
    with FakeApiServer() as server:
        monkeypatch.setenv("KUBECONFIG", str(_write_kubeconfig(tmp_path / "kubeconfig", server.kubeconfig("fake"))))
        yield server


def _pxtui(*args: str, env: dict[str, str] | None = None) -> Any:
    return CliRunner().invoke(main, list(args), env=env, catch_exceptions=False)


def _stored_key(api: FakeApiServer) -> bytes:
    secret = api.objects[("v1", "pxtui", "secrets", "pxtui-signing-key")]
    return base64.b64decode(secret["data"]["signing.key"])


# ---- deploy / delete --------------------------------------------------------------------------
def test_deploy_server_side_applies_every_rendered_object_in_order(api: FakeApiServer) -> None:
    res = _pxtui("deploy", "--context", "fake")
    assert res.exit_code == 0, res.output
    assert [p for m, p in api.calls("PATCH")] == APPLY_PATHS
    # the Secret is looked up first (it has no key yet), then created with one
    assert api.calls("GET") == [("GET", f"{CORE}/secrets/pxtui-signing-key")]
    rendered = render(default_base_dir())
    patches = [r for r in api.requests if r.method == "PATCH"]
    for req, obj in zip(patches, rendered, strict=True):
        assert req.headers["content-type"] == "application/apply-patch+yaml"
        assert req.query["fieldManager"] == ["pxtui"] and req.query["force"] == ["true"]
        assert req.headers["authorization"] == f"Bearer {TOKEN}"
        if obj["kind"] == "Secret":
            assert set(req.body) == set(obj) | {"data"}
        else:
            assert req.body == obj  # exactly the rendered object, nothing added or lost on the way
    key = _stored_key(api)
    assert len(key) == 32
    assert base64.b64encode(key).decode() not in res.output  # the key is never printed
    assert "daemonset/pxtui-pem in pxtui created" in res.output


def test_redeploy_keeps_the_signing_key_and_reapplies_the_rest(api: FakeApiServer) -> None:
    assert _pxtui("deploy", "--context", "fake").exit_code == 0
    key = _stored_key(api)
    first = len(api.requests)
    res = _pxtui("deploy", "--context", "fake")
    assert res.exit_code == 0, res.output
    again = [(r.method, r.path) for r in api.requests[first:]]
    assert ("PATCH", f"{CORE}/secrets/pxtui-signing-key") not in again
    assert [p for m, p in again if m == "PATCH"] == [p for p in APPLY_PATHS if "secrets" not in p]
    assert _stored_key(api) == key
    assert "secret/pxtui-signing-key in pxtui kept" in res.output
    assert "daemonset/pxtui-pem in pxtui configured" in res.output


def test_delete_removes_everything_in_reverse_order(api: FakeApiServer) -> None:
    assert _pxtui("deploy", "--context", "fake").exit_code == 0
    res = _pxtui("delete", "--context", "fake")
    assert res.exit_code == 0, res.output
    deletes = [r for r in api.requests if r.method == "DELETE"]
    assert [r.path for r in deletes] == APPLY_PATHS[::-1]
    assert all(r.query["propagationPolicy"] == ["Background"] for r in deletes)
    assert api.objects == {}
    # deleting again is not an error: every object is reported absent
    res = _pxtui("delete", "--context", "fake")
    assert res.exit_code == 0, res.output
    assert res.output.count(" absent") == len(APPLY_PATHS)


def test_deploy_to_another_namespace_with_another_image(api: FakeApiServer) -> None:
    res = _pxtui("deploy", "--context", "fake", "--namespace", "obs", "--image", "registry.example:5000/pxtui:1.2")
    assert res.exit_code == 0, res.output
    paths = [p for m, p in api.calls("PATCH")]
    assert paths[0] == "/api/v1/namespaces/obs"
    assert f"{RBAC}/clusterroles/pxtui-reader-obs" in paths
    ds = api.objects[("apps/v1", "obs", "daemonsets", "pxtui-pem")]
    assert ds["spec"]["template"]["spec"]["containers"][0]["image"] == "registry.example:5000/pxtui:1.2"
    crb = api.objects[("rbac.authorization.k8s.io/v1", None, "clusterrolebindings", "pxtui-reader-obs")]
    assert crb["roleRef"]["name"] == "pxtui-reader-obs"
    assert crb["subjects"] == [{"kind": "ServiceAccount", "name": "pxtui", "namespace": "obs"}]


def test_deploy_print_needs_no_cluster(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "absent"))
    res = _pxtui("deploy", "--print")
    assert res.exit_code == 0
    assert list(yaml.safe_load_all(res.output)) == render(default_base_dir())


# ---- errors a user can cause --------------------------------------------------------------------
def test_no_kubeconfig_is_a_usage_error(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "nope"))
    res = _pxtui("deploy")
    assert res.exit_code == 2
    assert "no usable Kubernetes configuration" in res.output and "KUBECONFIG" in res.output


def test_unknown_context_lists_the_known_ones(api: FakeApiServer) -> None:
    res = _pxtui("delete", "--context", "prod")
    assert res.exit_code == 2
    assert "context 'prod' is not in the kubeconfig; it has: fake" in res.output
    assert api.requests == []


def test_unreachable_api_server_says_where(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    port = free_port()  # nothing listens there
    doc = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "c", "cluster": {"server": f"http://127.0.0.1:{port}"}}],
        "users": [{"name": "u", "user": {"token": "t"}}],
        "contexts": [{"name": "gone", "context": {"cluster": "c", "user": "u"}}],
        "current-context": "gone",
    }
    monkeypatch.setenv("KUBECONFIG", str(_write_kubeconfig(tmp_path / "kc", doc)))
    res = _pxtui("deploy")
    assert res.exit_code == 3
    assert f"applying namespace/pxtui: cannot reach the Kubernetes API server at http://127.0.0.1:{port}" in res.output
    assert "Connection refused" in res.output


def test_forbidden_stops_the_deploy_and_names_the_object(api: FakeApiServer) -> None:
    api.forbidden.add(("PATCH", f"{RBAC}/clusterroles/pxtui-reader"))
    res = _pxtui("deploy", "--context", "fake")
    assert res.exit_code == 3
    assert "applying clusterrole/pxtui-reader: forbidden by the API server" in res.output
    assert 'cannot patch resource "clusterroles" in API group "rbac.authorization.k8s.io"' in res.output
    assert [p for m, p in api.calls("PATCH")] == APPLY_PATHS[:3]  # nothing after the refused object


def test_wrong_credentials_are_reported(api: FakeApiServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    kc = _write_kubeconfig(tmp_path / "bad", api.kubeconfig("fake", token="wrong"))
    monkeypatch.setenv("KUBECONFIG", str(kc))
    res = _pxtui("deploy")
    assert res.exit_code == 3
    assert "refused the credentials (401)" in res.output


# ---- the port-forward ---------------------------------------------------------------------------
def _pod(name: str, ready: bool = True, phase: str = "Running") -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": "pxtui", "labels": {"app.kubernetes.io/name": "pxtui-vizier"}},
        "spec": {"containers": [{"name": "vizier", "image": "pxtui:0.1.0"}]},
        "status": {"phase": phase, "conditions": [{"type": "Ready", "status": "True" if ready else "False"}]},
    }


class EchoServer:
    """A real TCP server standing in for the pod's port: echoes every byte back."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.addr: tuple[str, int] = self.sock.getsockname()[:2]
        self.accepted = 0
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.accepted += 1
            threading.Thread(target=self._echo, args=(conn,), daemon=True).start()

    @staticmethod
    def _echo(conn: socket.socket) -> None:
        with conn:
            while data := conn.recv(65536):
                conn.sendall(data)

    def close(self) -> None:
        self.sock.close()


def _exchange(addr: str, payload: bytes) -> bytes:
    host, port = addr.rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=20) as s:
        sender = threading.Thread(target=s.sendall, args=(payload,))
        sender.start()
        got = bytearray()
        while len(got) < len(payload):
            chunk = s.recv(65536)
            assert chunk, f"the forward closed after {len(got)} of {len(payload)} bytes"
            got += chunk
        sender.join()
    return bytes(got)


def test_raw_bytes_flow_both_ways_through_the_forwarder(api: FakeApiServer) -> None:
    echo = EchoServer()
    api.pods.append(_pod("pxtui-vizier-abc"))
    api.port_targets[("pxtui", "pxtui-vizier-abc", 51400)] = echo.addr
    try:
        with vizier_port_forward("fake") as addr:
            assert addr.startswith("127.0.0.1:")
            big = os.urandom(3 * 1024 * 1024 + 17)  # several websocket frames each way
            assert _exchange(addr, big) == big
            # concurrent connections each get their own websocket and their own bytes back
            payloads = [os.urandom(200_000 + i) for i in range(4)]
            with futures.ThreadPoolExecutor(4) as pool:
                assert list(pool.map(lambda p: _exchange(addr, p), payloads)) == payloads
    finally:
        echo.close()
    ws = [r for r in api.requests if "portforward" in r.path]
    assert len(ws) == 1 + 1 + 4  # the start-up probe, the big exchange, four concurrent ones
    assert all(r.query["ports"] == ["51400"] for r in ws)
    assert all("v4.channel.k8s.io" in r.headers["sec-websocket-protocol"] for r in ws)
    assert echo.accepted == 6


def test_grpc_flows_through_the_forwarder(api: FakeApiServer) -> None:
    def echo(request: bytes, context: grpc.ServicerContext) -> bytes:
        return request[::-1]

    server = grpc.server(futures.ThreadPoolExecutor(2))
    handler = grpc.method_handlers_generic_handler("test.Echo", {"Reverse": grpc.unary_unary_rpc_method_handler(echo)})
    server.add_generic_rpc_handlers((handler,))
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    api.pods.append(_pod("pxtui-vizier-grpc"))
    api.port_targets[("pxtui", "pxtui-vizier-grpc", 51400)] = ("127.0.0.1", port)
    try:
        with vizier_port_forward("fake") as addr, grpc.insecure_channel(addr) as channel:
            call = channel.unary_unary("/test.Echo/Reverse")
            for size in (1, 1000, 1_000_000):
                msg = os.urandom(size)
                assert call(msg, timeout=20) == msg[::-1]
    finally:
        server.stop(None)


def _open_forward(context: str) -> None:
    with vizier_port_forward(context):
        pass


def test_port_forward_errors_say_why(api: FakeApiServer) -> None:
    with pytest.raises(KubeError, match=r"no pod labelled app.kubernetes.io/name=pxtui-vizier in namespace 'pxtui'"):
        _open_forward("fake")
    api.pods.append(_pod("pxtui-vizier-starting", ready=False, phase="Pending"))
    with pytest.raises(KubeError, match=r"no ready .* pxtui-vizier-starting \(Pending\)"):
        _open_forward("fake")
    api.pods.append(_pod("pxtui-vizier-up"))
    api.forbidden.add(("GET", "/api/v1/namespaces/pxtui/pods/pxtui-vizier-up/portforward"))
    with pytest.raises(KubeError) as e:
        _open_forward("fake")
    assert str(e.value).startswith("port-forwarding to pod pxtui/pxtui-vizier-up:51400: forbidden by the API server")
    assert 'cannot get resource "pods/portforward"' in str(e.value)
    assert "-+-+-" not in str(e.value)  # the raw handshake text is not shown


def test_cluster_flag_refuses_vizier_flag(api: FakeApiServer) -> None:
    res = _pxtui("status", "--cluster", "fake", "--vizier", "127.0.0.1:1")
    assert res.exit_code == 2
    assert "--cluster picks the Vizier itself" in res.output


@pytest.mark.ebpf
def test_status_and_run_reach_the_real_vizier_through_cluster(
    api: FakeApiServer, vizier: Vizier, tmp_path: Path
) -> None:
    """The whole `--cluster` path: kubeconfig -> pod lookup -> websocket port-forward -> gRPC Vizier."""
    host, port = vizier.addr.rsplit(":", 1)
    api.pods.append(_pod("pxtui-vizier-0"))
    api.port_targets[("pxtui", "pxtui-vizier-0", 51400)] = (host, int(port))
    env = {
        "PXTUI_API_KEY": vizier.api_key,
        "XDG_CONFIG_HOME": str(tmp_path / "cfg"),
        "PXTUI_VIZIER": None,
        "PXTUI_VIZIER_KEY": None,
    }
    res = _pxtui("status", "--cluster", "fake", "-o", "json", env=env)  # type: ignore[arg-type]
    assert res.exit_code == 0, res.output
    doc = json.loads(res.output)
    assert doc["agents"] and doc["agents"][0]["probes"]
    script = tmp_path / "q.pxl"
    script.write_text("import px\npx.display(px.DataFrame('http_events', start_time='-5m').head(3), 'out')\n")
    res = _pxtui("run", "--cluster", "fake", "-f", str(script), "-o", "json", env=env)  # type: ignore[arg-type]
    assert res.exit_code == 0, res.output
    assert "out" in json.loads(res.output)["tables"]
    assert sum("portforward" in r.path for r in api.requests) >= 4  # a probe and a session per command
