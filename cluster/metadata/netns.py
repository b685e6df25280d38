"""Network namespaces on a bare host as pods: which exist, what they are called, which IPs they hold.

On a bare host the closest thing to a Kubernetes pod is a network namespace: its processes share
one set of addresses, and traffic between two of them crosses a real link. So every network
namespace other than the host's is one pod, and the IPs inside it are the pod's IPs, which is what
``px.ip_to_pod_id`` and the service-graph scripts need to name both ends of a connection.

Naming rule (Pixie's "<namespace>/<name>" format throughout):

* A namespace with an ``ip netns`` name (a bind mount in /run/netns whose inode is the one
  /proc/<pid>/ns/net points at). A leading ``pxtui-`` is dropped (the prefix ``pxtui demo`` gives
  what it creates, so that ``pxtui demo stop`` can find it again). Then the text before the first
  ``-`` is the namespace and the rest the pod, unless there is no ``-`` or the rest is only digits,
  in which case the namespace is ``default`` and the pod is the whole name. The service is the pod
  without a trailing ``-<digits>`` (its replica number), so replicas group into one service:

      demo-frontend-1       -> namespace demo,    pod demo/frontend-1,    service demo/frontend
      pxtui-demo-catalog-1  -> namespace demo,    pod demo/catalog-1,     service demo/catalog
      shop-cart             -> namespace shop,    pod shop/cart,          service shop/cart
      web-2                 -> namespace default, pod default/web-2,      service default/web
      labns                 -> namespace default, pod default/labns,      service default/labns

* A namespace without a name (a container runtime's, systemd's PrivateNetwork=, ``unshare -n``)
  is named after the cgroup of the first process seen in it, in namespace ``default``: a systemd
  unit ``foo.service`` gives pod and service ``default/foo``; a container scope
  ``docker-<id>.scope`` (also libpod-, cri-containerd-, crio-) gives pod ``default/docker-<id:12>``
  with that process's command as the service; anything else gives pod ``default/netns-<inode>``,
  again with the command as the service.

* Processes in the host's own network namespace, which is the one the agent itself runs in (a PEM
  has the node's network: hostNetwork in Kubernetes), are not pods here: cluster.metadata.local
  names them in namespace ``host``.

Cost: the namespace of a process is one readlink, done once per process by the caller. The names
and addresses of a namespace are read once and cached by its inode; a full pass over /proc (one
readlink per process, plus one fib_trie read per namespace) runs only when an IP or pod is looked
up and the last pass is older than ``refresh_s``, or on a miss at most once per ``rescan_s``.
Namespaces that disappear are kept for ``retain_s`` so that records of a finished pod still
resolve.
"""

from __future__ import annotations

import ipaddress
import os
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace

from cluster.pem.sources.procfs import list_pids

DEFAULT_NAMESPACE = "default"
#: the prefix pxtui's own demo puts on the namespaces it creates; dropped from pod names
TOOL_PREFIX = "pxtui-"

_NS_LINK = re.compile(r"net:\[(\d+)\]")
_REPLICA = re.compile(r"(.+?)-\d+")
_CONTAINER_SCOPE = re.compile(r"(docker|libpod|cri-containerd|crio)-([0-9a-f]{12,64})\.scope")


@dataclass(frozen=True, slots=True)
class PodNames:
    """A pod's namespace, and its pod and service names without the "<namespace>/" part."""

    namespace: str
    pod: str
    service: str

    @property
    def pod_name(self) -> str:
        return f"{self.namespace}/{self.pod}"

    @property
    def service_name(self) -> str:
        return f"{self.namespace}/{self.service}"


def names_from_netns_name(name: str) -> PodNames:
    """The naming rule for a namespace with an ``ip netns`` name (see the module docstring)."""
    base = name.removeprefix(TOOL_PREFIX) or name
    head, sep, rest = base.partition("-")
    if sep and head and rest and not rest.isdigit():
        namespace, pod = head, rest
    else:
        namespace, pod = DEFAULT_NAMESPACE, base
    replica = _REPLICA.fullmatch(pod)
    return PodNames(namespace, pod, replica.group(1) if replica else pod)


def names_from_cgroup(cgroup: str, comm: str, inode: int) -> PodNames:
    """The naming rule for a namespace with no name, from a process in it (module docstring)."""
    leaf = cgroup.rstrip("/").rsplit("/", 1)[-1]
    fallback = f"netns-{inode}"
    if leaf.endswith(".service") and leaf != ".service":
        unit = leaf.removesuffix(".service")
        return PodNames(DEFAULT_NAMESPACE, unit, unit)
    scope = _CONTAINER_SCOPE.fullmatch(leaf)
    if scope:
        return PodNames(DEFAULT_NAMESPACE, f"{scope.group(1)}-{scope.group(2)[:12]}", comm or fallback)
    return PodNames(DEFAULT_NAMESPACE, fallback, comm or fallback)


def netns_inode(pid: int, proc: str = "/proc") -> int | None:
    """Inode of the network namespace pid is in; None when the process is gone or hidden."""
    try:
        link = os.readlink(f"{proc}/{pid}/ns/net")
    except OSError:
        return None
    m = _NS_LINK.fullmatch(link)
    return int(m.group(1)) if m else None


def _self_netns_inode(proc: str) -> int | None:
    try:
        m = _NS_LINK.fullmatch(os.readlink(f"{proc}/self/ns/net"))
    except OSError:
        return None
    return int(m.group(1)) if m else None


def named_netns(run_dir: str = "/run/netns") -> dict[int, str]:
    """inode -> ``ip netns`` name. A file there that is not a mount (left by a crash) has an inode of
    its own filesystem that matches no namespace, so it is harmlessly ignored."""
    out: dict[int, str] = {}
    try:
        entries = sorted(os.scandir(run_dir), key=lambda e: e.name)
    except OSError:
        return out
    for e in entries:
        try:
            out.setdefault(os.stat(e.path).st_ino, e.name)
        except OSError:
            continue
    return out


@dataclass(frozen=True, slots=True)
class Addresses:
    """The addresses a namespace holds (loopback and link-local left out) and its connected subnets."""

    ips: tuple[str, ...] = ()
    subnets: tuple[str, ...] = ()


def parse_fib_trie(text: str) -> Addresses:
    """IPv4 addresses ("/32 host LOCAL" leaves) and connected subnets ("/N link UNICAST") of a
    /proc/<pid>/net/fib_trie; both the Main and Local tables list them, so results are deduplicated."""
    ips: dict[str, None] = {}
    subnets: dict[str, None] = {}
    leaf = ""
    for line in text.splitlines():
        s = line.strip()
        if s.startswith("|--"):
            leaf = s[3:].strip()
            continue
        if not s.startswith("/") or not leaf:
            continue
        parts = s[1:].split()
        if len(parts) < 3 or not parts[0].isdigit():
            continue
        try:
            addr = ipaddress.IPv4Address(leaf)
        except ValueError:
            continue
        if addr.is_loopback:
            continue
        prefix, scope, kind = int(parts[0]), parts[1], parts[2]
        if prefix == 32 and scope == "host" and kind == "LOCAL":
            ips[str(addr)] = None
        elif scope == "link" and kind == "UNICAST" and prefix < 32:
            subnets[str(ipaddress.IPv4Network(f"{addr}/{prefix}", strict=False))] = None
    return Addresses(tuple(ips), tuple(subnets))


def parse_if_inet6(text: str) -> Addresses:
    """Global-scope IPv6 addresses (scope 00) and their subnets from a /proc/<pid>/net/if_inet6."""
    ips: dict[str, None] = {}
    subnets: dict[str, None] = {}
    for line in text.splitlines():
        parts = line.split()
        if len(parts) < 6 or len(parts[0]) != 32 or parts[3] != "00":
            continue
        try:
            addr = ipaddress.IPv6Address(bytes.fromhex(parts[0]))
            prefix = int(parts[2], 16)
        except ValueError:
            continue
        ips[str(addr)] = None
        subnets[str(ipaddress.IPv6Network(f"{addr}/{prefix}", strict=False))] = None
    return Addresses(tuple(ips), tuple(subnets))


def _read(path: str) -> str:
    try:
        with open(path, "rb") as f:
            return f.read().decode(errors="replace")
    except OSError:
        return ""


def read_addresses(pid: int, proc: str = "/proc") -> Addresses:
    """The addresses of the namespace pid is in (through /proc/<pid>/net, which is per namespace)."""
    v4 = parse_fib_trie(_read(f"{proc}/{pid}/net/fib_trie"))
    v6 = parse_if_inet6(_read(f"{proc}/{pid}/net/if_inet6"))
    return Addresses(v4.ips + v6.ips, v4.subnets + v6.subnets)


@dataclass(frozen=True, slots=True)
class ProcessFacts:
    """What the naming and the pod attributes need from the process a namespace is read through."""

    pid: int
    comm: str
    cgroup: str
    cmdline: str
    start_ns: int  # ns since the epoch


@dataclass(frozen=True, slots=True)
class NetnsPod:
    """One network namespace seen as a pod."""

    inode: int
    netns_name: str  # the ``ip netns`` name, "" when it has none
    names: PodNames
    addresses: Addresses
    process: ProcessFacts  # the first process seen in it
    alive: bool  # some process was in it at the last look
    checked: float  # monotonic time of the last look

    @property
    def ip(self) -> str:
        """The pod IP: the first IPv4 address, else the first IPv6 one, else ""."""
        return self.addresses.ips[0] if self.addresses.ips else ""


def _boot_time_ns(proc: str) -> int:
    for line in _read(f"{proc}/stat").splitlines():
        if line.startswith("btime "):
            return int(line.split()[1]) * 1_000_000_000
    return 0


_NS_PER_TICK = 1_000_000_000 // os.sysconf("SC_CLK_TCK")


def read_process_facts(pid: int, proc: str = "/proc", boot_ns: int = 0) -> ProcessFacts | None:
    """comm, cgroup (v2 path, or the name=systemd one), cmdline and start time of pid; None if gone."""
    stat = _read(f"{proc}/{pid}/stat")
    if not stat:
        return None
    fields = stat[stat.rfind(")") + 2 :].split()
    ticks = int(fields[19]) if len(fields) > 19 else 0
    cgroup = ""
    for line in _read(f"{proc}/{pid}/cgroup").splitlines():
        hid, _, rest = line.partition(":")
        controllers, _, path = rest.partition(":")
        if hid == "0" and controllers == "":
            cgroup = path
            break
        if "name=systemd" in controllers or not cgroup:
            cgroup = path
    return ProcessFacts(
        pid=pid,
        comm=_read(f"{proc}/{pid}/comm").strip(),
        cgroup=cgroup,
        cmdline=_read(f"{proc}/{pid}/cmdline").replace("\x00", " ").strip(),
        start_ns=boot_ns + ticks * _NS_PER_TICK,
    )


class NetnsRegistry:
    """Every network namespace on this host other than the host's, as pods; thread-safe.

    ``proc`` and ``run_dir`` are parameters so that tests can point them at a fixture tree.
    """

    def __init__(
        self,
        proc: str = "/proc",
        run_dir: str = "/run/netns",
        refresh_s: float = 5.0,
        rescan_s: float = 1.0,
        retain_s: float = 600.0,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.proc = proc
        self.run_dir = run_dir
        self.refresh_s = refresh_s
        self.rescan_s = rescan_s
        self.retain_s = retain_s
        self._clock = clock
        self._lock = threading.RLock()
        self._pods: dict[int, NetnsPod] = {}
        self._by_ip: dict[str, int] = {}
        self._by_name: dict[str, int] = {}
        self._scanned = -float("inf")
        self.boot_ns = _boot_time_ns(proc)
        # The host's namespace is the agent's own: a PEM runs with the node's network (hostNetwork in
        # Kubernetes). Not pid 1's: in a sandbox or container, init may sit in a namespace of its own.
        self.host_inode = _self_netns_inode(proc)

    def inode_of(self, pid: int) -> int | None:
        return netns_inode(pid, self.proc)

    def start_ns(self, start_ticks: int) -> int:
        """A process's start time (field 22 of /proc/<pid>/stat) as ns since the epoch."""
        return self.boot_ns + start_ticks * _NS_PER_TICK

    def pod_for(self, inode: int | None, pid: int) -> NetnsPod | None:
        """The pod of namespace ``inode``, which pid is in; None for the host's namespace or unknown."""
        if inode is None or inode == self.host_inode:
            return None
        pod = self._pods.get(inode)
        if pod is not None and self._clock() - pod.checked < self.refresh_s:
            return pod
        with self._lock:
            pod = self._look(inode, pid, named_netns(self.run_dir))
        if pod is None:  # pid is gone; another process of its namespace may still tell us the pod
            pod = self.pod_by_inode(inode)
        return pod

    def pod_by_inode(self, inode: int) -> NetnsPod | None:
        self._fresh()
        pod = self._pods.get(inode)
        if pod is None and self._rescan():
            pod = self._pods.get(inode)
        return pod

    def pod_by_ip(self, ip: str) -> NetnsPod | None:
        """The pod holding ip now (or, for a pod gone within ``retain_s``, last)."""
        self._fresh()
        inode = self._by_ip.get(ip)
        if inode is None:
            norm = _normalise_ip(ip)
            inode = self._by_ip.get(norm) if norm else None
            if inode is None and norm and self._rescan():
                inode = self._by_ip.get(norm)
        return self._pods.get(inode) if inode is not None else None

    def pod_by_name(self, pod_name: str) -> NetnsPod | None:
        self._fresh()
        inode = self._by_name.get(pod_name)
        if inode is None and self._rescan():
            inode = self._by_name.get(pod_name)
        return self._pods.get(inode) if inode is not None else None

    def pods(self) -> list[NetnsPod]:
        self._fresh()
        with self._lock:
            return list(self._pods.values())

    def scan(self) -> None:
        """One full pass: every process's namespace, then each namespace's name and addresses."""
        with self._lock:
            now = self._clock()
            members: dict[int, list[int]] = {}
            for pid in list_pids(self.proc):
                inode = netns_inode(pid, self.proc)
                if inode is not None and inode != self.host_inode:
                    members.setdefault(inode, []).append(pid)
            names = named_netns(self.run_dir)
            for inode, pids in members.items():
                old = self._pods.get(inode)
                keep = old.process.pid if old is not None and old.process.pid in pids else pids[0]
                self._look(inode, keep, names)
            for inode, pod in list(self._pods.items()):
                if inode in members:
                    continue
                if now - pod.checked > self.retain_s:
                    del self._pods[inode]
                elif pod.alive:
                    self._pods[inode] = replace(pod, alive=False)
            self._reindex()
            self._scanned = now

    def _fresh(self) -> None:
        if self._clock() - self._scanned >= self.refresh_s:
            self.scan()

    def _rescan(self) -> bool:
        """After a miss: scan again unless the last pass is very recent. True when it scanned."""
        if self._clock() - self._scanned < self.rescan_s:
            return False
        self.scan()
        return True

    def _look(self, inode: int, pid: int, names: dict[int, str]) -> NetnsPod | None:
        """(Re)read one namespace through pid; keeps the first process and the names once known."""
        old = self._pods.get(inode)
        if netns_inode(pid, self.proc) != inode:
            return old  # pid left (or is gone): what we knew stays
        netns_name = names.get(inode, "")
        if old is not None and old.netns_name == netns_name:
            facts, pod_names = old.process, old.names
        else:
            facts = (old.process if old is not None else None) or read_process_facts(pid, self.proc, self.boot_ns)
            if facts is None:
                return old
            pod_names = (
                names_from_netns_name(netns_name) if netns_name else names_from_cgroup(facts.cgroup, facts.comm, inode)
            )
        pod = NetnsPod(inode, netns_name, pod_names, read_addresses(pid, self.proc), facts, True, self._clock())
        self._pods[inode] = pod
        if old is None or old.addresses != pod.addresses or old.names != pod.names:
            self._reindex()
        return pod

    def _reindex(self) -> None:
        """IP and name indexes; a live pod wins an IP or name over one that has gone."""
        by_ip: dict[str, int] = {}
        by_name: dict[str, int] = {}
        for pod in sorted(self._pods.values(), key=lambda p: (p.alive, p.checked)):
            for ip in pod.addresses.ips:
                by_ip[ip] = pod.inode
            by_name[pod.names.pod_name] = pod.inode
        self._by_ip, self._by_name = by_ip, by_name


def _normalise_ip(text: str) -> str:
    """Canonical text of an IP ("" if it is none): IPv4-mapped IPv6 as IPv4, IPv6 compressed."""
    try:
        addr = ipaddress.ip_address(text)
    except ValueError:
        return ""
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        return str(addr.ipv4_mapped)
    return str(addr)
