"""Bare-host metadata on a fixture /proc tree: network namespaces become pods with the documented
names and their IPs; host processes keep the host naming. The live counterpart, with real
namespaces and veth pairs, is tests/integration/test_netns_pods.py."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pyarrow as pa
import pytest

from cluster.metadata.local import LocalMetadata
from cluster.metadata.netns import (
    Addresses,
    NetnsRegistry,
    PodNames,
    names_from_cgroup,
    names_from_netns_name,
    parse_fib_trie,
    parse_if_inet6,
)
from cluster.pem.process_info import ProcessCache

HOST_NS = 4026531840
DOCKER_ID = "0123456789abcdef" * 4


@pytest.mark.parametrize(
    ("name", "want"),
    [
        ("demo-frontend-1", PodNames("demo", "frontend-1", "frontend")),
        ("pxtui-demo-catalog-1", PodNames("demo", "catalog-1", "catalog")),
        ("shop-cart", PodNames("shop", "cart", "cart")),
        ("shop-cart-api-12", PodNames("shop", "cart-api-12", "cart-api")),
        ("web-2", PodNames("default", "web-2", "web")),
        ("labns", PodNames("default", "labns", "labns")),
        ("pxtui-", PodNames("default", "pxtui-", "pxtui-")),
        ("-odd", PodNames("default", "-odd", "-odd")),
    ],
)
def test_named_netns_naming_rule(name: str, want: PodNames):
    assert names_from_netns_name(name) == want


def test_unnamed_netns_is_named_after_its_cgroup():
    assert names_from_cgroup("/system.slice/exporter.service", "exporter", 7) == PodNames(
        "default", "exporter", "exporter"
    )
    assert names_from_cgroup(f"/system.slice/docker-{DOCKER_ID}.scope", "nginx", 7) == PodNames(
        "default", f"docker-{DOCKER_ID[:12]}", "nginx"
    )
    assert names_from_cgroup("/user.slice/user-0.slice/session-3.scope", "bash", 99) == PodNames(
        "default", "netns-99", "bash"
    )
    assert names_from_cgroup("/", "", 5) == PodNames("default", "netns-5", "netns-5")
    assert PodNames("demo", "cart-1", "cart").pod_name == "demo/cart-1"
    assert PodNames("demo", "cart-1", "cart").service_name == "demo/cart"


FIB_TRIE = """Main:
  +-- 0.0.0.0/1 2 0 2
     +-- 10.77.0.0/24 2 0 2
        +-- 10.77.0.0/30 2 0 2
           |-- 10.77.0.0
              /24 link UNICAST
           |-- 10.77.0.2
              /32 host LOCAL
        |-- 10.77.0.255
           /32 link BROADCAST
     +-- 127.0.0.0/8 2 0 2
        |-- 127.0.0.1
           /32 host LOCAL
Local:
  +-- 0.0.0.0/1 2 0 2
        +-- 10.77.0.0/30 2 0 2
           |-- 10.77.0.2
              /32 host LOCAL
"""
IF_INET6 = """00000000000000000000000000000001 01 80 10 80       lo
fe80000000000000808d1bfffe8bde3b 02 40 20 c0     eth0
fd000000000000000000000000000002 02 40 00 80     eth0
"""


def test_addresses_from_proc_net():
    assert parse_fib_trie(FIB_TRIE) == Addresses(("10.77.0.2",), ("10.77.0.0/24",))
    assert parse_if_inet6(IF_INET6) == Addresses(("fd00::2",), ("fd00::/64",))
    assert parse_fib_trie("") == Addresses()


class FakeHost:
    """A /proc tree and a /run/netns directory: the inode of a file in run/netns is the namespace id,
    as the bind mount's inode is on a real host."""

    def __init__(self, root: Path):
        self.proc = root / "proc"
        self.run = root / "netns"
        self.proc.mkdir()
        self.run.mkdir()
        (self.proc / "stat").write_text("cpu 1 2 3\nbtime 1700000000\n")
        self._ns_link(self.proc / "self", HOST_NS)

    def named_netns(self, name: str) -> int:
        path = self.run / name
        path.write_text("")
        return os.stat(path).st_ino

    def _ns_link(self, pdir: Path, inode: int) -> None:
        (pdir / "ns").mkdir(parents=True, exist_ok=True)
        link = pdir / "ns" / "net"
        if link.is_symlink():
            link.unlink()
        link.symlink_to(f"net:[{inode}]")

    def process(self, pid: int, comm: str, netns: int, cgroup: str = "/", ticks: int = 500, ips: str = "") -> None:
        pdir = self.proc / str(pid)
        pdir.mkdir()
        fields = ["S"] + ["0"] * 18 + [str(ticks)] + ["0"] * 20
        (pdir / "stat").write_text(f"{pid} ({comm}) {' '.join(fields)}\n")
        (pdir / "comm").write_text(comm + "\n")
        (pdir / "cmdline").write_text(f"/usr/bin/{comm}\0--serve\0")
        (pdir / "cgroup").write_text(f"0::{cgroup}\n")
        (pdir / "net").mkdir()
        trie = "".join(f"     |-- {ip}\n        /32 host LOCAL\n" for ip in ips.split()) if ips else ""
        (pdir / "net" / "fib_trie").write_text(f"Main:\n{trie}")
        (pdir / "net" / "if_inet6").write_text("")
        self._ns_link(pdir, netns)

    def exit(self, pid: int) -> None:
        for path in sorted((self.proc / str(pid)).rglob("*"), reverse=True):
            path.unlink() if path.is_file() or path.is_symlink() else path.rmdir()
        (self.proc / str(pid)).rmdir()


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


@pytest.fixture
def host(tmp_path: Path) -> FakeHost:
    return FakeHost(tmp_path)


def metadata(host: FakeHost, clock: Clock) -> tuple[LocalMetadata, ProcessCache]:
    processes = ProcessCache(3, proc=str(host.proc))
    registry = NetnsRegistry(proc=str(host.proc), run_dir=str(host.run), refresh_s=5, rescan_s=1, retain_s=60,
                             clock=clock)  # fmt: skip
    return LocalMetadata(processes, "node1", registry), processes


def col(md: LocalMetadata, attr: str, upids: list[bytes]) -> list[str]:
    return md.upid_attr(attr, pa.array(upids, pa.binary(16))).to_pylist()


def ent(md: LocalMetadata, key: str, attr: str, values: list[str]) -> list[str]:
    return md.entity_attr(key, attr, pa.array(values, pa.string())).to_pylist()


def test_processes_in_netns_are_pods_and_the_rest_host(host: FakeHost):
    fe = host.named_netns("pxtui-demo-frontend-1")
    host.process(100, "nginx", HOST_NS, "/system.slice/nginx.service")
    host.process(200, "frontend", fe, ips="10.77.0.4", ticks=900)
    host.process(201, "frontend", fe, ips="10.77.0.4", ticks=950)  # a second process of the same pod
    host.process(300, "nginx", 77, f"/system.slice/docker-{DOCKER_ID}.scope", ips="172.17.0.2")
    md, processes = metadata(host, Clock())
    upids = [processes.lookup(p).upid for p in (100, 200, 201, 300)]
    assert col(md, "namespace", upids) == ["host", "demo", "demo", "default"]
    assert col(md, "pod_name", upids) == ["host/nginx-100", "demo/frontend-1", "demo/frontend-1",
                                          f"default/docker-{DOCKER_ID[:12]}"]  # fmt: skip
    assert col(md, "service_name", upids) == ["host/nginx", "demo/frontend", "demo/frontend", "default/nginx"]
    assert col(md, "pod_id", upids) == ["node1-100-500", f"node1-netns-{fe}", f"node1-netns-{fe}", "node1-netns-77"]
    assert col(md, "service_id", upids)[1] == "node1-demo-frontend"
    assert col(md, "cmdline", upids)[2] == "/usr/bin/frontend --serve"  # each process keeps its own
    assert col(md, "node_name", upids) == ["node1"] * 4


def test_ip_resolves_to_the_pod_holding_it(host: FakeHost):
    fe, cat = host.named_netns("demo-frontend-1"), host.named_netns("demo-catalog-1")
    host.process(200, "frontend", fe, ips="10.77.0.4")
    host.process(210, "catalog", cat, ips="10.77.0.2")
    host.process(100, "redis-server", HOST_NS)
    md, _ = metadata(host, Clock())
    ids = ent(md, "ip", "pod_id", ["10.77.0.2", "10.77.0.4", "::ffff:10.77.0.2", "127.0.0.1", "not an ip"])
    assert ids == [f"node1-netns-{cat}", f"node1-netns-{fe}", f"node1-netns-{cat}", "", ""]
    assert ent(md, "pod_id", "pod_name", ids[:2]) == ["demo/catalog-1", "demo/frontend-1"]
    assert ent(md, "pod_id", "service_name", ids[:2]) == ["demo/catalog", "demo/frontend"]
    assert ent(md, "ip", "service_id", ["10.77.0.2"]) == ["node1-demo-catalog"]
    assert ent(md, "pod_name", "pod_ip", ["demo/frontend-1", "demo/nope-1"]) == ["10.77.0.4", ""]
    assert ent(md, "service_name", "namespace", ["demo/catalog"]) == ["demo"]
    assert json.loads(ent(md, "pod_name", "status", ["demo/catalog-1"])[0])["phase"] == "Running"
    assert ent(md, "pod_name", "start_time", ["demo/catalog-1"]) == [str(1700000000 * 10**9 + 500 * 10**7)]
    assert ent(md, "container_id", "pod_name", ["abc"]) == [""]
    assert md.cidrs() == []  # the fixture's fib_trie lists addresses, no connected subnets


def test_host_pods_answer_entity_lookups_too(host: FakeHost):
    host.process(100, "nginx", HOST_NS, "/system.slice/nginx.service")
    md, processes = metadata(host, Clock())
    [pod_id] = col(md, "pod_id", [processes.lookup(100).upid])
    assert ent(md, "pod_id", "pod_name", [pod_id]) == ["host/nginx-100"]
    assert ent(md, "pod_name", "service_name", ["host/nginx-100", "host/nginx-999"]) == ["host/nginx", ""]
    fresh, _ = metadata(host, Clock())  # never saw the upid: parses the pid out of the id
    assert ent(fresh, "pod_id", "pod_name", [pod_id, "node1-100-1", "other-100-500"]) == ["host/nginx-100", "", ""]
    host.exit(100)
    assert json.loads(ent(md, "pod_id", "status", [pod_id])[0])["phase"] == "Unknown"


def test_new_pods_appear_and_gone_ones_are_kept_for_a_while(host: FakeHost):
    clock = Clock()
    md, processes = metadata(host, clock)
    assert ent(md, "ip", "pod_id", ["10.77.0.9"]) == [""]
    ns = host.named_netns("demo-cart-1")
    host.process(400, "cart", ns, ips="10.77.0.9")
    assert ent(md, "ip", "pod_name", ["10.77.0.9"]) == [""]  # a miss rescans at most once per rescan_s
    clock.t += 1.5
    assert ent(md, "ip", "pod_name", ["10.77.0.9"]) == ["demo/cart-1"]
    upid = processes.lookup(400).upid
    assert col(md, "pod_name", [upid]) == ["demo/cart-1"]
    host.exit(400)
    clock.t += 10
    assert col(md, "pod_name", [upid]) == ["demo/cart-1"]  # records of the finished pod still resolve
    assert ent(md, "ip", "pod_name", ["10.77.0.9"]) == ["demo/cart-1"]
    assert json.loads(ent(md, "pod_name", "status", ["demo/cart-1"])[0])["phase"] == "Unknown"
    clock.t += 120
    assert ent(md, "ip", "pod_name", ["10.77.0.9"]) == [""]  # past retain_s


def test_a_recycled_pid_does_not_lend_its_namespace(host: FakeHost):
    ns = host.named_netns("demo-cart-1")
    host.process(500, "old", HOST_NS, ticks=100)
    md, processes = metadata(host, Clock())
    old = processes.lookup(500)
    host.exit(500)
    host.process(500, "cart", ns, ticks=200)  # same pid, a new process in a pod
    assert col(md, "namespace", [old.upid]) == ["host"]
