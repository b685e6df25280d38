"""An in-process cluster for tests: a real broker gRPC server and real agents registering with it.

Everything crosses real gRPC channels with real service tokens; only the processes are shared, so
tests of planning, dispatch and merging run in a second. Tests of processes dying use real agent
processes instead (tests/integration/test_multi_agent.py).
"""

from __future__ import annotations

import contextlib
import secrets
import threading
import time
import uuid
from collections.abc import Iterator, Sequence
from concurrent import futures
from dataclasses import dataclass, field
from pathlib import Path

import grpc
import pyarrow as pa
import pyarrow.compute as pc

from cluster.api import agent_pb2_grpc as apb_grpc
from cluster.api import vizier_pb2_grpc as pb_grpc
from cluster.auth.api_keys import ApiKeyStore
from cluster.auth.service_auth import KELVIN_AUDIENCE, PEM_AUDIENCE, ServiceAuthInterceptor, TokenSource
from cluster.auth.service_tokens import ServiceTokens
from cluster.metadata.recorded import RecordedMetadata
from cluster.pem.agent import PemStatus
from cluster.pem.agent_main import RunningAgent, start_agent
from cluster.pem.agent_server import AgentBackend
from cluster.store.table_store import TableStore
from cluster.vizier.agents import GRPC_OPTIONS, AgentRegistry
from cluster.vizier.broker import Broker
from cluster.vizier.dispatch import Dispatcher
from cluster.vizier.kelvin import RunningKelvin, start_kelvin


class StoreBackend:
    """An agent's data side over given tables and a metadata snapshot (what a PEM or a replay offers)."""

    def __init__(self, tables: dict[str, pa.Table], metadata: pa.Table, hostname: str, asid: int = 0) -> None:
        self.agent_id = str(uuid.uuid4())
        self.hostname = hostname
        self.asid = asid
        self.started_ns = time.time_ns()
        self.store = TableStore(default_max_bytes=1 << 62)
        for name, table in tables.items():
            self.store.create(name, table.schema)
            if table.num_rows:
                self.store.append(name, table)
        self.metadata = RecordedMetadata(metadata, hostname)

    def status(self) -> PemStatus:
        return PemStatus(self.agent_id, self.asid, self.hostname, "AGENT_STATE_HEALTHY", ["test"], "exact", 0, 0, 0,
                         0, self.store.stats(), "")


def split_rows(tables: dict[str, pa.Table], n: int) -> list[dict[str, pa.Table]]:
    """Every table's rows dealt round-robin to n agents (each keeps the rows' time order)."""
    parts: list[dict[str, pa.Table]] = [{} for _ in range(n)]
    for name, table in tables.items():
        idx = pa.array(range(table.num_rows), pa.int64())
        deal = pc.subtract(idx, pc.multiply(pc.divide(idx, n), n))  # idx mod n (integer division)
        for i in range(n):
            parts[i][name] = table.filter(pc.equal(deal, i))
    return parts


@dataclass
class Cluster:
    addr: str
    api_key: str
    signing_key: bytes
    registry: AgentRegistry
    broker: Broker
    agents: list[RunningAgent] = field(default_factory=list)
    kelvins: list[RunningKelvin] = field(default_factory=list)

    def client(self):  # type: ignore[no-untyped-def]
        from pxtui.client import VizierClient

        return VizierClient(self.addr, self.api_key)

    def add_kelvin(self, hostname: str) -> RunningKelvin:
        kelvin = start_kelvin(self.addr, listen="127.0.0.1:0", advertise=None, signing_key=self.signing_key,
                              hostname=hostname, register_timeout=10)
        self.kelvins.append(kelvin)
        self.registry.wait_for(lambda s: sum(a.kelvin and st == "AGENT_STATE_HEALTHY" for a, st in s)
                               >= len(self.kelvins), timeout=10)
        return kelvin

    def add_agent(self, backend: AgentBackend, asid: int = 0) -> RunningAgent:
        agent = start_agent(self.addr, listen="127.0.0.1:0", advertise=None, signing_key=self.signing_key,
                            backend=backend, asid=asid, register_timeout=10)
        self.agents.append(agent)
        n = len(self.agents)
        self.registry.wait_for(lambda s: sum(st == "AGENT_STATE_HEALTHY" and not a.kelvin for a, st in s) >= n,
                               timeout=10)
        return agent


@contextlib.contextmanager
def running_cluster(tmp: Path, backends: Sequence[AgentBackend] = (), *, heartbeat_s: float = 0.2,
                    timeout_s: float = 10.0, memory_budget: int = 512 << 20) -> Iterator[Cluster]:
    keys = ApiKeyStore(tmp / "api_keys.json")
    _, api_key = keys.create("tests")
    signing_key = secrets.token_bytes(32)
    tokens = ServiceTokens(signing_key, issuer="pxtui-broker")
    registry = AgentRegistry(heartbeat_interval_s=heartbeat_s)
    dispatcher = Dispatcher(registry, TokenSource(tokens, PEM_AUDIENCE),
                            kelvin_tokens=TokenSource(tokens, KELVIN_AUDIENCE))
    broker = Broker(registry, dispatcher, keys, default_timeout_s=timeout_s, memory_budget=memory_budget)
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=16), interceptors=[ServiceAuthInterceptor(tokens)],
                         options=GRPC_OPTIONS)
    pb_grpc.add_VizierServiceServicer_to_server(broker, server)
    apb_grpc.add_AgentRegistryServicer_to_server(registry, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    cluster = Cluster(f"127.0.0.1:{port}", api_key, signing_key, registry, broker)
    try:
        for b in backends:
            cluster.add_agent(b)
        yield cluster
    finally:
        stoppers = [threading.Thread(target=a.stop) for a in [*cluster.agents, *cluster.kelvins]]
        for t in stoppers:
            t.start()
        for t in stoppers:
            t.join()
        server.stop(grace=None)
        dispatcher.close()
        registry.close()
