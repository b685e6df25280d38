"""Run one compiled query across the cluster: PEM fragments on every healthy agent, Kelvin here.

Partial failure is a warning, not an error: an agent that dies (the call fails at once) or stalls
(the call runs into the agents' share of the deadline) is cut off, and the query goes on with what
the others sent, naming each missing agent. Errors every agent would give alike (the script fails
at run time, a memory budget is exceeded) end the query with that error, naming the agent.
"""

from __future__ import annotations

import concurrent.futures
import logging
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field

import grpc
import pyarrow as pa

from cluster.api import agent_pb2 as apb
from cluster.api import vizier_pb2 as pb
from cluster.auth.service_auth import TokenSource
from cluster.metadata.recorded import RecordedMetadata
from cluster.pem.agent_server import plan_digest
from cluster.pxl import ir
from cluster.pxl.errors import MemoryBudget
from cluster.pxl.planner import AgentsMetadata, DistributedPlan, plan, run_kelvin_tables
from cluster.pxl.sources import MetadataSource, VizierInfo
from cluster.pxl.vis import FuncToExecute
from cluster.store.recording import METADATA_SCHEMA
from cluster.vizier.agents import Agent, AgentRegistry
from cluster.vizier.ipc import read_ipc

log = logging.getLogger(__name__)

#: the share of a query's time budget kept for Kelvin after the agents' deadline
KELVIN_SHARE = 0.15


class QueryFailed(Exception):
    """The query cannot give a result; kind is a pb.QueryError kind, the message names the agent."""

    def __init__(self, kind: int, message: str, errors: Sequence[pb.CompilerError] = ()) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message
        self.errors = list(errors)


@dataclass
class AgentShare:
    agent: Agent
    streams: dict[str, list[pa.Table]] = field(default_factory=dict)
    metadata: list[pa.Table] = field(default_factory=list)
    ips: list[pa.Table] = field(default_factory=list)
    error: pb.QueryError | None = None
    failure: str = ""  # transport failure: the agent is missing from the result
    rows: int = 0


def _describe(agent: Agent) -> str:
    return f"agent {agent.hostname} ({agent.agent_id[:8]}) at {agent.address}"


class Dispatcher:
    def __init__(self, registry: AgentRegistry, tokens: TokenSource, cluster_metadata: MetadataSource | None = None,
                 max_parallel: int = 64) -> None:
        self.registry = registry
        self.tokens = tokens
        self.cluster_metadata = cluster_metadata
        self._pool = concurrent.futures.ThreadPoolExecutor(max_workers=max_parallel, thread_name_prefix="dispatch")

    def run(self, query: ir.CompiledQuery, query_str: str, funcs: Sequence[FuncToExecute], *,
            deadline: float, memory_budget: int, vizier: VizierInfo, redaction_mode: str = "full",
            ) -> tuple[list[tuple[str, pa.Table]], list[str]]:
        """(output tables, warnings) or QueryFailed."""
        dplan = plan(query)
        warnings: list[str] = []
        shares: list[AgentShare] = []
        if dplan.pem:
            agents = self._agents_to_ask(warnings)
            shares = self._fan_out(dplan, query_str, funcs, agents, deadline, memory_budget, redaction_mode)
            for share in shares:
                if share.error is not None:
                    raise QueryFailed(share.error.kind, f"{_describe(share.agent)}: {share.error.message}",
                                      share.error.compiler_errors)
                if share.failure:
                    warnings.append(f"{_describe(share.agent)} is missing from these results: {share.failure}")
        received: dict[str, list[pa.Table]] = {s: [] for s, _ in dplan.pem}
        for share in shares:
            if not share.failure:
                for stream, tables in share.streams.items():
                    received.setdefault(stream, []).extend(tables)
        metadata = self._kelvin_metadata(shares)
        budget = MemoryBudget(memory_budget, "Kelvin")
        outputs = run_kelvin_tables(dplan, received, metadata, vizier, deadline=deadline, budget=budget)
        return outputs, warnings

    def _agents_to_ask(self, warnings: list[str]) -> list[Agent]:
        agents = []
        for agent, state in self.registry.snapshot():
            if state == "AGENT_STATE_HEALTHY":
                agents.append(agent)
            else:
                warnings.append(f"{_describe(agent)} is {state.removeprefix('AGENT_STATE_').lower()}: "
                                "its data is missing from these results")
        if not agents:
            raise QueryFailed(pb.QueryError.RUNTIME, "no healthy agent is registered with the broker, so there is "
                              "no data to query; `pxtui status` shows the agents and why they are not healthy")
        return agents

    def _fan_out(self, dplan: DistributedPlan, query_str: str, funcs: Sequence[FuncToExecute],
                 agents: list[Agent], deadline: float, memory_budget: int, redaction_mode: str
                 ) -> list[AgentShare]:
        total = max(deadline - time.monotonic(), 0.05)
        agent_deadline = time.monotonic() + total * (1 - KELVIN_SHARE)
        request = apb.FragmentRequest(
            query_id=str(uuid.uuid4()), query_str=query_str,
            exec_funcs=[pb.FuncToExecute(func_name=f.name, output_table_prefix=f.output_name,
                                         arg_values=[pb.ArgValue(name=k, value=v) for k, v in f.args.items()])
                        for f in funcs],
            now_ns=dplan.kelvin.now_ns, plan_digest=plan_digest(dplan),
            timeout_ms=max(int((agent_deadline - time.monotonic()) * 1000), 1), memory_budget_bytes=memory_budget,
            redaction_mode=redaction_mode,
        )
        futures = [self._pool.submit(self._ask, a, request, agent_deadline) for a in agents]
        return [f.result() for f in futures]

    def _ask(self, agent: Agent, request: apb.FragmentRequest, agent_deadline: float) -> AgentShare:
        share = AgentShare(agent)
        timeout = agent_deadline - time.monotonic()
        if timeout <= 0:
            share.failure = "no time left before the query's deadline"
            return share
        try:
            for res in agent.stub.ExecuteFragments(request, timeout=timeout, metadata=self.tokens.metadata()):
                kind = res.WhichOneof("result")
                if kind == "part":
                    table = read_ipc(res.part.ipc)
                    if res.part.metadata:
                        share.metadata.append(table)
                    elif res.part.ip_metadata:
                        share.ips.append(table)
                    else:
                        share.streams.setdefault(res.part.stream, []).append(table)
                        share.rows += table.num_rows
                elif kind == "error":
                    if res.error.kind == pb.QueryError.DEADLINE:
                        share.failure = f"it ran past the query's deadline ({res.error.message})"
                    else:
                        share.error = res.error
                    return share
                elif kind == "done":
                    return share
            share.failure = "its stream ended without finishing"
        except grpc.RpcError as e:
            code = e.code()
            if code == grpc.StatusCode.DEADLINE_EXCEEDED:
                share.failure = f"it did not answer within the query's deadline ({timeout:.1f} s for agents)"
            elif code == grpc.StatusCode.UNAVAILABLE:
                share.failure = f"it is unreachable ({e.details()})"
            else:
                share.failure = f"{code.name}: {e.details()}"
            log.warning("%s: %s", _describe(agent), share.failure)
        return share

    def _kelvin_metadata(self, shares: list[AgentShare]) -> MetadataSource | None:
        """Per agent, the snapshot of the processes its rows mention; then the cluster's own source."""
        sources: list[MetadataSource | None] = []
        for share in shares:
            if (share.metadata or share.ips) and not share.failure:
                snapshot = pa.concat_tables(share.metadata) if share.metadata else METADATA_SCHEMA.empty_table()
                ips = pa.concat_tables(share.ips) if share.ips else None
                sources.append(RecordedMetadata(snapshot, share.agent.hostname, ips))
        if self.cluster_metadata is not None:
            sources.append(self.cluster_metadata)
        return AgentsMetadata(sources) if sources else None

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
