"""Network namespaces as pods, all real: namespaces and veth pairs made with `ip`, processes inside
them, the bare-host metadata reading /proc and /run/netns, and the demo's traffic between its
namespaces captured by the real eBPF socket tracer and shown by the bundled scripts.

Needs root (namespaces, eBPF); fails, never skips, without it.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pytest

from cluster.metadata.local import LocalMetadata
from cluster.pem.process_info import ProcessCache
from pxtui import demo, demo_net
from tests.conftest import ROOT, Vizier, wait_until

pytestmark = pytest.mark.ebpf

BRIDGE = "pxttest0"
SUBNET = "10.214.0"  # clear of the demo (10.213.0.0/24) and local_cluster (10.77.<i>.0/24)
SERVE = "import http.server as h; h.HTTPServer(('0.0.0.0', 8080), h.SimpleHTTPRequestHandler).serve_forever()"


def ip(*args: str) -> str:
    out = subprocess.run(["ip", *args], capture_output=True, text=True)
    assert out.returncode == 0, f"ip {' '.join(args)}: {out.stderr}"
    return out.stdout


@pytest.fixture(scope="module", autouse=True)
def need_root() -> None:
    if os.geteuid() != 0:
        pytest.fail("network namespaces and eBPF need root: run the suite as root (./scripts/test.sh)")


@dataclass
class NsPods:
    pids: dict[str, int]  # netns name (or "unnamed") -> pid of the server in it
    ips: dict[str, str]


@pytest.fixture
def test_pods() -> Iterator[NsPods]:
    """Two named namespaces on a bridge, one unnamed (unshare -n), each with a process inside."""
    names = {"nstest-web-1": f"{SUBNET}.2", "nstest-db-1": f"{SUBNET}.3"}
    procs: list[subprocess.Popen] = []
    remove_test_pods(names)  # what a killed earlier run may have left
    try:
        ip("link", "add", BRIDGE, "type", "bridge")
        ip("addr", "add", f"{SUBNET}.1/24", "dev", BRIDGE)
        ip("link", "set", BRIDGE, "up")
        pids = {}
        for i, (name, addr) in enumerate(names.items()):
            ip("netns", "add", name)
            ip("link", "add", f"pxtt{i}", "type", "veth", "peer", "name", "eth0", "netns", name)
            ip("link", "set", f"pxtt{i}", "master", BRIDGE, "up")
            ip("-n", name, "addr", "add", f"{addr}/24", "dev", "eth0")
            ip("-n", name, "link", "set", "eth0", "up")
            proc = subprocess.Popen(["ip", "netns", "exec", name, sys.executable, "-c", SERVE])
            procs.append(proc)
            pids[name] = proc.pid
        unnamed = subprocess.Popen(["unshare", "-n", "sleep", "300"])
        procs.append(unnamed)
        pids["unnamed"] = unnamed.pid
        wait_until(lambda: os.readlink(f"/proc/{unnamed.pid}/ns/net") != os.readlink("/proc/self/ns/net")
                   and Path(f"/proc/{unnamed.pid}/comm").read_text().strip() == "sleep", 5,
                   "unshare to enter its namespace and exec sleep")  # fmt: skip
        yield NsPods(pids, names)
    finally:
        for proc in procs:
            proc.kill()
            proc.wait(timeout=10)
        remove_test_pods(names)


def remove_test_pods(names: dict[str, str]) -> None:
    for i, name in enumerate(names):
        subprocess.run(["ip", "link", "delete", f"pxtt{i}"], capture_output=True)  # both ends, at once
        subprocess.run(["ip", "netns", "delete", name], capture_output=True)
    subprocess.run(["ip", "link", "delete", BRIDGE], capture_output=True)
    # a namespace's links go away asynchronously: the next fixture must not find them still there
    wait_until(lambda: not any(Path(f"/sys/class/net/pxtt{i}").exists() for i in range(len(names))), 10,
               "the test veths to go")


def test_processes_in_real_namespaces_resolve_to_pods(test_pods: NsPods):
    processes = ProcessCache(1)
    md = LocalMetadata(processes, "node1")
    infos = {k: processes.lookup(p) for k, p in test_pods.pids.items()}
    me = processes.lookup(os.getpid())
    upids = pa.array([i.upid for i in infos.values()] + [me.upid], pa.binary(16))
    pods = md.upid_attr("pod_name", upids).to_pylist()
    services = md.upid_attr("service_name", upids).to_pylist()
    inode = os.stat(f"/proc/{test_pods.pids['unnamed']}/ns/net").st_ino
    assert pods == ["nstest/web-1", "nstest/db-1", f"default/netns-{inode}", f"host/{me.comm}-{me.pid}"]
    assert services == ["nstest/web", "nstest/db", "default/sleep", f"host/{me.comm}"]
    addrs = pa.array([f"{SUBNET}.2", f"{SUBNET}.3", f"{SUBNET}.1", "127.0.0.1"])
    pod_ids = md.entity_attr("ip", "pod_id", addrs)
    assert md.entity_attr("pod_id", "pod_name", pod_ids).to_pylist() == ["nstest/web-1", "nstest/db-1", "", ""]
    assert md.entity_attr("pod_name", "pod_ip", pa.array(["nstest/web-1", "nstest/db-1"])).to_pylist() == [
        f"{SUBNET}.2", f"{SUBNET}.3"]  # fmt: skip
    assert f"{SUBNET}.0/24" in md.cidrs()


# ---- the demo, traced ----------------------------------------------------------------------------
def leftovers() -> dict[str, list]:
    return {"netns": demo_net.demo_namespaces(), "links": demo_net.demo_links(), "procs": demo._demo_processes()}


@pytest.fixture
def running_demo(vizier: Vizier, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    monkeypatch.setenv("PXTUI_STATE_DIR", str(vizier.state_dir))
    monkeypatch.delenv("PXTUI_DEMO_NETNS", raising=False)
    monkeypatch.delenv("PXTUI_DEMO_SUBNET", raising=False)
    try:
        yield demo.start(rate=20)
    finally:
        demo.stop()
        assert leftovers() == {"netns": [], "links": [], "procs": []}


def run_json(vizier: Vizier, script: str, *args: str) -> dict[str, list[dict]]:
    out = subprocess.run([sys.executable, "-m", "pxtui.cli", "run", script, "-o", "json", "--", *args], cwd=ROOT,
                         capture_output=True, text=True, env=vizier.env(), timeout=60)  # fmt: skip
    assert out.returncode == 0, out.stderr
    return {name: t["rows"] for name, t in json.loads(out.stdout)["tables"].items()}


def test_demo_traffic_shows_pods_and_pod_to_pod_edges(vizier: Vizier, running_demo: str):
    assert "network namespaces" in running_demo, running_demo
    assert set(demo_net.demo_namespaces()) == {f"pxtui-demo-{r}-1" for r in demo.ROLES}

    pod_ip = {f"demo/{role}-1": pod.ip for role, pod in demo_net.layout(list(demo.ROLES)).pods.items()}
    want = [("demo/loadgen-1", "demo/frontend-1"), ("demo/frontend-1", "demo/catalog-1"),
            ("demo/frontend-1", "demo/cart-1")]  # fmt: skip

    def flow_edges() -> set[tuple[str, str]] | None:
        """Each edge seen from both ends: the client's row names the client pod, the server's row the
        server pod. The far end is the peer pod's name, or its IP where the look-up runs on Kelvin,
        which has no IP -> pod map on a bare host yet."""
        tables = run_json(vizier, "px/net_flow_graph", "--start_time=-2m", "--namespace=demo")
        edges = {(r["from_entity"], r["to_entity"]) for rows in tables.values() for r in rows
                 if r.get("bytes_total", 0) > 0}  # fmt: skip
        for a, b in want:
            if not edges & {(a, b), (a, pod_ip[b])} or not edges & {(a, b), (pod_ip[a], b)}:
                return None
        return edges

    edges = wait_until(flow_edges, 60, "flows between the demo pods in px/net_flow_graph", interval=2)
    assert not any(e.startswith("host/") for edge in edges for e in edge), edges

    def service_graph() -> set[tuple[str, str]] | None:
        tables = run_json(vizier, "px/services", "--start_time=-2m", "--namespace=demo")
        graph = {(r["requestor_service"], r["responder_service"]) for rows in tables.values() for r in rows
                 if "requestor_service" in r}  # fmt: skip
        pods = {(r["requestor_pod"], r["responder_pod"]) for rows in tables.values() for r in rows
                if "requestor_pod" in r}  # fmt: skip
        services = {(a.rsplit("-", 1)[0], b.rsplit("-", 1)[0]) for a, b in want}
        return graph if set(want) <= pods and services <= graph else None

    wait_until(service_graph, 30, "demo pod and service edges in px/services", interval=2)

    incoming = run_json(vizier, "px/service_stats", "--start_time=-2m", "--service=demo/frontend")
    requestors = {r["requestor"] for rows in incoming.values() for r in rows if "requestor" in r}
    assert "demo/loadgen" in requestors, incoming

    def pods() -> set[str] | None:
        tables = run_json(vizier, "px/pods", "--start_time=-1m", "--namespace=demo")
        listed = {r["pod"] for rows in tables.values() for r in rows if "pod" in r and "namespace" in r}
        return listed if listed >= set(pod_ip) else None

    wait_until(pods, 30, "the demo pods in px/pods", interval=2)


def test_a_crashed_demo_is_cleaned_up(monkeypatch: pytest.MonkeyPatch, tmp_path):
    monkeypatch.setenv("PXTUI_STATE_DIR", str(tmp_path))
    try:
        assert "network namespaces" in demo.start(rate=1)
        for pid in demo._demo_processes():  # the crash: every process dies, nothing is torn down
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        assert demo_net.demo_namespaces() and demo_net.demo_links()
        assert demo.stop().startswith("demo stopped")
        assert leftovers() == {"netns": [], "links": [], "procs": []}
        assert demo.stop() == "demo not running"
    finally:
        demo.stop()


def test_demo_falls_back_to_loopback_when_namespaces_cannot_be_made(monkeypatch: pytest.MonkeyPatch, tmp_path):
    monkeypatch.setenv("PXTUI_STATE_DIR", str(tmp_path))
    monkeypatch.setenv("PXTUI_DEMO_SUBNET", "127.0.0.0/24")  # overlaps lo's route: refused, with the reason
    try:
        msg = demo.start(rate=1)
        assert msg.startswith("network namespaces unavailable (subnet 127.0.0.0/24 is already routed"), msg
        assert "demo running: loadgen -> frontend :18080" in msg
        assert demo_net.demo_namespaces() == [] and demo_net.demo_links() == []
        assert len(demo._demo_processes()) == len(demo.ROLES)
    finally:
        demo.stop()
    assert leftovers() == {"netns": [], "links": [], "procs": []}


def test_a_process_gone_before_its_first_lookup_still_resolves_to_its_pod(test_pods: NsPods):
    """Its namespace is read when its traffic first names it, so its rows keep their pod after it exits."""
    processes = ProcessCache(1)
    md = LocalMetadata(processes, "node1")
    short = subprocess.Popen(["ip", "netns", "exec", "nstest-web-1", "sleep", "0.5"])
    wait_until(lambda: os.readlink(f"/proc/{short.pid}/ns/net") != os.readlink("/proc/self/ns/net"), 5,
               "the short-lived process to enter its namespace")
    info = processes.lookup(short.pid)  # what the connection tracker does on its first event
    short.wait(timeout=10)
    assert not os.path.exists(f"/proc/{short.pid}/ns/net")
    upids = pa.array([info.upid], pa.binary(16))
    assert md.upid_attr("pod_name", upids).to_pylist() == ["nstest/web-1"]
    assert md.upid_attr("service_name", upids).to_pylist() == ["nstest/web"]
