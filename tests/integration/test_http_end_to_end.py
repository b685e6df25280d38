"""End to end, all real: curl and a Python client -> a real HTTP server on loopback -> eBPF -> parser
-> table store -> PxL -> gRPC (sealed Arrow) -> the client and the CLI."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import threading
import uuid
from pathlib import Path

import pytest

from tests.conftest import ROOT, Vizier, free_port, wait_until
from tests.util import as_rows

pytestmark = pytest.mark.ebpf
PEERS = [sys.executable, str(Path(__file__).with_name("http_peers.py"))]


@pytest.fixture(scope="module")
def http_server():
    port = free_port()
    proc = subprocess.Popen([*PEERS, "serve", str(port)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
    yield port, proc.pid
    proc.terminate()
    proc.wait(timeout=10)


def query_script(marker: str) -> str:
    return (
        "import px\n"
        "df = px.DataFrame(table='http_events', start_time='-5m')\n"
        f"df = df[px.contains(df.req_path, '{marker}')]\n"
        "df.pid = px.upid_to_pid(df.upid)\n"
        "px.display(df, 'found')\n"
    )


def rows_for(v: Vizier, marker: str, want: int) -> list[dict]:
    client = v.client()
    try:

        def enough():
            res = client.execute(query_script(marker))
            rows = as_rows(res.tables[0][1]) if res.tables else []
            return rows if len(rows) >= want else None

        return wait_until(enough, 15, f"{want} http_events rows for {marker}")  # type: ignore[return-value]
    finally:
        client.close()


def test_curl_requests_are_traced_on_both_sides(vizier: Vizier, http_server):
    port, server_pid = http_server
    marker = uuid.uuid4().hex
    curl = subprocess.run(
        ["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", f"http://127.0.0.1:{port}/e2e/{marker}/curl"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert curl.stdout == "200"
    rows = rows_for(vizier, marker, 2)
    assert len(rows) == 2, rows
    by_role = {r["trace_role"]: r for r in rows}
    assert set(by_role) == {1, 2}
    server, client = by_role[2], by_role[1]
    assert server["pid"] == server_pid and client["pid"] != server_pid
    for r in rows:
        assert r["req_method"] == "GET"
        assert r["req_path"] == f"/e2e/{marker}/curl"
        assert r["resp_status"] == 200 and r["resp_message"] == "OK"
        assert r["resp_body"] == f"hello from /e2e/{marker}/curl"
        assert r["major_version"] == 1 and r["minor_version"] == 1
        assert r["latency"] > 0
        assert "curl" in json.loads(r["req_headers"])["User-Agent"]
    assert server["local_port"] == port and client["remote_port"] == port
    assert server["remote_port"] == client["local_port"]
    assert client["remote_addr"] == "127.0.0.1" and server["local_addr"] == "127.0.0.1"


def test_python_client_post_body_and_keepalive(vizier: Vizier, http_server):
    port, _ = http_server
    marker = uuid.uuid4().hex
    body = json.dumps({"marker": marker, "pad": "x" * 2000})
    subprocess.run([*PEERS, "post", str(port), f"/e2e/{marker}/py", body], check=True, timeout=30)
    rows = rows_for(vizier, marker, 4)
    assert len(rows) == 4, rows
    posts = [r for r in rows if r["req_method"] == "POST"]
    gets = [r for r in rows if r["req_method"] == "GET"]
    assert {r["trace_role"] for r in posts} == {1, 2} and {r["trace_role"] for r in gets} == {1, 2}
    for r in posts:
        assert r["req_body_size"] == len(body)
        assert r["req_body"] == body[:512]  # the default body cap
        assert r["resp_status"] == 201
        assert json.loads(r["resp_body"])["got"] == len(body)
        assert r["content_type"] == 1  # JSON response
    for r in gets:
        assert r["resp_status"] == 404 and r["resp_body"] == "not here"
        assert r["req_path"] == f"/e2e/{marker}/py/missing"


def test_conn_stats_counts_the_connections(vizier: Vizier, http_server):
    port, _ = http_server
    marker = uuid.uuid4().hex
    subprocess.run(["curl", "-s", "-o", "/dev/null", f"http://127.0.0.1:{port}/e2e/{marker}"], check=True)
    script = (
        "import px\n"
        "df = px.DataFrame(table='conn_stats', start_time='-5m')\n"
        f"df = df[df.remote_port == {port}]\n"
        "df = df[df.trace_role == 1]\n"
        "px.display(df)\n"
    )
    client = vizier.client()
    try:

        def seen():
            res = client.execute(script)
            rows = as_rows(res.tables[0][1]) if res.tables else []
            return [r for r in rows if r["conn_close"] >= 1 and r["bytes_sent"] > 0] or None

        rows = wait_until(seen, 15, "conn_stats rows for the curl connection")
    finally:
        client.close()
    assert rows[0]["protocol"] == 1 and rows[0]["addr_family"] == 1  # type: ignore[index]


def _cli(vizier: Vizier, *args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "pxtui.cli", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env=env or vizier.env(),
        timeout=60,
    )


def test_cli_run_json_and_exit_codes(vizier: Vizier, http_server, tmp_path):
    port, _ = http_server
    marker = uuid.uuid4().hex
    subprocess.run(["curl", "-s", "-o", "/dev/null", f"http://127.0.0.1:{port}/cli/{marker}"], check=True)
    rows_for(vizier, marker, 2)
    out = _cli(vizier, "run", "px/http_data", "-o", "json", "--", f"--path_filter={marker}", "--source_filter=")
    assert out.returncode == 0, out.stderr
    doc = json.loads(out.stdout)
    assert doc["script"] == "px/http_data" and doc["args"]["path_filter"] == marker
    table = doc["tables"]["http_data"]
    names = [c["name"] for c in table["columns"]]
    for col in ("time_", "source", "destination", "method", "path", "status", "latency"):
        assert col in names
    assert {"name": "latency", "type": "INT64", "semantic_type": "ST_DURATION_NS"} in table["columns"]
    mine = [r for r in table["rows"] if marker in r["path"]]
    assert len(mine) == 2
    server_row = next(r for r in mine if r["trace_role"] == 2)
    assert server_row["destination"].startswith("host/") and server_row["source"].startswith("127.0.0.1:")

    jsonl = _cli(vizier, "live", "px/http_data", "--once", "-o", "jsonl", "--", "--path_filter", marker)
    assert jsonl.returncode == 0, jsonl.stderr
    first = json.loads(jsonl.stdout.splitlines()[0])
    assert next(iter(first)) == "_tableName_" and first["_tableName_"] == "http_data"

    bad = tmp_path / "bad.pxl"
    bad.write_text("import px\ndf = px.DataFrame(table='http_events')\ndf.x = df.no_such_column\npx.display(df)\n")
    err = _cli(vizier, "run", "-f", str(bad))
    assert err.returncode == 1
    assert "L3 : C" in err.stderr and "no_such_column" in err.stderr

    wrong_key = {**vizier.env(), "PXTUI_API_KEY": "pxk_wrong"}
    denied = _cli(vizier, "run", "px/http_data", "-o", "json", env=wrong_key)
    assert denied.returncode == 3 and "API key" in denied.stderr and denied.stdout == ""
    no_key = {k: v for k, v in vizier.env().items() if k != "PXTUI_API_KEY"}
    assert _cli(vizier, "run", "px/http_data", env=no_key).returncode == 3

    usage = _cli(vizier, "run", "px/no_such_script")
    assert usage.returncode == 2 and "px/http_data" in usage.stderr


def test_status_reports_probes_headers_and_tables(vizier: Vizier):
    out = _cli(vizier, "status", "-o", "json")
    assert out.returncode == 0, out.stderr
    agent = json.loads(out.stdout)["agents"][0]
    assert agent["state"] == "AGENT_STATE_HEALTHY"
    assert any("sys_enter_write" in p or "write" in p for p in agent["probes"])
    assert agent["kernel_headers"].startswith(("exact", "fallback"))
    assert int(agent["events_seen"]) > 0
    assert int(agent.get("events_lost", 0)) >= 0  # counted (proto3 omits a zero); the load decides its value
    tables = {t["name"]: t for t in agent["tables"]}
    assert int(tables["http_events"]["rows"]) > 0 and int(tables["http_events"]["max_time_ns"]) > 0
    text = _cli(vizier, "status")
    assert "kernel headers" in text.stdout and "http_events" in text.stdout and "lost:" in text.stdout


def test_agent_keeps_serving_after_malformed_http(vizier: Vizier, http_server):
    """Garbage on an HTTP-looking connection is counted as a parse error, never a crash."""
    port, _ = http_server
    code = (
        "import socket,sys\n"
        f"s=socket.create_connection(('127.0.0.1',{port}))\n"
        "s.sendall(b'GET /x HTTP/1.1\\r\\nContent-Length: zz\\r\\n\\r\\n\\x00\\xff garbage')\n"
        "s.close()\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
    marker = uuid.uuid4().hex
    subprocess.run(["curl", "-s", "-o", "/dev/null", f"http://127.0.0.1:{port}/after/{marker}"], check=True)
    assert len(rows_for(vizier, marker, 2)) == 2
    assert vizier.proc.poll() is None
    client = vizier.client()
    try:
        agent = client.get_status().agents[0]
    finally:
        client.close()
    assert agent.state == "AGENT_STATE_HEALTHY" and agent.parse_errors >= 1


def _conns_reset(v: Vizier) -> tuple[int, int]:
    client = v.client()
    try:
        agent = client.get_status().agents[0]
    finally:
        client.close()
    return agent.conns_reset, agent.parse_errors


def test_a_connection_that_stops_parsing_is_reset_and_counted(vizier: Vizier):
    """A valid exchange, then garbage past the tracker's bound (1 MiB without a record after the parse
    error) on the same connection: both ends are reset (conn_tracker.py) and counted in GetStatus."""
    reset0, errors0 = _conns_reset(vizier)
    marker = uuid.uuid4().hex
    garbage = bytes(range(256)).replace(b" ", b"_") * 64  # 16 KiB, nothing for HTTP to resync on
    with socket.create_server(("127.0.0.1", 0)) as srv:
        cli = socket.create_connection(srv.getsockname())
        conn, _ = srv.accept()
        with cli, conn:
            cli.sendall(f"GET /reset/{marker} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
            got = b""
            while not got.endswith(b"\r\n\r\n"):
                got += conn.recv(4096)
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
            assert cli.recv(4096).endswith(b"ok")
            assert len(rows_for(vizier, marker, 2)) == 2  # both ends are HTTP connections now

            def drain() -> None:
                while conn.recv(1 << 16):
                    pass

            reader = threading.Thread(target=drain)
            reader.start()
            for _ in range(96):  # 1.5 MiB in 16 KiB writes: one event each, none truncated
                cli.sendall(garbage)
            cli.shutdown(socket.SHUT_WR)
            reader.join(timeout=30)

            def counted():
                reset, errors = _conns_reset(vizier)
                return (reset, errors) if reset >= reset0 + 2 else None

            _, errors = wait_until(counted, 15, "conns_reset to count both ends of the garbage connection")
    assert errors > errors0
    text = _cli(vizier, "status")
    assert text.returncode == 0 and "connections reset: " in text.stdout
