"""TLS plaintext, all real: curl (libcurl -> OpenSSL 3's SSL_read/SSL_write), Python's ssl module
(http.client and http.server: SSL_read_ex/SSL_write_ex), nginx and redis-cli against HTTPS / TLS servers
on loopback with a certificate the test makes with `openssl req` -> the OpenSSL uprobes of the
socket tracer -> the connection tracker -> http_events / redis_events with encrypted = true -> PxL.

Both ends of each connection are traced. Rows are read through the real PxL path (the bundled
px/http_data script and PxL over gRPC). If BPF or the uprobes cannot load, the tests FAIL with the
reason; nothing is skipped.

OpenSSL 1.1 is probed the same way when a libssl.so.1.1 exists; Debian 12 ships only OpenSSL 3, so
on these machines every library checked here is OpenSSL 3 (test_status_lists_every_libssl checks
that each libssl.so.3 / libssl.so.1.1 file on the host is probed, whichever exist).
"""

from __future__ import annotations

import collections
import glob
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from cluster.pem.protocols.registry import PROTOCOLS
from cluster.pem.sources.bcc_loader import BpfUnavailable
from cluster.pem.sources.openssl_probes import HOST_PATTERNS, SUPPORTED_VERSIONS, openssl_version
from cluster.pem.sources.socket_events import ConnEvent, ConnKind, DataEvent
from cluster.pem.sources.socket_tracer import SYSCALL_NAMES, SocketTracer
from tests.conftest import ROOT, Vizier, free_port, wait_until
from tests.util import as_rows

pytestmark = pytest.mark.ebpf

PEERS = [sys.executable, str(Path(__file__).with_name("tls_peers.py"))]
BIG = 40_000  # tls_peers.BIG
LIBSSL3 = "/usr/lib/x86_64-linux-gnu/libssl.so.3"


# ---- fixtures -------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def cert(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str]:
    """A self-signed certificate for 127.0.0.1, made the way a user would."""
    d = tmp_path_factory.mktemp("tls-cert")
    crt, key = d / "cert.pem", d / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=127.0.0.1",
         "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost", "-keyout", str(key), "-out", str(crt)],
        check=True, capture_output=True, timeout=60,
    )  # fmt: skip
    return str(crt), str(key)


def _probe_lines(v: Vizier) -> list[str]:
    client = v.client()
    try:
        return [p for p in client.get_status().agents[0].probes if p.startswith("uprobe:")]
    finally:
        client.close()


@pytest.fixture(scope="module")
def tls_vizier(vizier: Vizier) -> Vizier:
    """The session's Vizier, with its OpenSSL uprobes attached: say why not, loudly, when they are not."""
    lines = _probe_lines(vizier)
    attached = [p for p in lines if "SSL_write" in p and "libssl" in p]
    if not attached:
        pytest.fail(f"the Vizier's OpenSSL uprobes are not attached: {lines or 'no uprobe probes at all'}")
    return vizier


@pytest.fixture(scope="module")
def py_server(cert: tuple[str, str], tls_vizier: Vizier) -> Iterator[tuple[int, int]]:
    proc = subprocess.Popen([*PEERS, "serve", *cert], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    line = proc.stdout.readline()
    assert line.strip().isdigit(), f"the HTTPS server did not start: {line!r}"
    yield int(line), proc.pid
    proc.terminate()
    proc.wait(timeout=10)


NGINX_CONF = """
worker_processes 1;
user root;
daemon off;
pid {d}/nginx.pid;
error_log {d}/error.log warn;
events {{ worker_connections 64; }}
http {{
    access_log off;
    client_body_temp_path {d}/body;
    proxy_temp_path {d}/proxy;
    fastcgi_temp_path {d}/fastcgi;
    uwsgi_temp_path {d}/uwsgi;
    scgi_temp_path {d}/scgi;
    server {{
        listen 127.0.0.1:{port} ssl;
        ssl_certificate {cert};
        ssl_certificate_key {key};
        location / {{
            default_type text/plain;
            return 200 "hello nginx tls $uri";
        }}
    }}
}}
"""


@pytest.fixture(scope="module")
def nginx(cert: tuple[str, str], tls_vizier: Vizier, tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    if shutil.which("nginx") is None:
        pytest.fail("nginx is not installed: apt-get install nginx-light (scripts/bootstrap.sh installs it)")
    d = tmp_path_factory.mktemp("nginx")
    port = free_port()
    conf = d / "nginx.conf"
    conf.write_text(NGINX_CONF.format(d=d, port=port, cert=cert[0], key=cert[1]))
    proc = subprocess.Popen(
        ["nginx", "-c", str(conf), "-p", str(d)], stderr=subprocess.PIPE, text=True, start_new_session=True
    )

    def listening() -> bool:
        assert proc.poll() is None, f"nginx exited: {proc.stderr.read() if proc.stderr else ''}"
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return True
        except OSError:
            return False

    wait_until(listening, 15, "nginx listening")
    yield port
    proc.terminate()
    proc.wait(timeout=10)


# ---- helpers -------------------------------------------------------------------------------------


def query(v: Vizier, script: str) -> list[dict]:
    client = v.client()
    try:
        res = client.execute(script)
        return as_rows(res.tables[0][1]) if res.tables else []
    finally:
        client.close()


def http_rows(v: Vizier, marker: str, want: int, timeout: float = 20) -> list[dict]:
    script = (
        "import px\n"
        "df = px.DataFrame(table='http_events', start_time='-5m')\n"
        f"df = df[px.contains(df.req_path, '{marker}')]\n"
        "df.pid = px.upid_to_pid(df.upid)\n"
        "px.display(df, 'found')\n"
    )
    seen: list[dict] = []

    def enough() -> list[dict] | None:
        seen[:] = query(v, script)
        return seen if len(seen) >= want else None

    try:
        wait_until(enough, timeout, f"{want} http_events rows for {marker}")
    except AssertionError as e:
        raise AssertionError(f"{e}; rows found: {seen}") from None
    return seen


def curl(url: str, cafile: str, *extra: str) -> str:
    out = subprocess.run(["curl", "-sS", "--cacert", cafile, *extra, url], capture_output=True, text=True,
                         timeout=30)  # fmt: skip
    assert out.returncode == 0, out.stderr
    return out.stdout


def both_sides(rows: list[dict]) -> tuple[dict, dict]:
    by_role = collections.defaultdict(list)
    for r in rows:
        by_role[r["trace_role"]].append(r)
    assert sorted(by_role) == [1, 2] and all(len(v) == 1 for v in by_role.values()), rows
    return by_role[1][0], by_role[2][0]


# ---- through the Vizier: rows in the protocol tables ---------------------------------------------


def test_curl_to_python_https_server(tls_vizier: Vizier, py_server: tuple[int, int], cert: tuple[str, str]):
    port, server_pid = py_server
    marker = uuid.uuid4().hex
    path = f"/tls/{marker}/curl?q=1"
    assert curl(f"https://127.0.0.1:{port}{path}", cert[0], "-H", f"X-Marker: {marker}") == f"hello tls from {path}"
    client, server = both_sides(http_rows(tls_vizier, marker, 2))
    assert server["pid"] == server_pid and client["pid"] != server_pid
    for r in (client, server):
        assert r["encrypted"] is True
        assert r["req_method"] == "GET" and r["req_path"] == path
        assert r["resp_status"] == 200 and r["resp_message"] == "OK"
        assert r["resp_body"] == f"hello tls from {path}" and r["resp_body_size"] == len(r["resp_body"])
        assert r["major_version"] == 1 and r["minor_version"] == 1 and r["latency"] > 0
        headers = json.loads(r["req_headers"])
        assert headers["X-Marker"] == marker and headers["User-Agent"].startswith("curl/")
        assert json.loads(r["resp_headers"])["Content-Type"] == "text/plain"
    assert client["remote_port"] == port and server["local_port"] == port
    assert client["local_port"] == server["remote_port"]
    assert client["remote_addr"] == "127.0.0.1" and server["local_addr"] == "127.0.0.1"


def test_python_client_post_and_keepalive(tls_vizier: Vizier, py_server: tuple[int, int], cert: tuple[str, str]):
    port, server_pid = py_server
    marker = uuid.uuid4().hex
    body = json.dumps({"marker": marker, "pad": "x" * 3000})
    subprocess.run([*PEERS, "post", str(port), cert[0], f"/tls/{marker}/py", body], check=True, timeout=30)
    rows = http_rows(tls_vizier, marker, 4)
    assert len(rows) == 4, rows
    assert all(r["encrypted"] is True for r in rows)
    posts = [r for r in rows if r["req_method"] == "POST"]
    gets = [r for r in rows if r["req_method"] == "GET"]
    client_post, server_post = both_sides(posts)
    both_sides(gets)
    assert server_post["pid"] == server_pid
    for r in posts:
        assert r["req_body_size"] == len(body) and r["req_body"] == body[:512]  # the default body cap
        assert r["resp_status"] == 201 and json.loads(r["resp_body"])["got"] == len(body)
        assert r["content_type"] == 1  # JSON
        assert "Python-urllib" not in r["req_headers"]  # http.client sends no User-Agent of its own
    for r in gets:
        assert r["req_path"] == f"/tls/{marker}/py/missing"
        assert r["resp_status"] == 404 and r["resp_body"] == "not here"
    # keep-alive: both requests of a side share one connection
    assert {r["local_port"] for r in rows if r["trace_role"] == 1} == {client_post["local_port"]}


def test_large_response_is_captured_whole(tls_vizier: Vizier, py_server: tuple[int, int], cert: tuple[str, str]):
    """40,000 bytes in one SSL_write_ex: three capture chunks, reassembled; the size is exact."""
    port, _ = py_server
    marker = uuid.uuid4().hex
    subprocess.run([*PEERS, "get", str(port), cert[0], f"/tls/{marker}/big"], check=True, timeout=30,
                   capture_output=True)  # fmt: skip
    expected = bytes(ord("a") + i % 26 for i in range(BIG)).decode()
    for r in both_sides(http_rows(tls_vizier, marker, 2)):
        assert r["encrypted"] is True and r["resp_status"] == 200
        assert r["resp_body_size"] == BIG
        assert r["resp_body"] == expected[:512]


def test_curl_to_nginx(tls_vizier: Vizier, nginx: int, cert: tuple[str, str]):
    marker = uuid.uuid4().hex
    path = f"/tls/{marker}/nginx"
    assert curl(f"https://127.0.0.1:{nginx}{path}", cert[0]) == f"hello nginx tls {path}"
    client, server = both_sides(http_rows(tls_vizier, marker, 2))
    for r in (client, server):
        assert r["encrypted"] is True and r["req_path"] == path and r["resp_status"] == 200
        assert r["resp_body"] == f"hello nginx tls {path}"
        assert json.loads(r["resp_headers"])["Server"].startswith("nginx")
    assert server["local_port"] == nginx and client["remote_port"] == nginx
    comm = Path(f"/proc/{server['pid']}/comm").read_text().strip()
    assert comm == "nginx", f"the server row belongs to {comm} ({server['pid']}), not nginx's worker"


def test_no_rows_from_ciphertext(tls_vizier: Vizier, py_server: tuple[int, int], cert: tuple[str, str]):
    """Every row on the TLS port is decrypted HTTP; no protocol table holds a row parsed from the
    ciphertext; conn_stats counts the connections as ssl and HTTP."""
    port, _ = py_server
    marker = uuid.uuid4().hex
    for i in range(3):
        curl(f"https://127.0.0.1:{port}/tls/{marker}/n{i}", cert[0])
    http_rows(tls_vizier, marker, 6)
    on_port = query(tls_vizier, (
        "import px\n"
        "df = px.DataFrame(table='http_events', start_time='-5m')\n"
        f"df = df[df.remote_port == {port} or df.local_port == {port}]\n"
        "px.display(df)\n"
    ))  # fmt: skip
    assert len(on_port) >= 6
    bad = [r for r in on_port if not (r["encrypted"] and r["req_path"].startswith("/tls/") and r["resp_status"] > 0)]
    assert not bad, bad
    for spec in PROTOCOLS:
        if spec.table == "http_events":
            continue
        rows = query(tls_vizier, (
            "import px\n"
            f"df = px.DataFrame(table='{spec.table}', start_time='-5m')\n"
            f"df = df[df.remote_port == {port} or df.local_port == {port}]\n"
            "px.display(df)\n"
        ))  # fmt: skip
        assert rows == [], f"{spec.table} has rows from the TLS port: {rows}"

    def client_stats() -> list[dict] | None:
        rows = query(tls_vizier, (
            "import px\n"
            "df = px.DataFrame(table='conn_stats', start_time='-5m')\n"
            f"df = df[df.remote_port == {port}]\n"
            "df = df[df.trace_role == 1]\n"
            "px.display(df)\n"
        ))  # fmt: skip
        return rows if rows and sum(r["conn_close"] for r in rows) >= 3 else None

    stats = wait_until(client_stats, 20, "conn_stats rows of the curl connections")
    # A connection is counted open (unknown protocol, not ssl) at connect() and re-keyed when its first
    # plaintext arrives, so a snapshot taken in between may show it under the old key; but every close
    # and every byte belongs to an ssl HTTP row.
    closed = [r for r in stats if r["conn_close"] or r["bytes_sent"] or r["bytes_recv"]]  # type: ignore[union-attr]
    assert closed and all(r["ssl"] is True and r["protocol"] == 1 for r in closed), stats


def test_http_data_script_shows_tls_rows(tls_vizier: Vizier, py_server: tuple[int, int], cert: tuple[str, str]):
    """The bundled px/http_data script, through the CLI, shows the decrypted requests."""
    port, _ = py_server
    marker = uuid.uuid4().hex
    curl(f"https://127.0.0.1:{port}/tls/{marker}/script", cert[0])
    http_rows(tls_vizier, marker, 2)
    out = subprocess.run(
        [sys.executable, "-m", "pxtui.cli", "run", "px/http_data", "-o", "json", "--",
         f"--path_filter={marker}", "--source_filter="],
        cwd=ROOT, capture_output=True, text=True, env=tls_vizier.env(), timeout=60,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    rows = json.loads(out.stdout)["tables"]["http_data"]["rows"]
    assert len(rows) == 2, rows
    for r in rows:
        assert r["method"] == "GET" and r["path"] == f"/tls/{marker}/script" and r["status"] == 200
        assert r["resp_body"] == f"hello tls from /tls/{marker}/script"
        assert "curl/" in json.loads(r["req_headers"])["User-Agent"]
    assert {r["trace_role"] for r in rows} == {1, 2}


@pytest.fixture(scope="module")
def redis_tls(cert: tuple[str, str], tls_vizier: Vizier, tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    """A private redis-server speaking only TLS (Debian's redis is built with TLS support)."""
    if shutil.which("redis-server") is None:
        pytest.fail("redis-server is not installed: apt-get install redis-server")
    d = tmp_path_factory.mktemp("redis-tls")
    port = free_port()
    proc = subprocess.Popen(
        ["redis-server", "--port", "0", "--tls-port", str(port), "--bind", "127.0.0.1", "--tls-cert-file", cert[0],
         "--tls-key-file", cert[1], "--tls-ca-cert-file", cert[0], "--tls-auth-clients", "no", "--save", "",
         "--appendonly", "no", "--dir", str(d)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip

    def listening() -> bool:
        assert proc.poll() is None, "redis-server exited"
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return True
        except OSError:
            return False

    wait_until(listening, 15, "redis-server listening for TLS")
    yield port
    proc.terminate()
    proc.wait(timeout=10)


def test_redis_over_tls_lands_in_redis_events(tls_vizier: Vizier, redis_tls: int, cert: tuple[str, str]):
    """Not only HTTP: redis-cli --tls and redis-py over ssl against a TLS-only redis-server, decrypted
    on both sides into redis_events with encrypted = true."""
    m = uuid.uuid4().hex
    out = subprocess.run(
        ["redis-cli", "--tls", "--cacert", cert[0], "-h", "127.0.0.1", "-p", str(redis_tls), "SET", f"tls:{m}", "v1"],
        capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert out.returncode == 0 and out.stdout.strip() == "OK", out.stderr
    code = (
        "import redis\n"
        f"r = redis.Redis(host='127.0.0.1', port={redis_tls}, ssl=True, ssl_ca_certs={cert[0]!r})\n"
        f"assert r.get('tls:{m}') == b'v1'\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    script = (
        "import px\n"
        "df = px.DataFrame(table='redis_events', start_time='-5m')\n"
        f"df = df[px.contains(df.req_args, '{m}')]\n"
        "px.display(df)\n"
    )
    rows = wait_until(lambda: (r := query(tls_vizier, script)) and len(r) >= 4 and r, 20, "redis rows over TLS")
    by = collections.Counter((r["req_cmd"], r["trace_role"]) for r in rows)  # type: ignore[union-attr]
    assert by == {("SET", 1): 1, ("SET", 2): 1, ("GET", 1): 1, ("GET", 2): 1}, rows
    for r in rows:  # type: ignore[union-attr]
        assert r["encrypted"] is True
        assert r["resp"] == ("OK" if r["req_cmd"] == "SET" else "v1")
        assert (r["remote_port"] if r["trace_role"] == 1 else r["local_port"]) == redis_tls


def test_status_lists_every_libssl(tls_vizier: Vizier):
    """Each OpenSSL 3 / 1.1 libssl file on the host is probed and shown as such in `pxtui status`."""
    host_libs: dict[tuple[int, int], str] = {}
    for pattern in HOST_PATTERNS:
        for path in glob.glob(pattern):
            if openssl_version(path) in SUPPORTED_VERSIONS:
                st = os.stat(path)
                host_libs.setdefault((st.st_dev, st.st_ino), path)
    assert host_libs, "no libssl.so.3 or libssl.so.1.1 on this host: apt-get install libssl3"
    out = subprocess.run([sys.executable, "-m", "pxtui.cli", "status", "-o", "json"], cwd=ROOT, capture_output=True,
                         text=True, env=tls_vizier.env(), timeout=60)  # fmt: skip
    assert out.returncode == 0, out.stderr
    probes = [p for p in json.loads(out.stdout)["agents"][0]["probes"] if p.startswith("uprobe:")]
    probed: dict[tuple[int, int], str] = {}
    for line in probes:
        m = re.match(r"uprobe:(/\S+?)\[([\w|]+)\] \(OpenSSL ([\d.]+), (\d+) process", line)
        assert m, f"unexpected uprobe status line: {line}"
        if "mount namespace of pid" not in line:
            st = os.stat(m.group(1))
            probed[(st.st_dev, st.st_ino)] = line
            assert {"SSL_write", "SSL_read", "SSL_do_handshake"} <= set(m.group(2).split("|")), line
    missing = {path for key, path in host_libs.items() if key not in probed}
    assert not missing, f"libssl files not probed: {missing}; status: {probes}"
    assert any("OpenSSL 3" in line and int(re.search(r"(\d+) process", line)[1]) >= 1 for line in probes), probes
    text = subprocess.run([sys.executable, "-m", "pxtui.cli", "status"], cwd=ROOT, capture_output=True, text=True,
                          env=tls_vizier.env(), timeout=60)  # fmt: skip
    assert "uprobe:" in text.stdout and "libssl.so" in text.stdout


def test_libssl_copy_in_another_mount_namespace_is_found(
    tls_vizier: Vizier, py_server: tuple[int, int], cert: tuple[str, str], tmp_path: Path
):
    """A process in its own mount namespace whose libssl.so.3 is another file (a container image's
    copy, bind-mounted over the host path) is found by the periodic rescan and its TLS decrypted."""
    if not os.path.exists(LIBSSL3):
        pytest.fail(f"{LIBSSL3} is missing: apt-get install libssl3")
    copy = tmp_path / "libssl.so.3"
    shutil.copy2(LIBSSL3, copy)
    port, _ = py_server
    marker = uuid.uuid4().hex
    script = f'mount --bind "{copy}" {LIBSSL3} && exec "$@"'
    proc = subprocess.Popen(
        ["unshare", "-m", "--propagation", "private", "sh", "-c", script, "sh",
         *PEERS, "loop", str(port), cert[0], f"/tls/{marker}/ns"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "ready", proc.stderr.read()  # type: ignore[union-attr]
        maps = Path(f"/proc/{proc.pid}/maps").read_text()
        assert LIBSSL3 in maps and os.stat(f"/proc/{proc.pid}/root{LIBSSL3}").st_ino == copy.stat().st_ino
        assert os.stat(f"/proc/{proc.pid}/root{LIBSSL3}").st_ino != os.stat(LIBSSL3).st_ino
        script_q = (
            "import px\n"
            "df = px.DataFrame(table='http_events', start_time='-5m')\n"
            f"df = df[px.contains(df.req_path, '{marker}')]\n"
            "df.pid = px.upid_to_pid(df.upid)\n"
            f"df = df[df.pid == {proc.pid}]\n"
            "px.display(df)\n"
        )
        # The rescan runs every 10 s; the server side is seen at once (the host's libssl).
        rows = wait_until(lambda: query(tls_vizier, script_q), 40, "client rows from the other mount namespace")
        for r in rows:  # type: ignore[union-attr]
            assert r["encrypted"] is True and r["trace_role"] == 1 and r["req_path"].startswith(f"/tls/{marker}/ns/")
        # The agent's status reaches the broker with its heartbeat: poll for it.
        lines = wait_until(
            lambda: [p for p in _probe_lines(tls_vizier) if f"mount namespace of pid {proc.pid}" in p],
            15,
            "the copy's uprobes in the agent status",
        )
        assert len(lines) == 1 and lines[0].startswith(f"uprobe:{LIBSSL3}["), lines  # type: ignore[arg-type,index]
    finally:
        if proc.stdin is not None:
            proc.stdin.close()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    # Once no process maps the copy, the next rescan detaches it.
    wait_until(lambda: not [p for p in _probe_lines(tls_vizier) if f"mount namespace of pid {proc.pid}" in p], 30,
               "the copy's uprobes detached after its last process exited")  # fmt: skip


# ---- the socket tracer alone: what the kernel emits ---------------------------------------------


class Collector:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._events: collections.deque[DataEvent | ConnEvent] = collections.deque(maxlen=200_000)

    def sink(self, batch: list[DataEvent | ConnEvent]) -> None:
        with self._lock:
            self._events.extend(batch)

    def of(self, pid: int) -> list[DataEvent | ConnEvent]:
        with self._lock:
            return [e for e in self._events if e.tgid == pid]


@pytest.fixture(scope="module")
def tracer() -> Iterator[tuple[SocketTracer, Collector]]:
    col = Collector()
    t = SocketTracer(col.sink, tls_rescan_s=0)
    try:
        t.start()
    except BpfUnavailable as exc:
        pytest.fail(f"BPF socket tracer cannot load ({exc.reason}): {exc}", pytrace=False)
    tls = t.stats()["tls"]
    if not tls["attached"] or not tls.get("libraries"):
        t.stop()
        pytest.fail(f"OpenSSL uprobes not attached: {tls}", pytrace=False)
    yield t, col
    t.stop()


def test_kernel_emits_plaintext_and_drops_ciphertext(
    tracer: tuple[SocketTracer, Collector], py_server: tuple[int, int], cert: tuple[str, str]
):
    """curl's and the server's TLS fds carry only SSL-flagged plaintext events, from the handshake
    on: the ciphertext never leaves the kernel. The plaintext is on the fd curl connected with."""
    t, col = tracer
    port, server_pid = py_server
    marker = uuid.uuid4().hex
    proc = subprocess.Popen(["curl", "-sS", "--cacert", cert[0], f"https://127.0.0.1:{port}/tls/{marker}/raw"],
                            stdout=subprocess.PIPE, text=True)  # fmt: skip
    assert proc.communicate(timeout=30)[0] == f"hello tls from /tls/{marker}/raw"
    req = f"GET /tls/{marker}/raw HTTP/1.1"

    def seen() -> bool:
        t.drain_now()
        client_ok = any(isinstance(e, DataEvent) and e.ssl and b"hello tls" in e.data for e in col.of(proc.pid))
        server_ok = any(isinstance(e, DataEvent) and e.ssl and req.encode() in e.data for e in col.of(server_pid))
        return client_ok and server_ok

    wait_until(seen, 10, "plaintext events of both sides")
    time.sleep(0.1)
    t.drain_now()
    cevents = col.of(proc.pid)
    connects = [e for e in cevents if isinstance(e, ConnEvent) and e.kind is ConnKind.CONNECT
                and e.remote is not None and e.remote.port == port]  # fmt: skip
    assert len(connects) == 1, connects
    fd = connects[0].fd
    data = [e for e in cevents if isinstance(e, DataEvent) and e.fd == fd]
    assert data and all(e.ssl for e in data), [(SYSCALL_NAMES.get(e.syscall), e.data[:16]) for e in data if not e.ssl]
    assert {SYSCALL_NAMES[e.syscall] for e in data} == {"SSL_write", "SSL_read"}
    sent = b"".join(e.data for e in data if e.direction == 0)
    assert sent.startswith(req.encode()) and b"\r\n\r\n" in sent
    assert any(isinstance(e, ConnEvent) and e.kind is ConnKind.CLOSE and e.fd == fd for e in cevents)

    sevents = col.of(server_pid)
    # The server's only sockets are TLS connections: none of its data events may be ciphertext.
    sdata = [e for e in sevents if isinstance(e, DataEvent)]
    assert sdata and all(e.ssl for e in sdata), [e.data[:16] for e in sdata if not e.ssl]
    assert {SYSCALL_NAMES[e.syscall] for e in sdata} <= {"SSL_read_ex", "SSL_write_ex"}
    stats = t.stats()["tls"]
    assert stats["plaintext_events"] >= 4
