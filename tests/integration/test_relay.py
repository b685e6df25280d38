"""End-to-end encryption through a relay, all real: a traced HTTP exchange -> eBPF -> the Vizier's broker
-> a `pxtui relay` hop (raw bytes, never decoded) -> a TCP recorder -> the client.

A marker in the script and a marker in the returned rows must cross both hops without ever appearing
in what the relay handles or what the wire carries, while the client reads both. A client that does not
seal its request is the control: the same tap then does see the script's marker."""

from __future__ import annotations

import contextlib
import json
import selectors
import socket
import subprocess
import sys
import threading
import uuid
from collections.abc import Callable, Iterator
from concurrent import futures
from dataclasses import dataclass, field
from pathlib import Path

import grpc
import pytest

from cluster.auth.e2e import encode_public_key, load_or_create_vizier_key
from cluster.relay import Relay, RelayError
from pxtui.client import VizierClient
from pxtui.runner import VizierUnavailable
from tests.conftest import ROOT, Vizier, free_port, wait_until
from tests.util import as_rows
from tests.vizier_proc import stop_group

pytestmark = pytest.mark.ebpf
PEERS = [sys.executable, str(Path(__file__).with_name("http_peers.py"))]


# ---- a TCP-level recorder: every byte the client and the relay exchange ----------------------------
@dataclass
class TcpRecorder:
    """Listens on a free port and pipes each connection to `target`, keeping a copy of both directions."""

    target: tuple[str, int]
    upstream: bytearray = field(default_factory=bytearray)  # client -> relay
    downstream: bytearray = field(default_factory=bytearray)  # relay -> client
    _stop: threading.Event = field(default_factory=threading.Event)

    def __post_init__(self) -> None:
        self._lsock = socket.create_server(("127.0.0.1", 0))
        self._lsock.settimeout(0.2)
        self.addr = f"127.0.0.1:{self._lsock.getsockname()[1]}"
        self._lock = threading.Lock()
        self._threads = [threading.Thread(target=self._accept, daemon=True)]
        self._threads[0].start()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._lsock.accept()
            except TimeoutError:
                continue
            t = threading.Thread(target=self._pipe, args=(conn,), daemon=True)
            self._threads.append(t)
            t.start()

    def _pipe(self, client: socket.socket) -> None:
        server = socket.create_connection(self.target)
        sel = selectors.DefaultSelector()
        sel.register(client, selectors.EVENT_READ, (server, self.upstream))
        sel.register(server, selectors.EVENT_READ, (client, self.downstream))
        with client, server:
            while not self._stop.is_set():
                for key, _ in sel.select(timeout=0.2):
                    peer, log = key.data
                    data = key.fileobj.recv(65536)  # type: ignore[union-attr]
                    if not data:
                        return
                    with self._lock:
                        log.extend(data)
                    peer.sendall(data)

    def close(self) -> None:
        self._stop.set()
        self._threads[0].join(timeout=5)  # the accept loop notices within its 0.2 s timeout
        self._lsock.close()
        for t in self._threads[1:]:
            t.join(timeout=5)


@dataclass
class Tap:
    """What the relay forwarded, message by message: (direction, method, raw bytes)."""

    messages: list[tuple[str, str, bytes]] = field(default_factory=list)

    def __call__(self, direction: str, method: str, payload: bytes) -> None:
        self.messages.append((direction, method, payload))

    def joined(self, direction: str) -> bytes:
        return b"".join(m for d, _, m in self.messages if d == direction)


@contextlib.contextmanager
def relay_to(target: str, tap: Tap | None = None) -> Iterator[Relay]:
    r = Relay(f"127.0.0.1:{free_port()}", target, tap=tap)
    r.start()
    try:
        yield r
    finally:
        r.stop()


@contextlib.contextmanager
def http_peer_server() -> Iterator[int]:
    """A real HTTP server in a child process (the Vizier traces it; it never traces itself)."""
    port = free_port()
    proc = subprocess.Popen([*PEERS, "serve", str(port)], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
        yield port
    finally:
        proc.terminate()
        proc.wait(timeout=10)


@pytest.fixture(scope="module")
def http_server() -> Iterator[int]:
    with http_peer_server() as port:
        yield port


def vizier_public_key(v: Vizier) -> bytes:
    """What `pxtui up` pins on the Vizier's host: the public half of the key in its state directory."""
    return bytes(load_or_create_vizier_key(v.state_dir / "vizier_x25519.key").public_key)


def script_for(path_marker: str) -> str:
    return (
        "import px\n"
        "df = px.DataFrame(table='http_events', start_time='-5m')\n"
        f"df = df[px.contains(df.req_path, '{path_marker}')]\n"
        "df = df[['req_method', 'req_path', 'req_headers', 'req_body', 'resp_body', 'remote_addr', 'trace_role']]\n"
        "px.display(df, 'found')\n"
    )


def traced_post(port: int, path: str, body: str) -> None:
    subprocess.run([*PEERS, "post", str(port), path, body], check=True, timeout=30)


def poll_rows(run: Callable[[], list[dict]], want: Callable[[list[dict]], bool], what: str) -> list[dict]:
    def attempt() -> list[dict] | None:
        rows = run()
        return rows if want(rows) else None

    return wait_until(attempt, 20, what)  # type: ignore[return-value]


def found_rows(client: VizierClient, path_marker: str) -> list[dict]:
    res = client.execute(script_for(path_marker), name="relay-test")
    return as_rows(res.tables[0][1]) if res.tables else []


# ---- the tests ---------------------------------------------------------------------------------------
def test_neither_the_relay_nor_the_wire_sees_the_script_or_the_rows(vizier: Vizier, http_server: int):
    path_marker, row_marker = f"pm{uuid.uuid4().hex}", f"rm{uuid.uuid4().hex}"
    traced_post(http_server, f"/relay/{path_marker}", json.dumps({"secret": row_marker}))
    tap = Tap()
    with relay_to(vizier.addr, tap) as relay:
        recorder = TcpRecorder(("127.0.0.1", relay.port))
        client = VizierClient(recorder.addr, vizier.api_key, vizier_key=vizier_public_key(vizier))
        try:
            rows = poll_rows(
                lambda: found_rows(client, path_marker),
                lambda rows: any(r["req_method"] == "POST" and r["trace_role"] == 2 for r in rows),
                "the traced POST, through the relay",
            )
        finally:
            client.close()
            recorder.close()
    post = next(r for r in rows if r["req_method"] == "POST" and r["trace_role"] == 2)
    assert row_marker in post["req_body"] and row_marker in post["resp_body"]  # the client reads it all
    assert post["req_path"] == f"/relay/{path_marker}"

    execute = [m for m in tap.messages if m[1].endswith("/ExecuteScript")]
    assert {d for d, _, _ in execute} == {"request", "response"}, "the tap saw no ExecuteScript traffic"
    assert len(recorder.upstream) > 200 and len(recorder.downstream) > 1000
    for marker in (path_marker, row_marker, "http_events", "px.contains"):
        m = marker.encode()
        assert m not in tap.joined("request") and m not in tap.joined("response"), marker
        assert m not in recorder.upstream and m not in recorder.downstream, marker


def test_control_an_unsealed_request_is_readable_by_the_relay(vizier: Vizier, http_server: int):
    """The tap is a working detector: without the Vizier's key the script crosses the relay in clear,
    while the rows stay sealed for the client either way."""
    path_marker, row_marker = f"pm{uuid.uuid4().hex}", f"rm{uuid.uuid4().hex}"
    traced_post(http_server, f"/relay/{path_marker}", json.dumps({"secret": row_marker}))
    tap = Tap()
    with relay_to(vizier.addr, tap) as relay:
        client = VizierClient(f"127.0.0.1:{relay.port}", vizier.api_key)  # no pinned Vizier key
        try:
            rows = poll_rows(
                lambda: found_rows(client, path_marker),
                lambda rows: any(row_marker in (r["req_body"] or "") for r in rows),
                "the traced POST, unsealed request",
            )
        finally:
            client.close()
    assert rows
    assert path_marker.encode() in tap.joined("request")
    assert row_marker.encode() not in tap.joined("response")


def test_the_relay_forwards_auth_failures_and_a_stale_pinned_key_is_explained(vizier: Vizier, tmp_path: Path):
    with relay_to(vizier.addr) as relay:
        addr = f"127.0.0.1:{relay.port}"
        bad = VizierClient(addr, "pxk_" + "A" * 43, vizier_key=vizier_public_key(vizier))
        try:
            with pytest.raises(VizierUnavailable, match="refused the API key: unknown API key"):
                bad.execute("import px\npx.display(px.DataFrame('http_events'))")
        finally:
            bad.close()
        stale = bytes(load_or_create_vizier_key(tmp_path / "another.key").public_key)
        wrong = VizierClient(addr, vizier.api_key, vizier_key=stale)
        try:
            with pytest.raises(VizierUnavailable, match=r"sealed for Vizier key \w+, but this Vizier's key is"):
                wrong.execute("import px\npx.display(px.DataFrame('http_events'))")
        finally:
            wrong.close()


def test_pxtui_relay_command_end_to_end(vizier: Vizier, http_server: int, tmp_path: Path):
    """`pxtui relay` as users run it, and `pxtui run` through it with the key pinned in PXTUI_VIZIER_KEY."""
    path_marker, row_marker = f"pm{uuid.uuid4().hex}", f"rm{uuid.uuid4().hex}"
    traced_post(http_server, f"/relay/{path_marker}", json.dumps({"secret": row_marker}))
    script = tmp_path / "found.pxl"
    script.write_text(script_for(path_marker))
    port = free_port()
    relay = subprocess.Popen(
        [sys.executable, "-m", "pxtui.cli", "relay", "--listen", f"127.0.0.1:{port}", "--vizier", vizier.addr],
        cwd=ROOT,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        assert relay.stderr is not None and "relaying 127.0.0.1:" in relay.stderr.readline()
        env = {
            **vizier.env(),
            "PXTUI_VIZIER": f"127.0.0.1:{port}",
            "PXTUI_VIZIER_KEY": encode_public_key(vizier_public_key(vizier)),
        }

        def run_cli() -> list[dict]:
            out = subprocess.run(
                [sys.executable, "-m", "pxtui.cli", "run", "-f", str(script), "-o", "json"],
                cwd=ROOT, env=env, capture_output=True, text=True, timeout=60,
            )  # fmt: skip
            assert out.returncode == 0, out.stderr
            return json.loads(out.stdout)["tables"]["found"]["rows"]

        rows = poll_rows(run_cli, lambda rows: any(row_marker in (r["req_body"] or "") for r in rows), "pxtui run")
        assert rows
        bad = subprocess.run(
            [sys.executable, "-m", "pxtui.cli", "run", "-f", str(script)],
            cwd=ROOT, env={**env, "PXTUI_VIZIER_KEY": "not a key"}, capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert bad.returncode == 3 and "PXTUI_VIZIER_KEY" in bad.stderr
    finally:
        stop_group(relay, grace=5)
    assert relay.returncode is not None


# ---- the relay's own contract, against an upstream that reports what reached it ---------------------
class _Echo(grpc.GenericRpcHandler):
    """Raw-bytes upstream: unary calls echo, streaming calls answer three times; it records what it saw."""

    def __init__(self) -> None:
        self.seen: list[dict] = []

    def service(self, details: grpc.HandlerCallDetails) -> grpc.RpcMethodHandler:
        def unary(req: bytes, ctx: grpc.ServicerContext) -> bytes:
            self.seen.append({"md": dict(ctx.invocation_metadata()), "remaining": ctx.time_remaining()})
            ctx.send_initial_metadata((("srv-hello", "1"),))
            if req == b"fail":
                ctx.set_trailing_metadata((("why-bin", b"\x00\x01"),))
                ctx.abort(grpc.StatusCode.PERMISSION_DENIED, "not for you")
            return b"echo:" + req

        def stream(req: bytes, ctx: grpc.ServicerContext) -> Iterator[bytes]:
            for i in range(3):
                yield req + str(i).encode()

        if details.method.endswith("/Stream"):
            return grpc.unary_stream_rpc_method_handler(stream)
        return grpc.unary_unary_rpc_method_handler(unary)


def test_relay_passes_metadata_deadline_status_and_streams_without_decoding():
    echo = _Echo()
    upstream = grpc.server(futures.ThreadPoolExecutor(4))
    upstream.add_generic_rpc_handlers((echo,))
    up_port = upstream.add_insecure_port("127.0.0.1:0")
    upstream.start()
    try:
        with relay_to(f"127.0.0.1:{up_port}") as relay, grpc.insecure_channel(f"127.0.0.1:{relay.port}") as ch:
            unary = ch.unary_unary("/any.Service/Call")
            reply, call = unary.with_call(b"\xff\x00raw", metadata=[("pxtui-api-key", "pxk_x")], timeout=7)
            assert reply == b"echo:\xff\x00raw"
            assert ("srv-hello", "1") in tuple(call.initial_metadata())
            assert echo.seen[0]["md"]["pxtui-api-key"] == "pxk_x"
            # the client's deadline, less the time spent so far (gRPC rounds deadlines up to its timer tick)
            assert 5 < echo.seen[0]["remaining"] <= 7.05
            assert list(ch.unary_stream("/any.Service/Stream")(b"s", timeout=5)) == [b"s0", b"s1", b"s2"]
            with pytest.raises(grpc.RpcError) as e:
                unary(b"fail", timeout=5)
            assert e.value.code() == grpc.StatusCode.PERMISSION_DENIED and e.value.details() == "not for you"
            assert ("why-bin", b"\x00\x01") in tuple(e.value.trailing_metadata())
    finally:
        upstream.stop(0).wait()
    with relay_to(f"127.0.0.1:{free_port()}") as dead, grpc.insecure_channel(f"127.0.0.1:{dead.port}") as ch:
        with pytest.raises(grpc.RpcError) as e:
            ch.unary_unary("/any.Service/Call")(b"x", timeout=5)
        assert e.value.code() == grpc.StatusCode.UNAVAILABLE
        assert "the relay cannot reach the Vizier at" in (e.value.details() or "")


def test_relay_refuses_a_taken_address():
    with socket.create_server(("127.0.0.1", 0)) as s:
        taken = f"127.0.0.1:{s.getsockname()[1]}"
        with pytest.raises(RelayError, match=f"cannot listen on {taken}"):
            Relay(taken, "127.0.0.1:1").start()
