"""The client side of the broker's API: connect, authenticate, request, decrypt, yield Arrow.

Each request carries a fresh X25519 public key; every result payload arrives sealed for it and is
opened here, so only this process ever holds the plaintext. When the client knows the Vizier's own
public key (pinned: `vizier_key`, PXTUI_VIZIER_KEY, or `vizier_public_key` in the config file that
`pxtui up` writes), the request itself (script, arguments, and the result key) is sealed for the
Vizier too, so a relay in between sees neither direction (cluster/auth/e2e.py).
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator

import grpc
import pyarrow as pa

from cluster.api import vizier_pb2 as pb
from cluster.api import vizier_pb2_grpc as pb_grpc
from cluster.auth.api_keys import API_KEY_HEADER
from cluster.auth.e2e import E2EError, decode_public_key, new_client_key, public_bytes, seal_request, unseal
from cluster.pxl.vis import FuncToExecute, VisError
from pxtui.runner import ClusterStatus, ScriptError, ScriptResult, VizierUnavailable
from pxtui.scripts import Script


def _unavailable(addr: str, e: grpc.RpcError) -> VizierUnavailable:
    code = e.code() if hasattr(e, "code") else None
    detail = e.details() if hasattr(e, "details") else str(e)
    if code == grpc.StatusCode.UNAUTHENTICATED:
        return VizierUnavailable(f"the Vizier at {addr} refused the API key: {detail}")
    if code == grpc.StatusCode.UNAVAILABLE:
        return VizierUnavailable(f"cannot reach the Vizier at {addr} (is it up? `pxtui up`): {detail}")
    if code == grpc.StatusCode.DEADLINE_EXCEEDED:
        return VizierUnavailable(f"the Vizier at {addr} did not answer in time")
    if code in (grpc.StatusCode.FAILED_PRECONDITION, grpc.StatusCode.INVALID_ARGUMENT):
        return VizierUnavailable(f"the Vizier at {addr} refused the request: {detail}")
    return VizierUnavailable(f"the Vizier at {addr} failed the call ({code}): {detail}")


def configured_vizier_key() -> bytes | None:
    """The Vizier key the user pinned: PXTUI_VIZIER_KEY, else `vizier_public_key` in the config file.

    Read only by the CLI, never implicitly by VizierClient: a client built for one Vizier must not
    pick up a key pinned for another (the request would not open there)."""
    from pxtui.config import config_path, load_file

    env = os.environ.get("PXTUI_VIZIER_KEY")
    if env:
        return _decode_pinned(env, "PXTUI_VIZIER_KEY")
    text = load_file().get("vizier_public_key")
    return _decode_pinned(text, f"vizier_public_key in {config_path()}") if text else None


def _decode_pinned(text: str, where: str) -> bytes:
    try:
        return decode_public_key(text, where)
    except E2EError as e:
        raise VizierUnavailable(str(e)) from e


class VizierClient:
    """A ScriptRunner (pxtui.runner) over gRPC.

    vizier_key: the Vizier's X25519 public key (32 bytes). With it every ExecuteScript request is
    sealed end to end; without it the script travels in the clear (the Vizier accepts both)."""

    def __init__(self, addr: str, api_key: str | None, timeout_s: float = 30.0, vizier_key: bytes | None = None,
                 query_timeout_s: float | None = None):
        """``query_timeout_s``: each query's deadline on the Vizier (`--timeout`, else PXTUI_TIMEOUT,
        else the Vizier's default)."""
        self.addr = addr
        self.api_key = api_key
        if query_timeout_s is None and os.environ.get("PXTUI_TIMEOUT"):
            try:
                query_timeout_s = float(os.environ["PXTUI_TIMEOUT"])
            except ValueError:
                raise ValueError(f"PXTUI_TIMEOUT must be seconds, got {os.environ['PXTUI_TIMEOUT']!r}") from None
        self.query_timeout_s = query_timeout_s
        # the call itself may take the query's whole deadline, plus the time to ship the results
        self.timeout_s = max(timeout_s, (query_timeout_s or 0) + 10)
        if vizier_key is not None and len(vizier_key) != 32:
            raise ValueError(f"vizier_key must be the 32 bytes of an X25519 public key, got {len(vizier_key)}")
        self.vizier_key = vizier_key
        self._channel = grpc.insecure_channel(addr, options=[("grpc.max_receive_message_length", 64 * 1024 * 1024)])
        self._stub = pb_grpc.VizierServiceStub(self._channel)

    def close(self) -> None:
        self._channel.close()

    def _metadata(self) -> list[tuple[str, str]]:
        return [(API_KEY_HEADER, self.api_key)] if self.api_key else []

    def execute(self, pxl: str, funcs: list[FuncToExecute] | None = None, name: str = "",
                timeout_ms: int = 0) -> ScriptResult:
        """``timeout_ms``: this query's deadline on the Vizier (0: the Vizier's default)."""
        key = new_client_key()
        req = pb.ExecuteScriptRequest(
            query_str=pxl,
            client_public_key=public_bytes(key),
            script_name=name,
            timeout_ms=timeout_ms or int((self.query_timeout_s or 0) * 1000),
            exec_funcs=[
                pb.FuncToExecute(
                    func_name=f.name,
                    arg_values=[pb.ArgValue(name=k, value=v) for k, v in f.args.items()],
                    output_table_prefix=f.output_name,
                )
                for f in funcs or []
            ],
        )
        if self.vizier_key is not None:
            req = seal_request(req, self.vizier_key)
        t0 = time.perf_counter()
        parts: dict[str, list[pa.RecordBatch]] = {}
        schemas: dict[str, pa.Schema] = {}
        warnings: list[str] = []
        try:
            for resp in self._stub.ExecuteScript(req, metadata=self._metadata(), timeout=self.timeout_s):
                which = resp.WhichOneof("result")
                if which == "error":
                    raise ScriptError(_error_text(resp.error))
                if which == "stats":
                    warnings.extend(resp.stats.warnings)
                    continue
                b = resp.batch
                try:
                    payload = unseal(key, b.sealed_ipc)
                except E2EError as e:
                    raise VizierUnavailable(str(e)) from e
                reader = pa.ipc.open_stream(payload)
                schemas.setdefault(b.table_name, reader.schema)
                parts.setdefault(b.table_name, []).extend(reader)
        except grpc.RpcError as e:
            raise _unavailable(self.addr, e) from e
        tables = [(n, pa.Table.from_batches(parts[n], schema=schemas[n])) for n in parts]
        return ScriptResult(tables=tables, warnings=warnings, elapsed_s=time.perf_counter() - t0)

    # ScriptRunner
    def run(self, script: Script, args: dict[str, str]) -> ScriptResult:
        try:
            funcs = script.funcs_to_execute(args)
        except VisError as e:
            raise ScriptError(str(e)) from e
        return self.execute(script.pxl, funcs, script.id)

    def get_status(self) -> pb.StatusResponse:
        try:
            return self._stub.GetStatus(pb.StatusRequest(), metadata=self._metadata(), timeout=10)
        except grpc.RpcError as e:
            raise _unavailable(self.addr, e) from e

    def status(self) -> ClusterStatus:
        st = self.get_status()
        lo = [t.min_time_ns for a in st.agents for t in a.tables if t.rows and t.min_time_ns]
        hi = [t.max_time_ns for a in st.agents for t in a.tables if t.rows and t.max_time_ns]
        return ClusterStatus(
            agents_healthy=sum(a.state == "AGENT_STATE_HEALTHY" for a in st.agents),
            agents_total=len(st.agents),
            events_lost=sum(a.events_lost for a in st.agents),
            window=(min(lo), max(hi)) if lo and hi else None,
        )


def _error_text(err: pb.QueryError) -> str:
    if err.compiler_errors:
        lines = [f"L{e.line} : C{e.column}  {e.message}" for e in err.compiler_errors]
        return "Script compilation failed: " + "\n".join(lines)
    return err.message


def iter_rows(table: pa.Table) -> Iterator[dict]:
    yield from table.to_pylist()
