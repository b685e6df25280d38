"""A PEM's gRPC face: the AgentService the broker calls to run plan fragments, read status and record.

The broker never sends an executable plan. It sends the script, its arguments and the query's `now`;
the agent compiles and plans it the same way (the planner is deterministic) and proves it with the
plan digest, so nothing the wire carries is ever run as code, and a PEM of another version refuses a
plan it would not build identically instead of returning wrong rows.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Iterator, Mapping
from typing import Protocol

import grpc
import pyarrow as pa
import pyarrow.compute as pc

from cluster import pxl
from cluster.api import agent_pb2 as apb
from cluster.api import agent_pb2_grpc as apb_grpc
from cluster.api import vizier_pb2 as pb
from cluster.api.serving import query_error_kind
from cluster.auth.e2e import E2EError, seal
from cluster.auth.redaction import redacting_batches
from cluster.pem.agent import PemStatus
from cluster.pxl.errors import MemoryBudget
from cluster.pxl.planner import DistributedPlan, pem_tables, plan
from cluster.pxl.sources import MetadataSource
from cluster.pxl.vis import FuncToExecute
from cluster.schemas import TABLES, UINT128
from cluster.store.recording import metadata_snapshot
from cluster.store.table_store import TableStore
from cluster.vizier.ipc import ipc_chunks

log = logging.getLogger(__name__)

DEFAULT_MEMORY_BUDGET = 512 * 1024 * 1024
VIZIER_VERSION = "0.1.0"


class AgentBackend(Protocol):
    """What an agent serves: the live PEM (cluster.pem.agent.Pem) or a recording replayed as a node."""

    agent_id: str
    hostname: str
    started_ns: int
    store: TableStore
    metadata: MetadataSource

    def status(self) -> PemStatus: ...


def plan_digest(dplan: DistributedPlan) -> str:
    return hashlib.sha256(dplan.describe().encode()).hexdigest()[:32]


def compile_schemas(store: TableStore) -> dict[str, pa.Schema]:
    """Every known table, so a script compiles the same on every agent even where a table is absent
    (an absent table has no rows here; the broker decides whether it exists anywhere)."""
    schemas = {name: spec.schema for name, spec in TABLES.items()}
    schemas.update(store.schemas())
    return schemas


class _PresentTables:
    """The store, where a table this agent does not hold simply has no rows, and whose batches are
    redacted for the client's data access mode before any operator sees them (as Pixie places it),
    so a body copied into a column of another name is redacted too."""

    def __init__(self, store: TableStore, mode: str = "full") -> None:
        self.store = store
        self.mode = mode

    def scan(self, table: str, start_ns: int | None, end_ns: int | None) -> Iterator[pa.RecordBatch]:
        if table not in self.store.names():
            return iter(())
        batches = self.store.scan(table, start_ns, end_ns)
        return batches if self.mode == "full" else redacting_batches(batches, self.mode)


def status_to_pb(st: PemStatus) -> pb.AgentStatus:
    return pb.AgentStatus(
        agent_id=st.agent_id, asid=st.asid, hostname=st.hostname, state=st.state,
        last_heartbeat_ns=time.time_ns(), probes=st.probes, kernel_headers=st.kernel_headers,
        events_seen=st.events_seen, events_lost=st.events_lost, parse_errors=st.parse_errors,
        error=st.error, conns_active=st.conns_active, conns_reset=st.conns_reset,
        tables=[pb.TableStatus(name=t.name, rows=t.rows, bytes=t.bytes, max_bytes=t.max_bytes,
                               min_time_ns=t.min_time_ns or 0, max_time_ns=t.max_time_ns or 0,
                               rows_evicted=t.rows_evicted) for t in st.tables],
    )


def table_schemas(store: TableStore) -> list[apb.TableSchema]:
    return [apb.TableSchema(name=n, arrow_schema=s.serialize().to_pybytes()) for n, s in store.schemas().items()]


def _error(kind: int, message: str, errors: list | None = None) -> apb.FragmentResult:
    located = [pb.CompilerError(line=e.line, column=e.col, message=e.message) for e in errors or []]
    return apb.FragmentResult(error=pb.QueryError(kind=kind, message=message, compiler_errors=located))


def _upids(table: pa.Table) -> list[pa.Array]:
    """The distinct upids of every UINT128 column (upid columns keep their type through a plan)."""
    out = []
    for col in table.columns:
        if col.type == UINT128 and table.num_rows:
            out.append(pc.unique(col.combine_chunks()))
    return out


def ip_table(metadata: object) -> pa.Table | None:
    """The agent's pod addresses as a table (ip, attributes...), when its metadata knows any."""
    records = getattr(metadata, "ip_records", lambda: [])()
    if not records:
        return None
    names = list(records[0][1])
    cols = {"ip": [ip for ip, _ in records]}
    cols.update({n: [r.get(n, "") for _, r in records] for n in names})
    return pa.table({k: pa.array(v, pa.string()) for k, v in cols.items()})


class AgentService(apb_grpc.AgentServiceServicer):
    def __init__(self, backend: AgentBackend, memory_budget: int = DEFAULT_MEMORY_BUDGET) -> None:
        self.backend = backend
        self.memory_budget = memory_budget

    def ExecuteFragments(self, request: apb.FragmentRequest, context: grpc.ServicerContext
                         ) -> Iterator[apb.FragmentResult]:
        t0 = time.perf_counter_ns()
        store = self.backend.store
        funcs = [FuncToExecute(f.func_name, {a.name: a.value for a in f.arg_values}, f.output_table_prefix)
                 for f in request.exec_funcs]
        try:
            query = pxl.compile_pxl(request.query_str, funcs=funcs or None, now_ns=request.now_ns,
                                    schemas=compile_schemas(store))
        except pxl.PxlCompileError as e:
            yield _error(pb.QueryError.COMPILE, str(e), e.errors)
            return
        dplan = plan(query)
        if request.plan_digest and plan_digest(dplan) != request.plan_digest:
            yield _error(pb.QueryError.RUNTIME, f"agent {self.backend.hostname} ({self.backend.agent_id}) "
                         "planned this script differently from the broker: versions differ")
            return
        timeout = request.timeout_ms / 1000 if request.timeout_ms > 0 else 30.0
        budget = MemoryBudget(request.memory_budget_bytes or self.memory_budget,
                              f"agent {self.backend.hostname} ({self.backend.agent_id[:8]})")
        rows = nbytes = 0
        upids: list[pa.Array] = []
        try:
            tables = _PresentTables(store, request.redaction_mode or "full")
            for stream, table in pem_tables(dplan, tables, self.backend.metadata,
                                            deadline=time.monotonic() + timeout, budget=budget):
                upids += _upids(table)
                for payload, n in ipc_chunks(table):
                    rows += n
                    nbytes += len(payload)
                    yield apb.FragmentResult(part=apb.StreamPart(stream=stream, ipc=payload, num_rows=n))
        except pxl.PxlRuntimeError as e:  # deadline, memory budget, or the script failing here
            yield _error(query_error_kind(e) or pb.QueryError.RUNTIME, str(e))
            return
        except ValueError as e:  # an unknown redaction mode: refuse rather than return raw rows
            yield _error(pb.QueryError.RUNTIME, str(e))
            return
        if upids:
            snapshot = metadata_snapshot(self.backend.metadata, upids)
            for payload, n in ipc_chunks(snapshot):
                yield apb.FragmentResult(part=apb.StreamPart(ipc=payload, num_rows=n, metadata=True))
        ips = ip_table(self.backend.metadata)
        if ips is not None:
            for payload, n in ipc_chunks(ips):
                yield apb.FragmentResult(part=apb.StreamPart(ipc=payload, num_rows=n, ip_metadata=True))
        yield apb.FragmentResult(done=apb.FragmentDone(exec_ns=time.perf_counter_ns() - t0, rows=rows,
                                                       bytes=nbytes))

    def GetAgentStatus(self, request: pb.StatusRequest, context: grpc.ServicerContext) -> pb.AgentStatus:
        return status_to_pb(self.backend.status())

    def RecordTables(self, request: pb.RecordTablesRequest, context: grpc.ServicerContext
                     ) -> Iterator[pb.RecordTablesResponse]:
        """Every row of the tables asked for up to now, and a metadata snapshot of every process the
        rows mention, sealed for the client (the broker only relays), for replay without the agent.

        The snapshot instant is taken first and rows are read up to it, so the recording's end time
        is exact and a replay that uses it as `now` selects the same rows a live query would have.
        """
        client_key = bytes(request.client_public_key)
        try:
            seal(client_key, b"")
        except E2EError as e:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(e))
        backend = self.backend
        store = backend.store
        names = [n for n in request.tables if n in store.names()] if request.tables else store.names()
        end_ns = time.time_ns()
        st = backend.status()
        yield pb.RecordTablesResponse(info=pb.RecordingInfo(
            agent_id=backend.agent_id, asid=st.asid, hostname=backend.hostname, vizier_version=VIZIER_VERSION,
            end_time_ns=end_ns, state=st.state))
        upids: list[pa.Array] = []
        for name in names:
            schema = store.get(name).schema
            table = pa.Table.from_batches(list(store.scan(name, None, end_ns)), schema=schema)
            if "upid" in schema.names and table.num_rows:
                upids.append(pc.unique(table.column("upid").combine_chunks()))
            yield from _recorded_parts(backend.agent_id, name, table, client_key, metadata=False)
        snapshot = metadata_snapshot(backend.metadata, upids)
        yield from _recorded_parts(backend.agent_id, "", snapshot, client_key, metadata=True)


def _recorded_parts(agent: str, name: str, table: pa.Table, key: bytes,
                    metadata: bool) -> Iterator[pb.RecordTablesResponse]:
    chunks = list(ipc_chunks(table))
    for i, (payload, n) in enumerate(chunks):
        yield pb.RecordTablesResponse(part=pb.RecordedPart(
            agent_id=agent, table_name=name, sealed_ipc=seal(key, payload), num_rows=n,
            eos=i == len(chunks) - 1, metadata=metadata))


def schemas_from_pb(items: list[apb.TableSchema] | Mapping) -> dict[str, pa.Schema]:
    return {t.name: pa.ipc.read_schema(pa.py_buffer(t.arrow_schema)) for t in items}
