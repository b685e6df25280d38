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

import grpc
import pyarrow as pa

from cluster import pxl
from cluster.api import vizier_pb2 as pb
from cluster.api import vizier_pb2_grpc as pb_grpc
from cluster.api.serving import query_error_kind
from cluster.auth.api_keys import API_KEY_HEADER, ApiKeyStore, AuthError, StoredKey
from cluster.auth.e2e import E2EError, open_request_or_abort, seal
from cluster.auth.redaction import redact_outputs
from cluster.pem.agent_server import DEFAULT_MEMORY_BUDGET, VIZIER_VERSION
from cluster.pxl.errors import PxlDeadlineError
from cluster.pxl.exec.export import PxlExportError
from cluster.pxl.vis import FuncToExecute
from cluster.schemas import TABLES
from cluster.vizier.agents import AgentRegistry
from cluster.vizier.dispatch import Dispatcher, QueryFailed
from cluster.vizier.ipc import ipc_chunks
from cluster.vizier.vizier_info import ClusterVizierInfo

log = logging.getLogger(__name__)

DEFAULT_TIMEOUT_S = 10.0


class Broker(pb_grpc.VizierServiceServicer):
    def __init__(self, registry: AgentRegistry, dispatcher: Dispatcher, keys: ApiKeyStore, *,
                 default_timeout_s: float = DEFAULT_TIMEOUT_S, memory_budget: int = DEFAULT_MEMORY_BUDGET,
                 max_concurrent: int = 8):
        self.registry = registry
        self.dispatcher = dispatcher
        self.keys = keys
        self.default_timeout_s = default_timeout_s
        self.memory_budget = memory_budget
        self.vizier_info = ClusterVizierInfo(registry)
        # Each query runs in its own worker with its own deadline and budget: isolated from the others.
        self._pool = concurrent.futures.ThreadPoolExecutor(max_workers=max_concurrent, thread_name_prefix="query")

    def _authenticate(self, context: grpc.ServicerContext) -> StoredKey:
        """The caller's key record (its data access mode decides what the results may show)."""
        md = dict(context.invocation_metadata())
        try:
            return self.keys.verify(md.get(API_KEY_HEADER))
        except AuthError as e:
            context.abort(grpc.StatusCode.UNAUTHENTICATED, str(e))
        raise AssertionError("unreachable: context.abort raises")

    def ExecuteScript(
        self, request: pb.ExecuteScriptRequest, context: grpc.ServicerContext
    ) -> Iterator[pb.ExecuteScriptResponse]:
        api_key = self._authenticate(context)
        request = open_request_or_abort(request, context)  # a request sealed for the Vizier's key, opened
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
            schemas = self._schemas()
            query = pxl.compile_pxl(request.query_str, funcs=funcs or None, now_ns=time.time_ns(), schemas=schemas)
        except pxl.PxlCompileError as e:
            yield _error(qid, pb.QueryError.COMPILE, str(e), e.errors)
            return
        t1 = time.perf_counter_ns()
        future = self._pool.submit(self.dispatcher.run, query, request.query_str, funcs,
                                   deadline=time.monotonic() + timeout, memory_budget=self.memory_budget,
                                   vizier=self.vizier_info, redaction_mode=api_key.mode, schemas=schemas)
        warnings: list[str] = []
        try:
            outputs, warnings = future.result(timeout=timeout)
        except PxlExportError as e:  # the export failed; the tables computed are still the client's
            outputs, warnings = e.outputs, [str(e)]
        except QueryFailed as e:
            yield _error(qid, e.kind, e.message, e.errors)
            return
        except (concurrent.futures.TimeoutError, PxlDeadlineError):
            # The engine stops the query itself at its next batch (PxlDeadlineError); the wait's own
            # timeout is the backstop for a single batch that takes longer than the whole budget.
            future.cancel()
            yield _error(qid, pb.QueryError.DEADLINE, f"query exceeded its deadline of {timeout:g} s")
            return
        except pxl.PxlRuntimeError as e:  # a memory budget, or the script failing at run time
            yield _error(qid, query_error_kind(e) or pb.QueryError.RUNTIME, str(e))
            return
        except Exception as e:  # an engine bug: the query fails, the broker stays up
            log.exception("query %s (%s) failed", qid, request.script_name)
            yield _error(qid, pb.QueryError.RUNTIME, f"internal error: {type(e).__name__}: {e}")
            return
        t2 = time.perf_counter_ns()
        rows = 0
        outputs = redact_outputs(outputs, api_key.mode)  # the key's data access mode, before sealing
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

    def _schemas(self) -> dict[str, pa.Schema]:
        """The tables the agents hold; with no agent yet, every known table, so a script still compiles
        and the query then says plainly that no agent is there to answer it."""
        return self.registry.schemas() or {name: spec.schema for name, spec in TABLES.items()}

    def GetStatus(self, request: pb.StatusRequest, context: grpc.ServicerContext) -> pb.StatusResponse:
        self._authenticate(context)
        agents = []
        now = self.registry.clock()
        for agent, state in self.registry.snapshot():
            st = pb.AgentStatus()
            st.CopyFrom(agent.status)
            st.agent_id, st.asid, st.hostname, st.state = agent.agent_id, agent.asid, agent.hostname, state
            st.last_heartbeat_ns = time.time_ns() - int((now - agent.last_heartbeat) * 1e9)
            agents.append(st)
        return pb.StatusResponse(agents=agents, vizier_version=VIZIER_VERSION)

    def RecordTables(
        self, request: pb.RecordTablesRequest, context: grpc.ServicerContext
    ) -> Iterator[pb.RecordTablesResponse]:
        """Every agent's rows and metadata snapshot, relayed as the agents seal them for the client.
        Only for keys with full access: the agents seal raw tables, which no one between could redact."""
        api_key = self._authenticate(context)
        if api_key.mode != "full":
            context.abort(grpc.StatusCode.PERMISSION_DENIED, f"recording needs an API key with full data access; "
                          f"this key's mode is {api_key.mode!r} (pxtui api-key create --mode full)")
        try:
            seal(bytes(request.client_public_key), b"")
        except E2EError as e:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(e))
        agents = self.registry.healthy()
        if not agents:
            context.abort(grpc.StatusCode.UNAVAILABLE, "no healthy agent is registered with the broker")
        known = set(self.registry.schemas())
        unknown = [n for n in request.tables if n not in known]
        if unknown:
            context.abort(grpc.StatusCode.NOT_FOUND, f"no table {', '.join(map(repr, unknown))} on any agent; "
                          f"tables: {', '.join(sorted(known)) or 'none'}")
        for agent in agents:
            try:
                yield from agent.stub.RecordTables(request, timeout=300, metadata=self.dispatcher.tokens.metadata())
            except grpc.RpcError as e:
                context.abort(grpc.StatusCode.UNAVAILABLE, f"agent {agent.hostname} ({agent.agent_id}) at "
                              f"{agent.address} failed while recording: {e.details()}")


def _error(qid: str, kind: int, message: str, errors: list | None = None) -> pb.ExecuteScriptResponse:
    located = [pb.CompilerError(line=e.line, column=e.col, message=e.message) for e in errors or []]
    return pb.ExecuteScriptResponse(
        query_id=qid, error=pb.QueryError(kind=kind, message=message, compiler_errors=located)
    )
