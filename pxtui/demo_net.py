"""Network plumbing for ``pxtui demo``: one network namespace per role on a bridge, and its removal.

Each role runs in ``pxtui-demo-<role>-1`` (so the bare-host metadata names it pod
``demo/<role>-1`` of service ``demo/<role>``, see cluster.metadata.netns) behind a veth pair whose
host end ``pxd-<role>`` is a port of the bridge ``pxtdemo0``. The bridge holds the subnet's first
address, so pods reach each other over real links and reach the host at that address; nothing is
routed or NATed, and no host setting (ip_forward, firewall) is touched.

Everything created carries one of those prefixes, so removal needs no record of what was made: a
demo that crashed half-way is cleaned up by the same scan as a healthy one.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import os
import signal
import subprocess
import time
from dataclasses import dataclass

BRIDGE = "pxtdemo0"
NETNS_PREFIX = "pxtui-demo-"
VETH_PREFIX = "pxd-"
DEFAULT_SUBNET = "10.213.0.0/24"  # clear of local_cluster (10.77.<i>.0/24), Docker and Podman


class NetnsUnavailable(RuntimeError):
    """Network namespaces cannot be set up here (not root, no ``ip``, the subnet is taken, ...)."""


@dataclass(frozen=True)
class PodNet:
    role: str
    netns: str  # ``ip netns`` name
    veth: str  # host end of the veth pair
    ip: str


@dataclass(frozen=True)
class Layout:
    subnet: ipaddress.IPv4Network
    gateway: str  # the bridge's address: the host as the pods see it
    pods: dict[str, PodNet]


def layout(roles: list[str], subnet: str = DEFAULT_SUBNET) -> Layout:
    """Addresses for each role: the bridge takes the subnet's first host address, roles the next."""
    try:
        net = ipaddress.IPv4Network(subnet)
    except ValueError as e:
        raise NetnsUnavailable(f"PXTUI_DEMO_SUBNET={subnet!r} is not an IPv4 subnet: {e}") from None
    hosts = net.hosts()
    gateway = str(next(hosts))
    pods = {}
    for role in roles:
        try:
            ip = str(next(hosts))
        except StopIteration:
            raise NetnsUnavailable(f"subnet {net} is too small for {len(roles)} demo pods") from None
        pods[role] = PodNet(role, f"{NETNS_PREFIX}{role}-1", f"{VETH_PREFIX}{role}"[:15], ip)
    return Layout(net, gateway, pods)


def _ip(*args: str) -> str:
    try:
        out = subprocess.run(["ip", *args], capture_output=True, text=True, timeout=20)
    except FileNotFoundError:
        raise NetnsUnavailable("the `ip` command (iproute2) is not installed") from None
    if out.returncode != 0:
        raise NetnsUnavailable(f"`ip {' '.join(args)}` failed: {out.stderr.strip() or out.returncode}")
    return out.stdout


def _check_subnet_free(net: ipaddress.IPv4Network) -> None:
    """Refuse a subnet this host already routes or holds addresses in (any table, loopback's included):
    the pods would shadow it."""
    for route in json.loads(_ip("-j", "route", "show", "table", "all") or "[]"):
        dst, dev = route.get("dst", ""), route.get("dev", "")
        if dev == BRIDGE or dst in ("", "default"):
            continue
        with contextlib.suppress(ValueError):
            if ipaddress.IPv4Network(dst, strict=False).overlaps(net):
                raise NetnsUnavailable(
                    f"subnet {net} is already routed via {dev} ({dst}); pick another with PXTUI_DEMO_SUBNET"
                )


def create(lay: Layout) -> None:
    """Bridge, then per pod: namespace, veth pair, addresses, links up. Raises NetnsUnavailable;
    the caller removes what was made (``destroy``) when it does."""
    if os.geteuid() != 0:
        raise NetnsUnavailable("creating network namespaces needs root")
    _check_subnet_free(lay.subnet)
    prefix = lay.subnet.prefixlen
    _ip("link", "add", BRIDGE, "type", "bridge")
    _ip("addr", "add", f"{lay.gateway}/{prefix}", "dev", BRIDGE)
    _ip("link", "set", BRIDGE, "up")
    for pod in lay.pods.values():
        _ip("netns", "add", pod.netns)
        _ip("link", "add", pod.veth, "type", "veth", "peer", "name", "eth0", "netns", pod.netns)
        _ip("link", "set", pod.veth, "master", BRIDGE, "up")
        _ip("-n", pod.netns, "addr", "add", f"{pod.ip}/{prefix}", "dev", "eth0")
        _ip("-n", pod.netns, "link", "set", "eth0", "up")
        _ip("-n", pod.netns, "link", "set", "lo", "up")


def exec_prefix(pod: PodNet) -> list[str]:
    """The command prefix that runs a program inside the pod's namespace."""
    return ["ip", "netns", "exec", pod.netns]


def demo_namespaces() -> list[str]:
    """Every ``ip netns`` name this demo owns (by prefix), however it was left."""
    try:
        names = os.listdir("/run/netns")
    except OSError:
        return []
    return sorted(n for n in names if n.startswith(NETNS_PREFIX))


def demo_links() -> list[str]:
    """The bridge and any host veth end this demo owns (by name), however it was left."""
    try:
        links = json.loads(_ip("-j", "link", "show") or "[]")
    except NetnsUnavailable:
        return []
    names = [str(link.get("ifname", "")) for link in links]
    return sorted(n for n in names if n == BRIDGE or n.startswith(VETH_PREFIX))


def netns_pids(name: str) -> list[int]:
    try:
        return [int(p) for p in _ip("netns", "pids", name).split()]
    except NetnsUnavailable:
        return []


def kill_all(pids: list[int], grace: float = 3.0) -> int:
    """SIGTERM, then SIGKILL whatever is left after ``grace`` seconds. Returns how many existed."""
    alive = []
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
            alive.append(pid)
    deadline = time.monotonic() + grace
    while alive and time.monotonic() < deadline:
        alive = [p for p in alive if _exists(p)]
        time.sleep(0.05)
    for pid in alive:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    return len(pids)


def _exists(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            return b") Z " not in f.read()  # a zombie has exited; only its parent's wait is missing
    except OSError:
        return False


def destroy() -> list[str]:
    """Remove every demo namespace (killing what runs inside first), veth end and the bridge.
    Idempotent. Returns what was removed; a failure names the object and the reason."""
    removed = []
    for name in demo_namespaces():
        kill_all(netns_pids(name))
        _ip("netns", "delete", name)  # also deletes the veth pair whose end lives inside
        removed.append(f"netns {name}")
    for link in demo_links():
        with contextlib.suppress(NetnsUnavailable):  # a veth end may vanish with its namespace meanwhile
            _ip("link", "delete", link)
            removed.append(f"link {link}")
    return removed
