"""A simulated multi-node cluster on this host: one Vizier process and N PEM processes.

`pxtui up --pems N [--kelvins K]` starts the Vizier without an embedded PEM, then N `pxtui agent`
processes (and K `pxtui kelvin` merge processes) that join it over gRPC. Without `--netns` each PEM
owns every N-th process of the host by pid
(cluster.pem.node_filter); with it, each PEM runs in its own network namespace `pxtui-node-<i>`
with its own address 10.77.<i>.2 behind a veth pair, and owns that namespace's processes: run
workloads there with `ip netns exec pxtui-node-<i> ...`. What was started is written to the state
directory, so `pxtui down` stops exactly that, namespaces included, even after a crash.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from cluster import paths

ROOT = Path(__file__).resolve().parent.parent.parent
NETNS_PREFIX = "pxtui-node-"
IP_FORWARD = Path("/proc/sys/net/ipv4/ip_forward")


def cluster_file() -> Path:
    return paths.state_dir() / "cluster.json"


@dataclass
class NodeSpec:
    index: int
    hostname: str
    netns: str = ""
    host_ip: str = ""  # the host end of the veth pair: where the node reaches the broker
    node_ip: str = ""  # the node's own address: where the broker reaches the agent


@dataclass
class LocalCluster:
    vizier_pid: int
    agent_pids: list[int] = field(default_factory=list)
    netns: list[str] = field(default_factory=list)
    ip_forward_was: str = ""  # the host's net.ipv4.ip_forward before nodes needed it, restored by stop()

    def save(self) -> None:
        cluster_file().write_text(json.dumps(asdict(self)))

    @staticmethod
    def load() -> LocalCluster | None:
        try:
            return LocalCluster(**json.loads(cluster_file().read_text()))
        except (OSError, ValueError, TypeError):
            return None


def _ip(*args: str) -> None:
    res = subprocess.run(["ip", *args], capture_output=True, text=True)
    if res.returncode != 0:
        raise RuntimeError(f"ip {' '.join(args)}: {res.stderr.strip() or 'failed'}")


def make_node_netns(i: int) -> NodeSpec:
    """Namespace pxtui-node-<i> with 10.77.<i>.2, reachable from the host at 10.77.<i>.1."""
    if not 0 <= i < 250:
        raise ValueError("at most 250 namespaced PEMs")
    name, host_if, host_ip, node_ip = f"{NETNS_PREFIX}{i}", f"pxn{i}", f"10.77.{i}.1", f"10.77.{i}.2"
    delete_node_netns(name)
    _ip("netns", "add", name)
    _ip("link", "add", host_if, "type", "veth", "peer", "name", "eth0", "netns", name)
    _ip("addr", "add", f"{host_ip}/24", "dev", host_if)
    _ip("link", "set", host_if, "up")
    _ip("-n", name, "addr", "add", f"{node_ip}/24", "dev", "eth0")
    _ip("-n", name, "link", "set", "eth0", "up")
    _ip("-n", name, "link", "set", "lo", "up")
    _ip("-n", name, "route", "add", "default", "via", host_ip)
    return NodeSpec(i, f"node-{i}", name, host_ip, node_ip)


def delete_node_netns(name: str) -> None:
    i = name.removeprefix(NETNS_PREFIX)
    subprocess.run(["ip", "link", "del", f"pxn{i}"], capture_output=True)
    subprocess.run(["ip", "netns", "del", name], capture_output=True)


def agent_command(broker: str, node: NodeSpec, count: int, body_cap: int) -> list[str]:
    cmd = [sys.executable, "-m", "cluster.pem.agent_main", "--broker", broker, "--hostname", node.hostname,
           "--body-cap", str(body_cap)]
    if node.netns:
        cmd = ["ip", "netns", "exec", node.netns, *cmd, "--listen", f"{node.node_ip}:51401", "--netns-only"]
    else:
        cmd += ["--node-share", f"{node.index}/{count}"]
    return cmd


def start(addr: str, pems: int, netns: bool, body_cap: int, log_path: Path, kelvins: int = 0) -> LocalCluster:
    """Start the Vizier, its PEMs and its Kelvins in the background (each in its own session)."""
    forward_was = ""
    if netns:  # nodes reach each other through the host, as machines through a router
        forward_was = IP_FORWARD.read_text().strip()
        IP_FORWARD.write_text("1\n")
    nodes = [make_node_netns(i) if netns else NodeSpec(i, f"node-{i}") for i in range(pems)]
    port = addr.rsplit(":", 1)[1]
    vizier_cmd = [sys.executable, "-m", "cluster.vizier.server", "--addr", addr, "--no-embedded-pem"]
    for node in nodes:
        if node.netns:
            vizier_cmd += ["--extra-listen", f"{node.host_ip}:{port}"]
    log = open(log_path, "ab")  # noqa: SIM115 (handed to the children)
    popen = {"stdout": log, "stderr": subprocess.STDOUT, "stdin": subprocess.DEVNULL, "start_new_session": True,
             "cwd": str(ROOT)}
    vizier = subprocess.Popen(vizier_cmd, **popen)  # type: ignore[call-overload]
    cluster = LocalCluster(vizier.pid, netns=[n.netns for n in nodes if n.netns], ip_forward_was=forward_was)
    cluster.save()
    for node in nodes:
        broker = f"{node.host_ip}:{port}" if node.netns else addr
        agent = subprocess.Popen(agent_command(broker, node, pems, body_cap), **popen)  # type: ignore[call-overload]
        cluster.agent_pids.append(agent.pid)
    for k in range(kelvins):  # Kelvins collect nothing, so they stay in the host's namespace
        kelvin = subprocess.Popen([sys.executable, "-m", "cluster.vizier.kelvin", "--broker", addr,
                                   "--hostname", f"kelvin-{k}"], **popen)  # type: ignore[call-overload]
        cluster.agent_pids.append(kelvin.pid)
    cluster.save()
    return cluster


def stop(cluster: LocalCluster, grace: float = 20.0) -> None:
    pids = [*cluster.agent_pids, cluster.vizier_pid]
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline and any(_alive(p) for p in pids):
        time.sleep(0.1)
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pid, signal.SIGKILL)
    for name in cluster.netns:
        delete_node_netns(name)
    if cluster.ip_forward_was:
        with contextlib.suppress(OSError):
            IP_FORWARD.write_text(cluster.ip_forward_was + "\n")
    cluster_file().unlink(missing_ok=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie child of ours counts as gone
        return Path(f"/proc/{pid}/stat").read_text().split(") ", 1)[1][0] != "Z"
    except (OSError, IndexError):
        return False
