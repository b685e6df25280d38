"""`pxtui record DIR`: ask the broker for every table and a metadata snapshot, write a recording.

Authenticated and end-to-end sealed exactly like ExecuteScript: the request carries a fresh X25519
public key, every part arrives sealed for it and is opened only here, then written straight to
DIR (cluster/store/recording.py) so a large table is never held whole.
"""

from __future__ import annotations

from pathlib import Path

import grpc
import pyarrow as pa

from cluster.api import vizier_pb2 as pb
from cluster.api import vizier_pb2_grpc as pb_grpc
from cluster.auth.api_keys import API_KEY_HEADER
from cluster.auth.e2e import E2EError, new_client_key, public_bytes, unseal
from cluster.store.recording import AgentInfo, Manifest, RecordingError, RecordingWriter
from pxtui.client import _unavailable
from pxtui.runner import VizierUnavailable


def record(addr: str, api_key: str | None, directory: str | Path, tables: list[str] | None = None,
           timeout_s: float = 120.0) -> Manifest:
    """Raises VizierUnavailable (reach, auth, seal) or RecordingError (DIR not usable)."""
    writer = RecordingWriter(directory)
    key = new_client_key()
    req = pb.RecordTablesRequest(client_public_key=public_bytes(key), tables=tables or [])
    metadata = [(API_KEY_HEADER, api_key)] if api_key else []
    agents: dict[str, AgentInfo] = {}
    end_ns = 0
    version = ""
    channel = grpc.insecure_channel(addr, options=[("grpc.max_receive_message_length", 64 * 1024 * 1024)])
    try:
        stub = pb_grpc.VizierServiceStub(channel)
        for resp in stub.RecordTables(req, metadata=metadata, timeout=timeout_s):
            if resp.WhichOneof("result") == "info":
                i = resp.info
                agents[i.agent_id] = AgentInfo(i.agent_id, i.asid, i.hostname, i.state or "AGENT_STATE_UNKNOWN")
                end_ns = max(end_ns, i.end_time_ns)
                version = i.vizier_version
                continue
            part = resp.part
            try:
                payload = unseal(key, part.sealed_ipc)
            except E2EError as e:
                raise VizierUnavailable(str(e)) from e
            table = pa.ipc.open_stream(payload).read_all()
            if part.metadata:
                writer.add_metadata(table)
            else:
                writer.add(part.table_name, table)
    except grpc.RpcError as e:
        raise _unavailable(addr, e) from e
    finally:
        channel.close()
    if not agents:
        raise RecordingError(f"the Vizier at {addr} sent no agent information; nothing was recorded")
    return writer.close(end_ns, list(agents.values()), version)
