"""`pxtui kelvin`: a merge node. The broker hands it a query and the agents to ask; it fans the PEM
fragments out, merges their Arrow streams and streams the outputs back to the broker.

Why separate processes: the merge half of a query (joins, final aggregates, the global head) is the
part that grows with the cluster, and the broker's process also has to authenticate, compile and
seal. With Kelvins registered, queries are spread over them in turn; with none, the broker merges
itself. Like the agents, a Kelvin is handed the script, never a plan, and proves by the plan digest
that it planned the same.
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
from collections.abc import Iterator
from dataclasses import dataclass

import grpc

from cluster import paths, pxl
from cluster.api import agent_pb2 as apb
from cluster.api import agent_pb2_grpc as apb_grpc
from cluster.api import vizier_pb2 as pb
from cluster.api.serving import GRPC_OPTIONS, query_error_kind, start_server
from cluster.auth.service_auth import BROKER_AUDIENCE, PEM_AUDIENCE, ServiceAuthInterceptor, TokenSource
from cluster.auth.service_tokens import ServiceTokens, load_or_create_key
from cluster.pem.agent_link import AgentLink
from cluster.pem.agent_server import plan_digest, schemas_from_pb
from cluster.pxl.exec.export import PxlExportError
from cluster.pxl.planner import plan
from cluster.pxl.sources import MetadataSource
from cluster.schemas import TABLES
from cluster.vizier.dispatch import Merger, QueryFailed, funcs_of
from cluster.vizier.ipc import ipc_chunks

log = logging.getLogger("pxtui.kelvin")


@dataclass
class _Target:
    agent_id: str
    hostname: str
    address: str
    stub: apb_grpc.AgentServiceStub


def _error(kind: int, message: str, errors: list | None = None) -> apb.KelvinResult:
    return apb.KelvinResult(error=pb.QueryError(kind=kind, message=message, compiler_errors=errors or []))


class KelvinService(apb_grpc.KelvinServiceServicer):
    def __init__(self, merger: Merger) -> None:
        self.merger = merger
        self.queries = 0  # merges run, for status and tests
        self._channels: dict[str, grpc.Channel] = {}
        self._lock = threading.Lock()

    def _stub(self, address: str) -> apb_grpc.AgentServiceStub:
        with self._lock:
            if address not in self._channels:
                self._channels[address] = grpc.insecure_channel(address, options=GRPC_OPTIONS)
            return apb_grpc.AgentServiceStub(self._channels[address])

    def ExecuteQuery(self, request: apb.KelvinRequest, context: grpc.ServicerContext) -> Iterator[apb.KelvinResult]:
        t0 = time.perf_counter_ns()
        self.queries += 1
        frag = request.fragment
        schemas = schemas_from_pb(request.schemas) or {n: s.schema for n, s in TABLES.items()}
        try:
            query = pxl.compile_pxl(frag.query_str, funcs=funcs_of(frag) or None, now_ns=frag.now_ns, schemas=schemas)
        except pxl.PxlCompileError as e:
            yield _error(pb.QueryError.COMPILE, str(e))
            return
        dplan = plan(query)
        if frag.plan_digest and plan_digest(dplan) != frag.plan_digest:
            yield _error(pb.QueryError.RUNTIME, "this Kelvin planned the script differently from the broker: "
                         "versions differ")
            return
        targets = [_Target(t.agent_id, t.hostname, t.address, self._stub(t.address)) for t in request.agents]
        deadline = time.monotonic() + (frag.timeout_ms / 1000 if frag.timeout_ms > 0 else 30.0)
        warnings: list[str] = []
        try:
            outputs, warnings = self.merger.merge(dplan, frag, targets, deadline=deadline, vizier=None)
        except PxlExportError as e:
            outputs, warnings = e.outputs, [str(e)]
        except QueryFailed as e:
            yield _error(e.kind, e.message, list(e.errors))
            return
        except pxl.PxlRuntimeError as e:  # deadline, memory budget, or the merge failing
            yield _error(query_error_kind(e) or pb.QueryError.RUNTIME, str(e))
            return
        for name, table in outputs:
            for payload, n in ipc_chunks(table):
                yield apb.KelvinResult(part=apb.OutputPart(table_name=name, ipc=payload, num_rows=n))
        yield apb.KelvinResult(done=apb.KelvinDone(warnings=warnings, exec_ns=time.perf_counter_ns() - t0))

    def close(self) -> None:
        with self._lock:
            for ch in self._channels.values():
                ch.close()
            self._channels.clear()


@dataclass
class RunningKelvin:
    server: grpc.Server
    link: AgentLink
    service: KelvinService
    address: str

    def stop(self) -> None:
        self.link.stop()
        self.server.stop(grace=1).wait()
        self.service.close()
        self.service.merger.close()


def start_kelvin(broker: str, *, listen: str, advertise: str | None, signing_key: bytes,
                 hostname: str | None = None, cluster_metadata: MetadataSource | None = None,
                 register_timeout: float | None = None) -> RunningKelvin:
    tokens = ServiceTokens(signing_key, issuer="pxtui-kelvin")
    service = KelvinService(Merger(TokenSource(tokens, PEM_AUDIENCE), cluster_metadata))
    server, address = start_server(listen, advertise, [ServiceAuthInterceptor(tokens)],
                                   lambda srv: apb_grpc.add_KelvinServiceServicer_to_server(service, srv), 16, "kelvin")
    agent_id = str(uuid.uuid4())
    name = hostname or os.environ.get("NODE_NAME") or socket.gethostname()

    def status() -> pb.AgentStatus:
        return pb.AgentStatus(agent_id=agent_id, hostname=name, state="AGENT_STATE_HEALTHY",
                              kernel_headers="missing (a Kelvin loads no probes)")

    link = AgentLink(broker, agent_id, address, name, time.time_ns(), TokenSource(tokens, BROKER_AUDIENCE), status,
                     lambda: [], kelvin=True)
    try:
        link.register(timeout=register_timeout)
    except BaseException:
        link.stop()
        server.stop(grace=None)
        raise
    link.start_heartbeats()
    log.info("kelvin %s (%s) serving on %s, broker %s", agent_id, name, address, broker)
    return RunningKelvin(server, link, service, address)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="pxtui kelvin", description=__doc__)
    p.add_argument("--broker", default=os.environ.get("PXTUI_BROKER", "127.0.0.1:51400"))
    p.add_argument("--listen", default=os.environ.get("PXTUI_KELVIN_LISTEN", "127.0.0.1:0"))
    p.add_argument("--advertise", default=os.environ.get("PXTUI_KELVIN_ADVERTISE") or None)
    p.add_argument("--hostname", default=None)
    p.add_argument("--kubernetes", action="store_true", help="metadata from the Kubernetes API (in a cluster)")
    return p


def main(argv: list[str] | None = None) -> int:
    a = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        key = load_or_create_key(paths.signing_key_file())
    except OSError as e:
        print(f"pxtui kelvin: cannot read the signing key {paths.signing_key_file()}: {e}", file=sys.stderr)
        return 1
    metadata = None
    if a.kubernetes:
        from cluster.metadata.k8s.source import KubernetesMetadata

        metadata = KubernetesMetadata.in_cluster()
        metadata.start()
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    try:
        kelvin = start_kelvin(a.broker, listen=a.listen, advertise=a.advertise, signing_key=key,
                              hostname=a.hostname, cluster_metadata=metadata)
    except Exception as e:
        print(f"pxtui kelvin: cannot start: {e}", file=sys.stderr)
        return 1
    print(f"pxtui kelvin: serving on {kelvin.address}, registered with {a.broker}", file=sys.stderr, flush=True)
    stop.wait()
    kelvin.stop()
    if metadata is not None:
        metadata.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
