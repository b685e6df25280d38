"""The query broker: the only door into the Vizier for clients.

Each ExecuteScript call is authenticated by API key, compiled, run under a deadline, and streamed
back as Arrow IPC, every payload sealed for the key the client sent with the request. User mistakes
(a bad script, a missing argument) come back in-band as a QueryError with located messages, so the
client can show them next to the script; only transport and auth problems are gRPC errors.
"""

from __future__ import annotations

import concurrent.futures
import logging
import time
import uuid
from collections.abc import Iterator
from typing import Protocol

import grpc
import pyarrow as pa
import pyarrow.compute as pc

from cluster import pxl
from cluster.api import vizier_pb2 as pb
from cluster.api import vizier_pb2_grpc as pb_grpc
from cluster.auth.api_keys import API_KEY_HEADER, ApiKeyStore, AuthError
from cluster.auth.e2e import E2EError, seal
from cluster.pem.agent import Pem, PemStatus
from cluster.pxl.errors import PxlDeadlineError
from cluster.pxl.exec.export import PxlExportError
from cluster.pxl.vis import FuncToExecute
from cluster.store.recording import metadata_snapshot
from cluster.vizier.vizier_info import EmbeddedVizierInfo

log = logging.getLogger(__name__)

DEFAULT_TIMEOUT_S = 10.0
VIZIER_VERSION = "0.1.0"
MAX_MESSAGE_BYTES = 4 * 1024 * 1024  # results ship in IPC messages of about this size


class Collector(Protocol):
    """What the broker needs of the data side: the embedded PEM now, agents over gRPC later."""

    def status(self) -> PemStatus: ...


def ipc_chunks(table: pa.Table, target_bytes: int = MAX_MESSAGE_BYTES) -> Iterator[tuple[bytes, int]]:
    """Self-contained IPC streams (schema + batches) of about target_bytes each."""
    if table.num_rows == 0:
        yield _ipc(table.schema, []), 0
        return
    per_row = max(1, table.nbytes // max(table.num_rows, 1))
    rows = max(1, target_bytes // per_row)
    for start in range(0, table.num_rows, rows):
        part = table.slice(start, rows)
        yield _ipc(table.schema, part.to_batches()), part.num_rows


def _ipc(schema: pa.Schema, batches: list[pa.RecordBatch]) -> bytes:
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, schema) as w:
        for b in batches:
            w.write_batch(b)
    return sink.getvalue().to_pybytes()


class Broker(pb_grpc.VizierServiceServicer):
    def __init__(self, pem: Pem, keys: ApiKeyStore, default_timeout_s: float = DEFAULT_TIMEOUT_S):
        self.pem = pem
        self.keys = keys
        self.default_timeout_s = default_timeout_s
        self.vizier_info = EmbeddedVizierInfo(pem)
        self._pool = concurrent.futures.ThreadPoolExecutor(max_workers=4, thread_name_prefix="query")

    def _authenticate(self, context: grpc.ServicerContext) -> None:
        md = dict(context.invocation_metadata())
        try:
            self.keys.verify(md.get(API_KEY_HEADER))
        except AuthError as e:
            context.abort(grpc.StatusCode.UNAUTHENTICATED, str(e))

    def ExecuteScript(
        self, request: pb.ExecuteScriptRequest, context: grpc.ServicerContext
    ) -> Iterator[pb.ExecuteScriptResponse]:
        self._authenticate(context)
        qid = str(uuid.uuid4())
        client_key = bytes(request.client_public_key)
        try:
            seal(client_key, b"")  # refuse before doing any work if results could not be sealed
        except E2EError as e:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(e))
        timeout = request.timeout_ms / 1000 if request.timeout_ms > 0 else self.default_timeout_s
        funcs = [
            FuncToExecute(f.func_name, {a.name: a.value for a in f.arg_values}, f.output_table_prefix)
            for f in request.exec_funcs
        ]
        t0 = time.perf_counter_ns()
        try:
            query = pxl.compile_pxl(
                request.query_str, funcs=funcs or None, now_ns=time.time_ns(), schemas=self.pem.store.schemas()
            )
        except pxl.PxlCompileError as e:
            yield _error(qid, pb.QueryError.COMPILE, str(e), e.errors)
            return
        t1 = time.perf_counter_ns()
        future = self._pool.submit(pxl.execute, query, self.pem.store, self.pem.metadata,
                                   vizier=self.vizier_info, deadline=time.monotonic() + timeout)
        warnings: list[str] = []
        try:
            outputs = future.result(timeout=timeout)
        except PxlExportError as e:  # the export failed; the tables computed are still the client's
            outputs, warnings = e.outputs, [str(e)]
        except (concurrent.futures.TimeoutError, PxlDeadlineError):
            # The engine stops the query itself at its next batch (PxlDeadlineError); the wait's own
            # timeout is the backstop for a single batch that takes longer than the whole budget.
            future.cancel()
            yield _error(qid, pb.QueryError.DEADLINE, f"query exceeded its deadline of {timeout:g} s")
            return
        except pxl.PxlRuntimeError as e:
            yield _error(qid, pb.QueryError.RUNTIME, str(e))
            return
        except Exception as e:  # an engine bug: the query fails, the broker stays up
            log.exception("query %s (%s) failed", qid, request.script_name)
            yield _error(qid, pb.QueryError.RUNTIME, f"internal error: {type(e).__name__}: {e}")
            return
        t2 = time.perf_counter_ns()
        rows = 0
        for name, table in outputs:
            chunks = list(ipc_chunks(table))
            for i, (payload, n) in enumerate(chunks):
                rows += n
                yield pb.ExecuteScriptResponse(
                    query_id=qid,
                    batch=pb.EncryptedBatch(
                        table_name=name, sealed_ipc=seal(client_key, payload), num_rows=n, eos=i == len(chunks) - 1
                    ),
                )
        yield pb.ExecuteScriptResponse(
            query_id=qid, stats=pb.QueryStats(compile_ns=t1 - t0, exec_ns=t2 - t1, rows_out=rows, warnings=warnings)
        )

    def GetStatus(
        self, request: pb.StatusRequest, context: grpc.ServicerContext
    ) -> pb.StatusResponse:
        self._authenticate(context)
        st = self.pem.status()
        agent = pb.AgentStatus(
            agent_id=st.agent_id,
            asid=st.asid,
            hostname=st.hostname,
            state=st.state,
            last_heartbeat_ns=time.time_ns(),
            probes=st.probes,
            kernel_headers=st.kernel_headers,
            events_seen=st.events_seen,
            events_lost=st.events_lost,
            parse_errors=st.parse_errors,
            error=st.error,
            conns_active=st.conns_active,
            tables=[
                pb.TableStatus(
                    name=t.name,
                    rows=t.rows,
                    bytes=t.bytes,
                    max_bytes=t.max_bytes,
                    min_time_ns=t.min_time_ns or 0,
                    max_time_ns=t.max_time_ns or 0,
                    rows_evicted=t.rows_evicted,
                )
                for t in st.tables
            ],
        )
        return pb.StatusResponse(agents=[agent], vizier_version=VIZIER_VERSION)

    def RecordTables(
        self, request: pb.RecordTablesRequest, context: grpc.ServicerContext
    ) -> Iterator[pb.RecordTablesResponse]:
        """Every row of every table (or of the tables asked for) up to now, with the tables' schemas
        and a metadata snapshot of every process the rows mention, for replay without the agent.

        The snapshot instant is taken first and rows are read up to it, so the recording's end time
        is exact and a replay that uses it as `now` selects the same rows a live query would have.
        """
        self._authenticate(context)
        client_key = bytes(request.client_public_key)
        try:
            seal(client_key, b"")
        except E2EError as e:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(e))
        store = self.pem.store
        names = list(request.tables) or store.names()
        unknown = [n for n in names if n not in store.names()]
        if unknown:
            context.abort(grpc.StatusCode.NOT_FOUND, f"no table {', '.join(map(repr, unknown))} on agent "
                          f"{self.pem.agent_id}; tables: {', '.join(store.names()) or 'none'}")
        end_ns = time.time_ns()
        agent = self.pem.agent_id
        yield pb.RecordTablesResponse(info=pb.RecordingInfo(
            agent_id=agent, asid=self.pem.config.asid, hostname=self.pem.hostname,
            vizier_version=VIZIER_VERSION, end_time_ns=end_ns, state=self.pem.status().state))
        upids: list[pa.Array] = []
        for name in names:
            schema = store.get(name).schema
            table = pa.Table.from_batches(list(store.scan(name, None, end_ns)), schema=schema)
            if "upid" in schema.names and table.num_rows:
                upids.append(pc.unique(table.column("upid").combine_chunks()))
            yield from _recorded_parts(agent, name, table, client_key, metadata=False)
        snapshot = metadata_snapshot(self.pem.metadata, upids)
        yield from _recorded_parts(agent, "", snapshot, client_key, metadata=True)


def _recorded_parts(agent: str, name: str, table: pa.Table, key: bytes,
                    metadata: bool) -> Iterator[pb.RecordTablesResponse]:
    chunks = list(ipc_chunks(table))
    for i, (payload, n) in enumerate(chunks):
        yield pb.RecordTablesResponse(part=pb.RecordedPart(
            agent_id=agent, table_name=name, sealed_ipc=seal(key, payload), num_rows=n,
            eos=i == len(chunks) - 1, metadata=metadata))


def _error(qid: str, kind: int, message: str, errors: list | None = None) -> pb.ExecuteScriptResponse:
    located = [pb.CompilerError(line=e.line, column=e.col, message=e.message) for e in errors or []]
    return pb.ExecuteScriptResponse(
        query_id=qid, error=pb.QueryError(kind=kind, message=message, compiler_errors=located)
    )
