"""The PEM's metrics connectors against real workloads: a busy process, a network namespace, a
real JVM that collects garbage, TCP traffic that nftables drops, and processes that die badly.

Rows are read back through the real PxL path (compile_pxl + execute over the table store), as a
script would. Everything here needs root (eBPF, namespaces, other processes' /proc); without it,
or without nft, ip, java or javac, the tests FAIL with the reason: a skip would hide a broken agent.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pytest

from cluster.metadata.local import LocalMetadata
from cluster.pem.process_info import ProcessCache, split_upid
from cluster.pem.sources.connector import ConnectorContext
from cluster.pem.sources.jvm_stats import JvmStatsConnector
from cluster.pem.sources.network_stats import NetworkStatsConnector, parse_net_dev
from cluster.pem.sources.proc_exit import ProcExitConnector
from cluster.pem.sources.process_stats import ProcessStatsConnector
from cluster.pem.sources.tcp_stats import TcpStatsConnector
from cluster.pxl import compile_pxl, execute
from cluster.store.table_store import TableStore

pytestmark = pytest.mark.ebpf

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "jvm"
ASID = 7


def require(*tools: str) -> None:
    if os.geteuid() != 0:
        pytest.fail(f"these tests need root (euid is {os.geteuid()}): run them as root (./scripts/test.sh)")
    missing = [t for t in tools if shutil.which(t) is None]
    if missing:
        pytest.fail(f"missing tool(s) {', '.join(missing)}: run ./scripts/bootstrap.sh (nftables, iproute2, JDK)")


def wait_until(pred: Callable[[], object], what: str, timeout: float = 15.0) -> object:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = pred()
        if got:
            return got
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")


@dataclass
class Node:
    store: TableStore
    ctx: ConnectorContext
    meta: LocalMetadata

    def pxl(self, script: str) -> pa.Table:
        """Run a PxL script over the store; return its single output table with time_ as int64."""
        q = compile_pxl(script, now_ns=time.time_ns(), schemas=self.store.schemas())
        [(_, table)] = execute(q, self.store, self.meta)
        if "time_" in table.column_names:
            table = table.set_column(table.column_names.index("time_"), "time_", table["time_"].cast(pa.int64()))
        return table


@pytest.fixture
def node() -> Node:
    require()
    store = TableStore()
    procs = ProcessCache(ASID)
    return Node(store, ConnectorContext(store, procs, ASID, os.getpid()), LocalMetadata(procs))


def run(*cmd: str) -> None:
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=30)
    if r.returncode:
        raise AssertionError(f"{' '.join(cmd)} failed ({r.returncode}): {r.stderr.strip()}")


@dataclass
class Netns:
    name: str
    host_ip: str
    ns_ip: str

    def popen(self, *cmd: str, **kw: object) -> subprocess.Popen:
        return subprocess.Popen(["ip", "netns", "exec", self.name, *cmd], **kw)  # type: ignore[call-overload]


@pytest.fixture
def netns() -> Iterator[Netns]:
    """A network namespace joined to the host by a veth pair on a private /30."""
    require("ip", "nft")
    tag = os.getpid() % 250
    ns = Netns(f"pxt-metrics-{os.getpid()}", f"10.213.{tag}.1", f"10.213.{tag}.2")
    veth = f"pxm{os.getpid() % 100000}"
    run("ip", "netns", "add", ns.name)
    try:
        run("ip", "link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", ns.name)
        run("ip", "addr", "add", f"{ns.host_ip}/30", "dev", veth)
        run("ip", "link", "set", veth, "up")
        run("ip", "-n", ns.name, "addr", "add", f"{ns.ns_ip}/30", "dev", "eth0")
        run("ip", "-n", ns.name, "link", "set", "eth0", "up")
        run("ip", "-n", ns.name, "link", "set", "lo", "up")
        yield ns
    finally:
        subprocess.run(["ip", "link", "del", veth], capture_output=True)
        subprocess.run(["ip", "netns", "del", ns.name], capture_output=True)


# A TCP sink that prints "ready", then reads and discards until EOF, for every connection.
SINK = textwrap.dedent(
    """
    import socket, sys, threading
    s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((sys.argv[1], int(sys.argv[2]))); s.listen(16)
    print("ready", flush=True)
    def drain(c):
        while c.recv(65536):
            pass
        c.close()
    while True:
        c, _ = s.accept()
        threading.Thread(target=drain, args=(c,), daemon=True).start()
    """
)


def start_sink(ns: Netns, port: int) -> subprocess.Popen:
    p = ns.popen(sys.executable, "-c", SINK, ns.ns_ip, str(port), stdout=subprocess.PIPE, text=True)
    assert p.stdout is not None and p.stdout.readline().strip() == "ready", "the sink in the netns did not start"
    return p


def stop(p: subprocess.Popen) -> None:
    p.kill()
    p.wait(timeout=10)


# ---- process_stats ------------------------------------------------------------------------------


def test_process_stats_of_a_busy_process(node: Node, tmp_path: Path) -> None:
    busy = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import os, sys\n"
            "f = open(sys.argv[1], 'wb'); f.write(b'x' * 3_000_000); f.flush(); os.fsync(f.fileno())\n"
            "print('wrote', flush=True)\n"
            "while True: pass\n",
            str(tmp_path / "out.bin"),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert busy.stdout is not None and busy.stdout.readline().strip() == "wrote"
        conn = ProcessStatsConnector()
        conn.start(node.ctx)
        conn.tick(time.time_ns())
        time.sleep(1.0)
        conn.tick(time.time_ns())
        t = node.pxl(
            "import px\n"
            "df = px.DataFrame(table='process_stats')\n"
            "df.pid = px.upid_to_pid(df.upid)\n"
            f"df = df[df.pid == {busy.pid}]\n"
            "px.display(df)\n"
        )
        rows = sorted(t.to_pylist(), key=lambda r: r["time_"])
        assert len(rows) == 2, rows
        first, second = rows
        assert split_upid(first["upid"]) == (ASID, busy.pid, node.ctx.processes.lookup(busy.pid).start_ticks)
        busy_ns = second["cpu_utime_ns"] - first["cpu_utime_ns"]
        # 2 shared cores: a spinner gets well under a full core, but far more than an idle process
        assert busy_ns >= 0.2e9, f"a spinning process used only {busy_ns / 1e9:.2f} s of user CPU in 1 s"
        raw = Path(f"/proc/{busy.pid}/stat").read_bytes()
        utime_now = int(raw[raw.rfind(b")") + 2 :].split()[11]) * 10**9 // os.sysconf("SC_CLK_TCK")
        assert second["cpu_utime_ns"] <= utime_now < second["cpu_utime_ns"] + 1e9
        assert second["wchar_bytes"] >= 3_000_000 and second["write_bytes"] >= 3_000_000
        assert second["rss_bytes"] > 1_000_000 and second["vsize_bytes"] > second["rss_bytes"]
        assert second["num_threads"] >= 1 and second["minor_faults"] > 0
        # every process on the host, not only the ones the PEM has seen
        assert conn.last_rows >= len([d for d in os.listdir("/proc") if d.isdigit()]) - 10
        # loss is counted, not hidden: exactly the processes whose io file we may not read (in a
        # sandbox, pid 1 lives outside our user namespace), once per collection
        assert conn.status().events_lost == 2 * len(unreadable_io())
    finally:
        stop(busy)


def unreadable_io() -> list[int]:
    out = []
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                Path(f"/proc/{d}/io").read_bytes()
            except PermissionError:
                out.append(int(d))
            except OSError:
                pass
    return out


# ---- network_stats ------------------------------------------------------------------------------


def test_network_stats_of_a_network_namespace(node: Node, netns: Netns) -> None:
    port = 9311
    sink = start_sink(netns, port)
    try:
        conn = NetworkStatsConnector()
        conn.start(node.ctx)
        payload = 2_000_000
        with socket.create_connection((netns.ns_ip, port), timeout=10) as s:
            s.sendall(b"z" * payload)
        wait_until(lambda: parse_net_dev(Path(f"/proc/{sink.pid}/net/dev").read_bytes()).rx_bytes >= payload, "rx")
        conn.tick(time.time_ns())
        ns_ino = os.stat(f"/proc/{sink.pid}/ns/net").st_ino
        pod_id = conn.last_pods[ns_ino]
        t = node.pxl(
            f"import px\ndf = px.DataFrame(table='network_stats')\ndf = df[df.pod_id == '{pod_id}']\npx.display(df)\n"
        )
        [row] = t.to_pylist()
        truth = parse_net_dev(Path(f"/proc/{sink.pid}/net/dev").read_bytes())
        assert payload <= row["rx_bytes"] <= truth.rx_bytes
        assert 0 < row["rx_packets"] <= truth.rx_packets and 0 < row["tx_packets"] <= truth.tx_packets
        assert row["tx_bytes"] > 0  # the ACKs
        # the host namespace is a different row: its traffic never mixes with the netns's
        host = [r for r in node.pxl("import px\npx.display(px.DataFrame(table='network_stats'))\n").to_pylist()]
        assert len({r["pod_id"] for r in host}) == len(host) >= 2
    finally:
        stop(sink)


# ---- jvm_stats ----------------------------------------------------------------------------------


def perf_counters(pid: int) -> dict[str, str]:
    out = subprocess.run(["jcmd", str(pid), "PerfCounter.print"], capture_output=True, text=True, timeout=60).stdout
    return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)


def test_jvm_stats_of_a_real_jvm(node: Node, tmp_path: Path) -> None:
    require("java", "javac", "jcmd")
    run("javac", "-d", str(tmp_path), str(FIXTURES / "Alloc.java"))
    jvm = subprocess.Popen(["java", "-Xmx64m", "-cp", str(tmp_path), "Alloc", "2"], stdout=subprocess.PIPE, text=True)
    try:
        assert jvm.stdout is not None and jvm.stdout.readline().strip() == "allocated"
        conn = JvmStatsConnector()
        conn.start(node.ctx)
        conn.tick(time.time_ns())
        assert jvm.pid in conn.jvms(), f"JVM {jvm.pid} not discovered; found {conn.jvms()}"
        truth = perf_counters(jvm.pid)  # the JVM is idle now: its counters no longer move
        t = node.pxl(
            "import px\n"
            "df = px.DataFrame(table='jvm_stats')\n"
            f"df = df[px.upid_to_pid(df.upid) == {jvm.pid}]\n"
            "df.used = px.Bytes(df.used_heap_size)\n"
            "px.display(df)\n"
        )
        [row] = t.to_pylist()
        young, full = conn.gc_counts[jvm.pid]
        assert young == int(truth["sun.gc.collector.0.invocations"]) > 0
        assert full == int(truth["sun.gc.collector.1.invocations"]) >= 1  # System.gc()
        freq = int(truth["sun.os.hrt.frequency"])
        assert row["young_gc_time"] == int(truth["sun.gc.collector.0.time"]) * 10**9 // freq > 0
        assert row["full_gc_time"] == int(truth["sun.gc.collector.1.time"]) * 10**9 // freq > 0
        assert 0 < row["used_heap_size"] <= row["total_heap_size"] <= row["max_heap_size"]
        assert row["max_heap_size"] == pytest.approx(64 * 2**20, rel=0.01)  # -Xmx64m
        assert row["used"] == row["used_heap_size"]
        assert split_upid(row["upid"])[1] == jvm.pid
        assert conn.status().events_lost == 0
    finally:
        jvm.terminate()  # SIGTERM: the JVM removes its hsperfdata file on the way out (SIGKILL would not)
        jvm.wait(timeout=30)


# ---- tcp_stats and proc_exit (eBPF, loaded once per module) ------------------------------------


@pytest.fixture(scope="module")
def tcp_node() -> Iterator[tuple[Node, TcpStatsConnector]]:
    require("ip", "nft")
    store = TableStore()
    procs = ProcessCache(ASID)
    n = Node(store, ConnectorContext(store, procs, ASID, os.getpid()), LocalMetadata(procs))
    conn = TcpStatsConnector(stats_period_s=3600)
    try:
        conn.start(n.ctx)
    except Exception as e:
        pytest.fail(f"tcp_stats cannot start: {e}")
    yield n, conn
    conn.stop()


# A client in its own process (so its upid is checked): connect, send, wait for "go", send again
# while nftables drops the traffic, then close; then provoke a reset from a closed port.
CLIENT = textwrap.dedent(
    """
    import socket, sys
    host, port, closed = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    s = socket.create_connection((host, port)); s.sendall(b"a" * 10000)
    print("connected", s.getsockname()[1], flush=True)
    sys.stdin.readline()
    s.sendall(b"b" * 20000)
    print("sent", flush=True)
    sys.stdin.readline()
    s.sendall(b"c" * 5000); s.close()
    try:
        socket.create_connection((host, closed), timeout=5)
    except ConnectionRefusedError:
        print("refused", flush=True)
    """
)


def test_tcp_retransmits_drops_and_resets(tcp_node: tuple[Node, TcpStatsConnector], netns: Netns) -> None:
    node, conn = tcp_node
    port, closed = 9312, 9313
    sink = start_sink(netns, port)
    client = subprocess.Popen(
        [sys.executable, "-c", CLIENT, netns.ns_ip, str(port), str(closed)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert client.stdin is not None and client.stdout is not None
    table = f"pxt_{os.getpid()}"
    try:
        word, lport = client.stdout.readline().split()
        assert word == "connected"
        nft = f"add table inet {table}; add chain inet {table} input {{ type filter hook input priority 0; }}; "
        nft += f"add rule inet {table} input tcp dport {port} drop"
        run("ip", "netns", "exec", netns.name, "nft", nft)
        client.stdin.write("go\n")
        client.stdin.flush()
        assert client.stdout.readline().strip() == "sent"

        def retransmitted() -> bool:
            conn.tick(time.time_ns())
            ev = node.store.get("tcp_events.beta")
            return sum(b.num_rows for b in ev.scan()) > 0 and bool(
                node.pxl(
                    "import px\ndf = px.DataFrame(table='tcp_events.beta')\n"
                    f"df = df[df.event == 'retransmit' and df.remote_port == {port}]\npx.display(df)\n"
                ).num_rows
            )

        wait_until(retransmitted, "a retransmit while nftables drops the traffic", timeout=20)
        time.sleep(1.0)  # a few more drops and retransmits
        run("ip", "netns", "exec", netns.name, "nft", f"delete table inet {table}")
        client.stdin.write("go\n")
        client.stdin.flush()
        assert client.stdout.readline().strip() == "refused"
        client.wait(timeout=10)
        wait_until(lambda: conn.tick(time.time_ns()) or _has_reset(node, closed), "the reset from a closed port")
        conn.flush_stats_now()
        conn.tick(time.time_ns())

        events = node.pxl(
            "import px\ndf = px.DataFrame(table='tcp_events.beta')\n"
            f"df = df[df.remote_port == {port} or df.local_port == {port} or df.remote_port == {closed} "
            f"or df.local_port == {closed}]\n"
            "df.pid = px.upid_to_pid(df.upid)\npx.display(df)\n"
        ).to_pylist()
        retrans = [e for e in events if e["event"] == "retransmit"]
        assert retrans and all(e["pid"] == client.pid for e in retrans), retrans
        assert all(e["local_port"] == int(lport) and e["remote_addr"] == netns.ns_ip for e in retrans)
        assert all(e["state"] == "TCP_ESTABLISHED" for e in retrans)
        drops = [e for e in events if e["event"] == "drop" and e["reason"] == "NETFILTER_DROP"]
        assert drops, f"no NETFILTER_DROP among {[(e['event'], e['reason']) for e in events]}"
        # Both ends live on this host, so a dropped packet belongs to the client's connection (an
        # outbound packet, attributed to the client) or to the sink's (inbound): either way, this flow.
        flow = {(int(lport), port), (port, int(lport))}
        assert all((e["local_port"], e["remote_port"]) in flow for e in drops), drops
        assert all(e["pid"] == client.pid for e in drops if e["local_port"] == int(lport)), drops
        received = [e for e in events if e["event"] == "receive_reset" and e["remote_port"] == closed]
        assert received and received[0]["pid"] == client.pid
        sent = [e for e in events if e["event"] == "send_reset" and e["local_port"] == closed]
        assert sent and sent[0]["reason"] == "NO_SOCKET"

        stats = node.pxl(
            "import px\ndf = px.DataFrame(table='tcp_stats_events')\n"
            f"df = df[df.local_port == {lport} and df.remote_port == {port}]\n"
            "df = df.groupby(['upid']).agg(tx=('tx', px.max), rx=('rx', px.max), retransmits=('retransmits', px.max))\n"
            "df.pid = px.upid_to_pid(df.upid)\npx.display(df)\n"
        ).to_pylist()
        [row] = stats
        assert row["pid"] == client.pid
        assert row["tx"] == 35000 and row["rx"] == 0
        assert row["retransmits"] >= len(retrans) >= 1
        assert conn.status().events_lost == 0, conn.status()
    finally:
        if client.poll() is None:
            stop(client)
        stop(sink)
        subprocess.run(
            ["ip", "netns", "exec", netns.name, "nft", "delete", "table", "inet", table], capture_output=True
        )


def _has_reset(node: Node, closed: int) -> bool:
    t = node.pxl(
        f"import px\ndf = px.DataFrame(table='tcp_events.beta')\ndf = df[df.remote_port == {closed}]\npx.display(df)\n"
    )
    return t.num_rows > 0


@pytest.fixture(scope="module")
def exit_node() -> Iterator[tuple[Node, ProcExitConnector]]:
    require()
    store = TableStore()
    procs = ProcessCache(ASID)
    n = Node(store, ConnectorContext(store, procs, ASID, os.getpid()), LocalMetadata(procs))
    conn = ProcExitConnector()
    try:
        conn.start(n.ctx)
    except Exception as e:
        pytest.fail(f"proc_exit cannot start: {e}")
    yield n, conn
    conn.stop()


def _start_ticks(pid: int) -> int:
    raw = Path(f"/proc/{pid}/stat").read_bytes()
    return int(raw[raw.rfind(b")") + 2 :].split()[19])


def test_abnormal_exits(exit_node: tuple[Node, ProcExitConnector]) -> None:
    node, conn = exit_node
    ok = subprocess.Popen(["sh", "-c", "exit 0"])
    three = subprocess.Popen(["sh", "-c", "read x; exit 3"], stdin=subprocess.PIPE)
    victim = subprocess.Popen(["sleep", "300"])
    ticks = {three.pid: _start_ticks(three.pid), victim.pid: _start_ticks(victim.pid)}
    ok.wait()
    assert three.stdin is not None
    three.communicate(b"\n", timeout=10)
    victim.kill()  # SIGKILL
    victim.wait()

    def both() -> list[dict]:
        conn.tick(time.time_ns())
        t = node.pxl(
            "import px\ndf = px.DataFrame(table='proc_exit_events')\n"
            "df.pid = px.upid_to_pid(df.upid)\n"
            f"df = df[df.pid == {three.pid} or df.pid == {victim.pid} or df.pid == {ok.pid}]\npx.display(df)\n"
        )
        rows = t.to_pylist()
        return rows if len(rows) >= 2 else []

    rows = {r["pid"]: r for r in wait_until(both, "the two abnormal exits")}
    assert ok.pid not in rows, "a clean exit (status 0) is not an abnormal exit"
    assert (rows[three.pid]["exit_code"], rows[three.pid]["signal"], rows[three.pid]["comm"]) == (3, 0, "sh")
    assert (rows[victim.pid]["exit_code"], rows[victim.pid]["signal"], rows[victim.pid]["comm"]) == (0, 9, "sleep")
    for pid, r in rows.items():  # the UPID's start time came from the kernel, after the process was gone
        assert split_upid(r["upid"]) == (ASID, pid, ticks[pid])
    c = conn.counters()
    assert c["exits_seen"] >= 3 and c["offset_mismatch"] == 0 and c["ring_full"] == 0
