"""DNS and NATS end to end, all real: dnsmasq started by the test (UDP and TCP on a free loopback
port, and on 127.0.0.1:53 inside a network namespace for the glibc resolver), dig, dnspython,
getent, nats-py against the machine's nats-server -> eBPF (sendmmsg/recvmmsg included) -> the DNS and
NATS parsers -> table store -> PxL over gRPC and the bundled px/dns_data, px/dns_flow_graph and
px/nats_data scripts. Each test finds exactly its own (marked) names or subjects.

dnsmasq comes from Debian's dnsmasq-base and dig from dnsutils (scripts/bootstrap.sh installs both);
nats-server must listen on 127.0.0.1:4222 (scripts/ensure_services.sh starts it).
"""

from __future__ import annotations

import json
import re
import shutil
import socket
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import Vizier, free_port, wait_until
from tests.integration.protocol_harness import cli_json, poll_rows, table_script

pytestmark = pytest.mark.ebpf

NATS_PORT = 4222
HEADER_RE = (
    r'\{"txid":\d+,"qr":{qr},"opcode":0,"aa":\d,"tc":0,"rd":1,"ra":\d,"ad":\d,"cd":0,"rcode":{rcode},'
    r'"num_queries":1,"num_answers":{an},"num_auth":\d+,"num_addl":\d+\}'
)


def header_re(qr: int, rcode: int, answers: int | str) -> re.Pattern[str]:
    return re.compile(HEADER_RE.replace("{qr}", str(qr)).replace("{rcode}", str(rcode)).replace("{an}", str(answers)))


def need(binary: str) -> str:
    path = shutil.which(binary)
    if path is None:
        pytest.fail(f"{binary} is not installed: run scripts/bootstrap.sh (apt-get install dnsmasq-base dnsutils)")
    return path


def dnsmasq_args(port: int, hosts: Path, marker: str) -> list[str]:
    """A dnsmasq that answers only from its own files (no upstream, no /etc/hosts; pxtui.test is local, so an
    unknown name there is NXDOMAIN), logs to stderr."""
    return [
        need("dnsmasq"), "--no-daemon", f"--port={port}", "--listen-address=127.0.0.1",
        "--bind-interfaces", "--no-resolv", "--no-hosts", "--no-negcache", "--local=/pxtui.test/",
        f"--addn-hosts={hosts}",
        f"--cname=alias-{marker}.pxtui.test,svc-{marker}.pxtui.test",
        f"--mx-host=mail-{marker}.pxtui.test,svc-{marker}.pxtui.test,10", "--log-facility=-",
    ]  # fmt: skip


def write_hosts(path: Path, marker: str) -> Path:
    path.write_text(f"192.0.2.10 svc-{marker}.pxtui.test\n2001:db8::10 svc-{marker}.pxtui.test\n")
    return path


@pytest.fixture
def dns_server(tmp_path: Path) -> Iterator[tuple[int, str]]:
    """dnsmasq on a free loopback port, UDP and TCP; yields (port, marker)."""
    marker = uuid.uuid4().hex[:12]
    port = free_port()
    hosts = write_hosts(tmp_path / "hosts", marker)
    with open(tmp_path / "dnsmasq.log", "wb") as log:
        proc = subprocess.Popen(dnsmasq_args(port, hosts, marker), stdout=subprocess.DEVNULL, stderr=log)
    try:
        wait_until(lambda: _answers(port) or proc.poll() is not None, 10, "dnsmasq to answer")
        if proc.poll() is not None:
            pytest.fail(f"dnsmasq exited ({proc.returncode}): {(tmp_path / 'dnsmasq.log').read_text()}")
        yield port, marker
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def _answers(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def run(*argv: str) -> str:
    out = subprocess.run(argv, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, f"{argv}: {out.stderr}"
    return out.stdout


def query_rows(v: Vizier, table: str, column: str, marker: str, want, timeout: float = 20) -> list[dict]:
    """Poll PxL until `want(rows)` holds for the rows of `table` whose `column` contains marker."""
    script = table_script(table, [f"px.contains(df.{column}, '{marker}')"])
    return poll_rows(v, script, want, f"{table} rows for {marker}", timeout)


def cli(v: Vizier, *args: str) -> dict:
    return cli_json(v, *args)


def by_query(rows: list[dict], role: int) -> dict[str, list[dict]]:
    out: dict[str, list[dict]] = {}
    for r in rows:
        if r["trace_role"] == role:
            out.setdefault(r["req_body"], []).append(r)
    return out


def q(name: str, qtype: str) -> str:
    return json.dumps({"queries": [{"name": name, "type": qtype}]}, separators=(",", ":"))


def test_dns_udp_tcp_and_errors_from_dig_and_dnspython(vizier: Vizier, dns_server):
    port, m = dns_server
    svc, alias, mail, nx = (f"{p}-{m}.pxtui.test" for p in ("svc", "alias", "mail", "nx"))
    dig = need("dig")
    assert run(dig, "@127.0.0.1", "-p", str(port), svc, "A", "+short").split() == ["192.0.2.10"]  # UDP, sendmmsg
    assert run(dig, "+tcp", "@127.0.0.1", "-p", str(port), alias, "A", "+short").split() == [
        f"{svc}.", "192.0.2.10"]  # fmt: skip
    run(dig, "@127.0.0.1", "-p", str(port), nx, "A")
    run(dig, "@127.0.0.1", "-p", str(port), mail, "MX", "+short")
    resolved = run(
        sys.executable,
        "-c",
        (  # dnspython: sendto/recvfrom on an unconnected socket
            "import dns.resolver\n"
            "r = dns.resolver.Resolver(configure=False); r.nameservers = ['127.0.0.1']; "
            f"r.port = {port}\n"
            f"print(*[a.to_text() for a in r.resolve('{svc}', 'AAAA')])\n"
        ),
    )
    assert resolved.split() == ["2001:db8::10"]

    want = {q(svc, "A"), q(alias, "A"), q(nx, "A"), q(mail, "MX"), q(svc, "AAAA")}
    rows = query_rows(vizier, "dns_events", "req_body", m,
                      lambda rs: set(by_query(rs, 1)) >= want and set(by_query(rs, 2)) >= want)  # fmt: skip
    client, server = by_query(rows, 1), by_query(rows, 2)
    assert set(client) == want and set(server) == want, rows
    for side, role_rows in (("client", client), ("server", server)):
        assert all(len(rs) == 1 for rs in role_rows.values()), (side, role_rows)
    a = client[q(svc, "A")][0]
    assert a["resp_body"] == f'{{"answers":[{{"name":"{svc}","type":"A","addr":"192.0.2.10"}}]}}'
    assert header_re(0, 0, 0).fullmatch(a["req_header"]) and header_re(1, 0, 1).fullmatch(a["resp_header"])
    assert json.loads(a["req_header"])["txid"] == json.loads(a["resp_header"])["txid"]
    assert client[q(alias, "A")][0]["resp_body"] == (
        f'{{"answers":[{{"name":"{alias}","type":"CNAME","cname":"{svc}"}},'
        f'{{"name":"{svc}","type":"A","addr":"192.0.2.10"}}]}}'
    )
    assert header_re(1, 3, 0).fullmatch(client[q(nx, "A")][0]["resp_header"])  # NXDOMAIN
    assert client[q(nx, "A")][0]["resp_body"] == '{"answers":[]}'
    assert client[q(mail, "MX")][0]["resp_body"] == (
        f'{{"answers":[{{"name":"{mail}","type":"MX","data":"10 {svc}."}}]}}'
    )
    assert client[q(svc, "AAAA")][0]["resp_body"] == (
        f'{{"answers":[{{"name":"{svc}","type":"AAAA","addr":"2001:db8::10"}}]}}'
    )
    for r in [rs[0] for rs in client.values()]:
        assert r["remote_addr"] == "127.0.0.1" and r["remote_port"] == port and r["latency"] > 0, r
    for r in [rs[0] for rs in server.values()]:  # dnsmasq's side: one socket, a connection per peer
        assert r["local_port"] == port and r["remote_addr"] == "127.0.0.1" and r["remote_port"] != port, r
        assert r["latency"] > 0

    doc = cli(vizier, "run", "px/dns_data", "-o", "json", "--", f"--body_filter={m}")
    mine = doc["tables"]["dns_data"]["rows"]
    assert {(r["query_name"], r["rcode"]) for r in mine} >= {(svc, 0), (alias, 0), (nx, 3), (mail, 0)}
    flows = cli(vizier, "run", "px/dns_flow_graph", "-o", "json")["tables"]["dns_flows"]["rows"]
    assert flows and all(r["request_count"] >= 1 for r in flows)


def test_glibc_resolver_sendmmsg_in_a_network_namespace(vizier: Vizier, tmp_path: Path):
    """getent -> glibc's resolver (connect, sendmmsg of A+AAAA, recvfrom) -> dnsmasq on 127.0.0.1:53,
    both inside a private network and mount namespace so the host's resolver is untouched."""
    m = uuid.uuid4().hex[:12]
    svc = f"svc-{m}.pxtui.test"
    hosts = write_hosts(tmp_path / "hosts", m)
    (tmp_path / "resolv.conf").write_text("nameserver 127.0.0.1\n")
    (tmp_path / "nsswitch.conf").write_text("hosts: dns\n")
    dnsmasq = " ".join(dnsmasq_args(53, hosts, m))
    script = (
        "set -e; ip link set lo up; "
        f"mount --bind {tmp_path}/resolv.conf /etc/resolv.conf; "
        f"mount --bind {tmp_path}/nsswitch.conf /etc/nsswitch.conf; "
        f"{dnsmasq} 2>{tmp_path}/dnsmasq.log & pid=$!; "
        "for i in $(seq 50); do (exec 3<>/dev/tcp/127.0.0.1/53) 2>/dev/null && break; sleep 0.1; done; "
        f"getent ahosts {svc}; rc=$?; kill $pid; wait $pid || true; exit $rc"
    )
    out = run("unshare", "--net", "--mount", "bash", "-c", script)
    assert "192.0.2.10" in out and "2001:db8::10" in out, out
    want = {q(svc, "A"), q(svc, "AAAA")}
    rows = query_rows(vizier, "dns_events", "req_body", m,
                      lambda rs: set(by_query(rs, 1)) >= want and set(by_query(rs, 2)) >= want)  # fmt: skip
    client = by_query(rows, 1)
    assert client[q(svc, "A")][0]["resp_body"].endswith('"type":"A","addr":"192.0.2.10"}]}')
    assert client[q(svc, "AAAA")][0]["resp_body"].endswith('"type":"AAAA","addr":"2001:db8::10"}]}')
    a_txid = json.loads(client[q(svc, "A")][0]["req_header"])["txid"]
    aaaa_txid = json.loads(client[q(svc, "AAAA")][0]["req_header"])["txid"]
    assert a_txid != aaaa_txid  # two queries in one sendmmsg, each matched by its own txid
    assert all(r[0]["remote_port"] == 53 and r[0]["latency"] > 0 for r in client.values())


NATS_CLIENT = """
import asyncio, nats
M = {m!r}

async def main():
    nc = await nats.connect('nats://127.0.0.1:{port}', name='pxtui-' + M)
    async def reply(msg):
        await msg.respond(b'pong-' + msg.data)
    await nc.subscribe('svc.' + M, cb=reply)
    got = await nc.request('svc.' + M, b'ping-' + M.encode(), timeout=5)
    assert got.data == b'pong-ping-' + M.encode(), got.data
    q = await nc.subscribe('work.' + M, queue='workers-' + M)
    await nc.publish('work.' + M, b'job-' + M.encode(), headers={{'Trace': M}})
    job = await q.next_msg(timeout=5)
    assert job.headers == {{'Trace': M}}, job.headers
    await q.unsubscribe()
    await nc.flush()
    await nc.close()
    v = await nats.connect('nats://127.0.0.1:{port}', verbose=True)
    await v.publish('verbose.' + M, b'acked-' + M.encode())
    await v.flush()
    await v.close()

asyncio.run(main())
"""


def test_nats_pub_sub_request_reply_headers_and_verbose(vizier: Vizier):
    try:
        socket.create_connection(("127.0.0.1", NATS_PORT), timeout=2).close()
    except OSError:
        pytest.fail(f"nats-server is not listening on 127.0.0.1:{NATS_PORT}; start it with scripts/ensure_services.sh")
    m = uuid.uuid4().hex[:12]
    run(sys.executable, "-c", NATS_CLIENT.format(m=m, port=NATS_PORT))

    def complete(rows: list[dict]) -> bool:
        cmds = {(r["cmd"], r["trace_role"]) for r in rows}
        return {("PUB", 1), ("HPUB", 1), ("SUB", 1), ("MSG", 1), ("HMSG", 1), ("PUB", 2), ("MSG", 2)} <= cmds and any(
            r["resp"] == "+OK" for r in rows
        )

    rows = query_rows(vizier, "nats_events.beta", "body", m, complete)
    client = [r for r in rows if r["trace_role"] == 1]
    bodies = {(r["cmd"], r["body"]) for r in client}
    assert ("SUB", f'{{"sid":"1","subject":"svc.{m}"}}') in bodies
    [req] = [json.loads(b) for c, b in bodies if c == "PUB" and b.startswith('{"payload":"ping-')]
    assert req["payload"] == f"ping-{m}" and req["subject"] == f"svc.{m}" and req["reply-to"].startswith("_INBOX.")
    [reply] = [json.loads(b) for c, b in bodies if c == "PUB" and b.startswith('{"payload":"pong-')]
    assert reply == {"payload": f"pong-ping-{m}", "subject": req["reply-to"]}
    delivered = [json.loads(b) for c, b in bodies if c == "MSG"]
    assert {d["payload"] for d in delivered} >= {f"ping-{m}", f"pong-ping-{m}"}
    assert any(d.get("reply-to") == req["reply-to"] and d["subject"] == f"svc.{m}" for d in delivered)
    [queue_sub] = [json.loads(b) for c, b in bodies if c == "SUB" and f"work.{m}" in b]
    assert queue_sub["queue group"] == f"workers-{m}"
    [hpub] = [json.loads(b) for c, b in bodies if c == "HPUB"]
    assert hpub == {"headers": {"Trace": m}, "payload": f"job-{m}", "subject": f"work.{m}"}
    [hmsg] = [json.loads(b) for c, b in bodies if c == "HMSG"]
    assert hmsg["headers"] == {"Trace": m} and hmsg["payload"] == f"job-{m}" and hmsg["sid"] == queue_sub["sid"]
    [verbose_pub] = [r for r in client if r["cmd"] == "PUB" and f"acked-{m}" in r["body"]]
    assert verbose_pub["resp"] == "+OK"  # verbose mode: the server acknowledged the publish
    assert all(r["resp"] == "" for r in client if r is not verbose_pub and r["cmd"] != "CONNECT")
    assert all(r["remote_port"] == NATS_PORT for r in client)
    server = [r for r in rows if r["trace_role"] == 2]  # nats-server's own side of the same messages
    assert all(r["local_port"] == NATS_PORT and r["remote_port"] != NATS_PORT for r in server)
    assert {(r["cmd"], r["body"]) for r in server} >= {(c, b) for c, b in bodies if c in ("PUB", "HPUB", "SUB")}

    doc = cli(vizier, "run", "px/nats_data", "-o", "json", "--", f"--body_filter={m}")
    shown = doc["tables"]["nats_data"]["rows"]
    assert {r["cmd"] for r in shown} >= {"PUB", "SUB", "MSG", "HPUB", "HMSG"}
    assert f"svc.{m}" in {r["subject"] for r in shown}
