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
from typing import Protocol

import grpc
import pyarrow as pa

from cluster.api import agent_pb2 as apb
from cluster.api import agent_pb2_grpc as apb_grpc
from cluster.api import vizier_pb2 as pb
from cluster.auth.service_auth import TokenSource
from cluster.metadata.recorded import RecordedMetadata
from cluster.pem.agent_server import DEFAULT_MEMORY_BUDGET, plan_digest
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


class AgentRef(Protocol):
    """An agent to ask: the registry's entry on the broker, or a target a Kelvin was given."""

    agent_id: str
    hostname: str
    address: str
    stub: apb_grpc.AgentServiceStub


@dataclass
class AgentShare:
    agent: AgentRef
    streams: dict[str, list[pa.Table]] = field(default_factory=dict)
    metadata: list[pa.Table] = field(default_factory=list)
    ips: list[pa.Table] = field(default_factory=list)
    error: pb.QueryError | None = None
    failure: str = ""  # transport failure: the agent is missing from the result
    rows: int = 0


def _describe(agent: AgentRef) -> str:
    return f"agent {agent.hostname} ({agent.agent_id[:8]}) at {agent.address}"


def fragment_request(dplan: DistributedPlan, query_str: str, funcs: Sequence[FuncToExecute], memory_budget: int,
                     redaction_mode: str) -> apb.FragmentRequest:
    return apb.FragmentRequest(
        query_id=str(uuid.uuid4()), query_str=query_str,
        exec_funcs=[pb.FuncToExecute(func_name=f.name, output_table_prefix=f.output_name,
                                     arg_values=[pb.ArgValue(name=k, value=v) for k, v in f.args.items()])
                    for f in funcs],
        now_ns=dplan.kelvin.now_ns, plan_digest=plan_digest(dplan), memory_budget_bytes=memory_budget,
        redaction_mode=redaction_mode,
    )


def funcs_of(request: apb.FragmentRequest) -> list[FuncToExecute]:
    return [FuncToExecute(f.func_name, {a.name: a.value for a in f.arg_values}, f.output_table_prefix)
            for f in request.exec_funcs]


class Merger:
    """Kelvin's work: ask every agent for its fragments' output, then run the merge half of the plan.
    Used in the broker's process (the embedded default, and queries of table functions) and by each
    `pxtui kelvin` process."""

    def __init__(self, tokens: TokenSource, cluster_metadata: MetadataSource | None = None,
                 max_parallel: int = 64, name: str = "Kelvin") -> None:
        self.tokens = tokens
        self.cluster_metadata = cluster_metadata
        self.name = name
        self._pool = concurrent.futures.ThreadPoolExecutor(max_workers=max_parallel, thread_name_prefix="fan-out")

    def merge(self, dplan: DistributedPlan, request: apb.FragmentRequest, agents: Sequence[AgentRef], *,
              deadline: float, vizier: VizierInfo | None) -> tuple[list[tuple[str, pa.Table]], list[str]]:
        """(output tables, warnings) or QueryFailed."""
        warnings: list[str] = []
        shares: list[AgentShare] = []
        if dplan.pem:
            if not agents:
                raise QueryFailed(pb.QueryError.RUNTIME, "no healthy agent is registered with the broker, so there "
                                  "is no data to query; `pxtui status` shows the agents and why they are not healthy")
            shares = self._fan_out(request, agents, deadline)
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
        budget = MemoryBudget(request.memory_budget_bytes or DEFAULT_MEMORY_BUDGET, self.name)
        outputs = run_kelvin_tables(dplan, received, self._kelvin_metadata(shares), vizier, deadline=deadline,
                                    budget=budget)
        return outputs, warnings

    def _fan_out(self, template: apb.FragmentRequest, agents: Sequence[AgentRef], deadline: float
                 ) -> list[AgentShare]:
        total = max(deadline - time.monotonic(), 0.05)
        agent_deadline = time.monotonic() + total * (1 - KELVIN_SHARE)
        request = apb.FragmentRequest()
        request.CopyFrom(template)
        request.timeout_ms = max(int((agent_deadline - time.monotonic()) * 1000), 1)
        futures = [self._pool.submit(self._ask, a, request, agent_deadline) for a in agents]
        return [f.result() for f in futures]

    def _ask(self, agent: AgentRef, request: apb.FragmentRequest, agent_deadline: float) -> AgentShare:
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


class Dispatcher:
    """The broker's side: which agents to ask, and which Kelvin merges.

    With `pxtui kelvin` processes registered, each query's merge goes to one of them in turn (queries
    of table functions such as px.GetAgentStatus stay here, where the registry is); a Kelvin that
    cannot be reached is a warning, and the merge runs here instead.
    """

    def __init__(self, registry: AgentRegistry, tokens: TokenSource, cluster_metadata: MetadataSource | None = None,
                 max_parallel: int = 64, kelvin_tokens: TokenSource | None = None) -> None:
        self.registry = registry
        self.tokens = tokens
        self.kelvin_tokens = kelvin_tokens
        self.merger = Merger(tokens, cluster_metadata, max_parallel)
        self._next_kelvin = 0

    def run(self, query: ir.CompiledQuery, query_str: str, funcs: Sequence[FuncToExecute], *,
            deadline: float, memory_budget: int, vizier: VizierInfo, redaction_mode: str = "full",
            schemas: dict[str, pa.Schema] | None = None,
            ) -> tuple[list[tuple[str, pa.Table]], list[str]]:
        """(output tables, warnings) or QueryFailed."""
        dplan = plan(query)
        request = fragment_request(dplan, query_str, funcs, memory_budget, redaction_mode)
        warnings: list[str] = []
        agents = self._agents_to_ask(warnings) if dplan.pem else []
        kelvin = self._pick_kelvin(dplan)
        if kelvin is not None and self.kelvin_tokens is not None:
            try:
                outputs, more = remote_merge(kelvin, request, agents, schemas or {}, deadline, self.kelvin_tokens)
                return outputs, warnings + more
            except KelvinUnavailable as e:
                warnings.append(f"Kelvin {kelvin.hostname} ({kelvin.agent_id[:8]}) at {kelvin.address} could not "
                                f"merge ({e}); merged on the broker instead")
        outputs, more = self.merger.merge(dplan, request, agents, deadline=deadline, vizier=vizier)
        return outputs, warnings + more

    def _agents_to_ask(self, warnings: list[str]) -> list[Agent]:
        agents = []
        for agent, state in self.registry.snapshot():
            if agent.kelvin:
                continue
            if state == "AGENT_STATE_HEALTHY":
                agents.append(agent)
            else:
                warnings.append(f"{_describe(agent)} is {state.removeprefix('AGENT_STATE_').lower()}: "
                                "its data is missing from these results")
        return agents

    def _pick_kelvin(self, dplan: DistributedPlan) -> Agent | None:
        if _reads_table_function(dplan.kelvin):
            return None  # table functions ask the registry, which lives here
        kelvins = [a for a, st in self.registry.snapshot() if a.kelvin and st == "AGENT_STATE_HEALTHY"]
        if not kelvins:
            return None
        self._next_kelvin += 1
        return kelvins[self._next_kelvin % len(kelvins)]

    def close(self) -> None:
        self.merger.close()


class KelvinUnavailable(Exception):
    pass


def _reads_table_function(query: ir.CompiledQuery) -> bool:
    seen: set[int] = set()
    todo: list[ir.PlanNode] = [s.node for s in query.sinks]
    while todo:
        node = todo.pop()
        if id(node) in seen:
            continue
        seen.add(id(node))
        if isinstance(node, ir.UDTFSource):
            return True
        todo.extend(node.parents)
    return False


def remote_merge(kelvin: Agent, request: apb.FragmentRequest, agents: Sequence[AgentRef],
                 schemas: dict[str, pa.Schema], deadline: float, tokens: TokenSource
                 ) -> tuple[list[tuple[str, pa.Table]], list[str]]:
    """Have a `pxtui kelvin` run the fan-out and merge; its outputs in order, and its warnings."""
    timeout = max(deadline - time.monotonic(), 0.05)
    fragment = apb.FragmentRequest()
    fragment.CopyFrom(request)
    fragment.timeout_ms = int(timeout * 1000)
    req = apb.KelvinRequest(
        fragment=fragment,
        agents=[apb.AgentTarget(agent_id=a.agent_id, hostname=a.hostname, address=a.address) for a in agents],
        schemas=[apb.TableSchema(name=n, arrow_schema=s.serialize().to_pybytes()) for n, s in schemas.items()],
    )
    parts: dict[str, list[pa.Table]] = {}
    try:
        for res in kelvin.kelvin_stub.ExecuteQuery(req, timeout=timeout, metadata=tokens.metadata()):
            kind = res.WhichOneof("result")
            if kind == "part":
                parts.setdefault(res.part.table_name, []).append(read_ipc(res.part.ipc))
            elif kind == "error":
                raise QueryFailed(res.error.kind, res.error.message, res.error.compiler_errors)
            elif kind == "done":
                return [(n, pa.concat_tables(t)) for n, t in parts.items()], list(res.done.warnings)
    except grpc.RpcError as e:
        if e.code() == grpc.StatusCode.DEADLINE_EXCEEDED:
            raise QueryFailed(pb.QueryError.DEADLINE, f"Kelvin {kelvin.hostname} did not finish the merge within "
                              f"the query's deadline of {timeout:.1f} s") from None
        raise KelvinUnavailable(f"{e.code().name}: {e.details()}") from None
    raise KelvinUnavailable("its stream ended without finishing")
