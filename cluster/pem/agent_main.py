"""`pxtui agent`: one PEM joining a broker, collecting with eBPF or serving a recording as a node.

Start order matters: the AgentService listens first (answering "starting" until data is there),
the agent registers to learn its ASID (every upid carries it, so the PEM cannot be built before),
then the probes load, then heartbeats report the agent healthy and the broker starts sending it
queries. A replayed recording keeps the ASID its upids were recorded with.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import socket
import sys
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import grpc

from cluster import paths
from cluster.api import agent_pb2_grpc as apb_grpc
from cluster.api import vizier_pb2 as pb
from cluster.api.serving import start_server
from cluster.auth.service_auth import BROKER_AUDIENCE, ServiceAuthInterceptor, TokenSource
from cluster.auth.service_tokens import ServiceTokens, load_or_create_key
from cluster.metadata.recorded import RecordedMetadata
from cluster.pem.agent import PemConfig, PemStatus
from cluster.pem.agent_link import AgentLink, RegistrationRefused
from cluster.pem.agent_server import AgentBackend, AgentService, status_to_pb, table_schemas
from cluster.store.recording import load_recording
from cluster.store.table_store import TableStore

log = logging.getLogger("pxtui.agent")

GRPC_OPTIONS = [
    ("grpc.max_receive_message_length", 64 * 1024 * 1024),
    ("grpc.max_send_message_length", 64 * 1024 * 1024),
]
STARTING = "AGENT_STATE_STARTING"


class ReplayBackend:
    """A recording served as if it were a live node: the same tables, metadata and status."""

    def __init__(self, directory: str | Path, hostname: str | None = None) -> None:
        rec = load_recording(directory)
        first = rec.manifest.agents[0] if rec.manifest.agents else None
        self.agent_id = str(uuid.uuid4())
        self.hostname = hostname or (first.hostname if first else socket.gethostname())
        self.asid = first.asid if first else 0
        self.started_ns = time.time_ns()
        self.store: TableStore = rec.store
        self.metadata = RecordedMetadata(rec.metadata, self.hostname)

    def status(self) -> PemStatus:
        return PemStatus(
            self.agent_id,
            self.asid,
            self.hostname,
            "AGENT_STATE_HEALTHY",
            ["replay"],
            "missing",
            0,
            0,
            0,
            0,
            self.store.stats(),
            "",
        )


class _Deferred(AgentService):
    """The AgentService before its backend exists: every call answers UNAVAILABLE "starting"."""

    def __init__(self) -> None:
        self.ready = False

    def attach(self, backend: AgentBackend, memory_budget: int) -> None:
        AgentService.__init__(self, backend, memory_budget)
        self.ready = True

    def ExecuteFragments(self, request, context):  # type: ignore[no-untyped-def]
        if not self.ready:
            context.abort(grpc.StatusCode.UNAVAILABLE, "the agent is still starting")
        yield from super().ExecuteFragments(request, context)

    def GetAgentStatus(self, request, context):  # type: ignore[no-untyped-def]
        if not self.ready:
            context.abort(grpc.StatusCode.UNAVAILABLE, "the agent is still starting")
        return super().GetAgentStatus(request, context)

    def RecordTables(self, request, context):  # type: ignore[no-untyped-def]
        if not self.ready:
            context.abort(grpc.StatusCode.UNAVAILABLE, "the agent is still starting")
        yield from super().RecordTables(request, context)


@dataclass
class RunningAgent:
    server: grpc.Server
    link: AgentLink
    backend: AgentBackend
    address: str
    stop_backend: object = None

    def stop(self) -> None:
        self.link.stop()
        self.server.stop(grace=1).wait()
        if self.stop_backend is not None:
            self.stop_backend()  # type: ignore[operator]


def start_agent(
    broker: str,
    *,
    listen: str,
    advertise: str | None,
    signing_key: bytes,
    pem_config: PemConfig | None = None,
    replay: str | None = None,
    asid: int = 0,
    hostname: str | None = None,
    memory_budget: int = 512 * 1024 * 1024,
    register_timeout: float | None = None,
    backend: AgentBackend | None = None,
) -> RunningAgent:
    """Listen, register, start collecting (or load the recording, or serve ``backend``), heartbeat;
    raises with the reason when the agent cannot join or cannot collect."""
    tokens = ServiceTokens(signing_key, issuer="pxtui-pem")
    service = _Deferred()
    server, address = start_server(listen, advertise, [ServiceAuthInterceptor(tokens)],
                                   lambda srv: apb_grpc.add_AgentServiceServicer_to_server(service, srv), 8, "agent")

    replayed = ReplayBackend(replay, hostname) if replay else backend
    agent_id = replayed.agent_id if replayed else str(uuid.uuid4())  # a given backend keeps its own id
    name = hostname or (replayed.hostname if replayed else os.environ.get("NODE_NAME") or socket.gethostname())
    created = time.time_ns()
    backend_ref: list[AgentBackend] = []

    def status() -> pb.AgentStatus:
        if backend_ref:
            return status_to_pb(backend_ref[0].status())
        return pb.AgentStatus(agent_id=agent_id, hostname=name, state=STARTING)

    def schemas() -> list:
        return table_schemas(backend_ref[0].store) if backend_ref else []

    link = AgentLink(
        broker,
        agent_id,
        address,
        name,
        created,
        TokenSource(tokens, BROKER_AUDIENCE),
        status,
        schemas,
        asid=asid or (getattr(replayed, "asid", 0) if replayed else 0),
    )
    try:
        given = link.register(timeout=register_timeout)
        link.start_heartbeats()
        stop_backend = None
        if replayed is not None:
            backend: AgentBackend = replayed
        else:
            from cluster.pem.agent import Pem

            cfg = pem_config or PemConfig()
            pem = Pem(PemConfig(**{**cfg.__dict__, "asid": given}))
            pem.agent_id, pem.hostname, pem.started_ns = agent_id, name, created
            pem.start()
            backend, stop_backend = pem, pem.stop
    except BaseException:
        link.stop()
        server.stop(grace=None)
        raise
    service.attach(backend, memory_budget)
    backend_ref.append(backend)
    log.info("agent %s (%s) serving on %s, broker %s", agent_id, name, address, broker)
    return RunningAgent(server, link, backend, address, stop_backend)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="pxtui agent", description=__doc__)
    p.add_argument("--broker", default=os.environ.get("PXTUI_BROKER", "127.0.0.1:51400"))
    p.add_argument("--listen", default=os.environ.get("PXTUI_AGENT_LISTEN", "127.0.0.1:0"))
    p.add_argument(
        "--advertise",
        default=os.environ.get("PXTUI_AGENT_ADVERTISE") or None,
        help="host:port the broker should call (default: the listen address)",
    )
    p.add_argument("--replay", metavar="DIR", help="serve a recording (pxtui record) instead of collecting")
    p.add_argument("--asid", type=int, default=0)
    p.add_argument("--hostname", default=None)
    p.add_argument("--body-cap", type=int, default=int(os.environ.get("PXTUI_BODY_CAP", "512")))
    p.add_argument("--table-max-mb", type=int, default=256)
    p.add_argument("--memory-budget-mb", type=int, default=512)
    p.add_argument(
        "--node-share",
        metavar="I/N",
        default=None,
        help="own every N-th process of this host by pid (a simulated node; see node_filter.py)",
    )
    p.add_argument("--netns-only", action="store_true", help="own only the processes of this network namespace")
    p.add_argument("--kubernetes", action="store_true", help="metadata from the Kubernetes API (in a cluster)")
    return p


def main(argv: list[str] | None = None) -> int:
    p = build_parser()
    a = p.parse_args(argv)
    share = None
    if a.node_share:
        try:
            i, n = (int(x) for x in a.node_share.split("/"))
            share = (i, n)
        except ValueError:
            p.error(f"--node-share {a.node_share!r}: expected I/N, e.g. 0/3")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        key = load_or_create_key(paths.signing_key_file())
    except OSError as e:
        print(f"pxtui agent: cannot read the signing key {paths.signing_key_file()}: {e}", file=sys.stderr)
        return 1
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    try:
        agent = start_agent(
            a.broker,
            listen=a.listen,
            advertise=a.advertise,
            signing_key=key,
            pem_config=PemConfig(
                body_cap=a.body_cap, table_max_bytes=a.table_max_mb << 20, node_share=share, netns_only=a.netns_only
            ),
            replay=a.replay,
            asid=a.asid,
            hostname=a.hostname,
            memory_budget=a.memory_budget_mb << 20,
        )
    except RegistrationRefused as e:
        print(f"pxtui agent: {e}", file=sys.stderr)
        return 1
    except Exception as e:
        print(f"pxtui agent: cannot start: {e}", file=sys.stderr)
        return 1
    print(
        f"pxtui agent: serving on {agent.address}, registered with {a.broker} as asid {agent.link.asid}",
        file=sys.stderr,
        flush=True,
    )
    stop.wait()
    agent.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
