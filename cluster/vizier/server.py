"""The Vizier's control plane in one process: query broker, Kelvin, agent registry, metadata.

`pxtui vizier` runs it alone; PEMs join it over gRPC (`pxtui agent --broker ADDR`). The embedded
default (`pxtui up`) runs it with one PEM in the same process, and that PEM still registers and
answers through the same gRPC services as a remote one, so one code path is tested both ways. With
an embedded PEM the process exits with a clear message, and status 1, when the eBPF side cannot
load, rather than serving empty tables.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
from concurrent import futures

import grpc

from cluster import paths
from cluster.api import agent_pb2_grpc as apb_grpc
from cluster.api import vizier_pb2_grpc as pb_grpc
from cluster.auth.api_keys import ApiKeyStore
from cluster.auth.service_auth import KELVIN_AUDIENCE, PEM_AUDIENCE, ServiceAuthInterceptor, TokenSource
from cluster.auth.service_tokens import ServiceTokens, load_or_create_key
from cluster.pem.agent import PemConfig
from cluster.vizier.agents import GRPC_OPTIONS, AgentRegistry
from cluster.vizier.broker import DEFAULT_TIMEOUT_S, Broker
from cluster.vizier.dispatch import Dispatcher

log = logging.getLogger("pxtui.vizier")


def serve(
    addr: str,
    *,
    embedded_pem: PemConfig | None,
    extra_listen: tuple[str, ...] = (),
    heartbeat_s: float = 1.0,
    kubernetes: bool = False,
    default_timeout_s: float = DEFAULT_TIMEOUT_S,
    memory_budget: int = 512 << 20,
    ready: threading.Event | None = None,
    stop: threading.Event | None = None,
) -> int:
    paths.ensure_state_dir()
    keys = ApiKeyStore(paths.api_keys_file())
    signing_key = load_or_create_key(paths.signing_key_file())
    tokens = ServiceTokens(signing_key, issuer="pxtui-broker")
    registry = AgentRegistry(heartbeat_interval_s=heartbeat_s)
    cluster_metadata = None
    if kubernetes:  # Kelvin's look-ups of pods, services and IPs the agents' snapshots do not hold
        from cluster.metadata.k8s.source import KubernetesMetadata

        try:
            cluster_metadata = KubernetesMetadata.in_cluster()
            cluster_metadata.start()
        except Exception as e:
            print(f"pxtui vizier: cannot reach the Kubernetes API: {e}", file=sys.stderr)
            return 1
    dispatcher = Dispatcher(registry, TokenSource(tokens, PEM_AUDIENCE), cluster_metadata=cluster_metadata,
                            kelvin_tokens=TokenSource(tokens, KELVIN_AUDIENCE))
    broker = Broker(registry, dispatcher, keys, default_timeout_s=default_timeout_s, memory_budget=memory_budget)
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=16, thread_name_prefix="grpc"),
        interceptors=[ServiceAuthInterceptor(tokens)],
        options=GRPC_OPTIONS,
    )
    pb_grpc.add_VizierServiceServicer_to_server(broker, server)
    apb_grpc.add_AgentRegistryServicer_to_server(registry, server)
    try:
        port = server.add_insecure_port(addr)
        for extra in extra_listen:  # e.g. the host ends of simulated nodes' veth pairs
            server.add_insecure_port(extra)
    except RuntimeError as e:
        print(f"pxtui vizier: cannot listen on {addr} {' '.join(extra_listen)}: {e}", file=sys.stderr)
        return 1
    server.start()
    agent = None
    if embedded_pem is not None:
        from cluster.pem.agent_main import start_agent

        log.info("loading eBPF probes (BCC compiles them; this takes a few seconds)")
        try:
            agent = start_agent(
                f"127.0.0.1:{port}",
                listen="127.0.0.1:0",
                advertise=None,
                signing_key=signing_key,
                pem_config=embedded_pem,
                memory_budget=memory_budget,
                register_timeout=10,
            )
        except Exception as e:
            log.error("cannot collect data: %s", e)
            print(f"pxtui vizier: cannot collect data: {e}", file=sys.stderr)
            server.stop(grace=None)
            return 1
        registry.wait_for(lambda agents: any(st == "AGENT_STATE_HEALTHY" for _, st in agents), timeout=10)
    paths.pid_file().write_text(str(os.getpid()))
    paths.addr_file().write_text(addr)
    log.info("vizier ready on %s (%s)", addr, "with an embedded PEM" if agent else "waiting for agents")
    if ready is not None:
        ready.set()
    stop = stop or threading.Event()
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: stop.set())
    stop.wait()
    log.info("stopping")
    if agent is not None:
        agent.stop()
    server.stop(grace=2).wait()
    dispatcher.close()
    registry.close()
    if cluster_metadata is not None:
        cluster_metadata.stop()
    for f in (paths.pid_file(), paths.addr_file()):
        f.unlink(missing_ok=True)
    return 0


def build_parser(embedded_default: bool = False) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="pxtui vizier", description=__doc__)
    p.add_argument("--addr", "--listen", dest="addr", default=os.environ.get("PXTUI_VIZIER_LISTEN", paths.DEFAULT_ADDR))
    p.add_argument(
        "--extra-listen", action="append", default=[], metavar="ADDR", help="another address to listen on (repeatable)"
    )
    p.add_argument(
        "--embedded-pem",
        action=argparse.BooleanOptionalAction,
        default=embedded_default,
        help="run a PEM in this process (the embedded default)",
    )
    p.add_argument("--body-cap", type=int, default=int(os.environ.get("PXTUI_BODY_CAP", "512")))
    p.add_argument("--table-max-mb", type=int, default=256)
    p.add_argument("--conn-stats-period", type=float, default=10.0)
    p.add_argument("--kubernetes", action="store_true", help="metadata from the Kubernetes API (in a cluster)")
    p.add_argument("--heartbeat", type=float, default=1.0, help="agent heartbeat interval, seconds")
    p.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT_S, help="default query deadline, seconds")
    p.add_argument("--memory-budget-mb", type=int, default=512, help="per query and executor")
    return p


def main(argv: list[str] | None = None, *, embedded_default: bool = False) -> int:
    a = build_parser(embedded_default).parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    cfg = (
        PemConfig(
            body_cap=a.body_cap, table_max_bytes=a.table_max_mb * 1024 * 1024, conn_stats_period_s=a.conn_stats_period
        )
        if a.embedded_pem
        else None
    )
    return serve(
        a.addr,
        embedded_pem=cfg,
        extra_listen=tuple(a.extra_listen),
        heartbeat_s=a.heartbeat,
        default_timeout_s=a.timeout,
        memory_budget=a.memory_budget_mb << 20,
    )


if __name__ == "__main__":
    sys.exit(main())
