"""Run scripts in this process against a recording: no agent, no root, no network.

A ScriptRunner (pxtui.runner) like the gRPC client, so `pxtui run --data DIR` prints, and the TUI
shows, exactly what they would for a live Vizier. The query's `now` is the recording's end time,
so relative windows ("-5m") select the rows that were recent when the recording was made rather
than nothing at all a day later.
"""

from __future__ import annotations

import hashlib
import time
import uuid
from collections.abc import Mapping
from pathlib import Path

import pyarrow as pa

from cluster import pxl
from cluster.metadata.recorded import RecordedMetadata
from cluster.pxl.exec.export import PxlExportError
from cluster.pxl.sources import AgentStatus
from cluster.pxl.vis import VisError
from cluster.store.recording import AgentInfo, Recording, load_recording
from pxtui.runner import ClusterStatus, ScriptError, ScriptResult
from pxtui.scripts import Script


def compile_error_text(e: pxl.PxlCompileError) -> str:
    """The same text the gRPC client shows for a located compile error."""
    lines = [f"L{err.line} : C{err.col}  {err.message}" for err in e.errors]
    return "Script compilation failed: " + "\n".join(lines)


def _agent_uid(agent_id: str) -> bytes:
    """The agent's id as the 16 bytes of a UINT128: its UUID, or a stable hash of a non-UUID id."""
    try:
        return uuid.UUID(agent_id).bytes
    except ValueError:
        return hashlib.md5(agent_id.encode()).digest()


class RecordedVizier:
    """The cluster as the recording saw it, for px.GetAgentStatus / px.GetSchemas (a VizierInfo)."""

    def __init__(self, recording: Recording):
        self.recording = recording

    def agents(self) -> list[AgentStatus]:
        return [self._status(a) for a in self.recording.manifest.agents]

    @staticmethod
    def _status(a: AgentInfo) -> AgentStatus:
        return AgentStatus(agent_id=_agent_uid(a.agent_id), asid=a.asid, hostname=a.hostname, ip_address="",
                           agent_state=a.state, create_time=0, last_heartbeat_ns=0,
                           kernel_headers_installed=False, collects_data=True)

    def schemas(self) -> Mapping[str, pa.Schema]:
        return self.recording.store.schemas()


class LocalRunner:
    """A ScriptRunner over a recording directory (see cluster/store/recording.py)."""

    def __init__(self, recording: Recording):
        self.recording = recording
        self.metadata = RecordedMetadata(recording.metadata, recording.manifest.hostname)
        self.vizier = RecordedVizier(recording)

    @classmethod
    def open(cls, directory: str | Path) -> LocalRunner:
        """Raises cluster.store.recording.RecordingError when DIR is not a usable recording."""
        return cls(load_recording(directory))

    @property
    def now_ns(self) -> int:
        return self.recording.manifest.end_time_ns

    def close(self) -> None:
        """Nothing to release; here so the CLI can treat both runners alike."""

    def execute(self, source: str, funcs: list | None = None, name: str = "") -> ScriptResult:
        t0 = time.perf_counter()
        store = self.recording.store
        try:
            query = pxl.compile_pxl(source, funcs=funcs, now_ns=self.now_ns, schemas=store.schemas())
        except pxl.PxlCompileError as e:
            raise ScriptError(compile_error_text(e)) from e
        warnings: list[str] = []
        try:
            outputs = pxl.execute(query, store, self.metadata, vizier=self.vizier)
        except PxlExportError as e:  # the export failed; the tables computed are still returned
            outputs, warnings = e.outputs, [str(e)]
        except pxl.PxlRuntimeError as e:
            raise ScriptError(str(e)) from e
        return ScriptResult(tables=list(outputs), warnings=warnings, elapsed_s=time.perf_counter() - t0)

    # ScriptRunner
    def run(self, script: Script, args: dict[str, str]) -> ScriptResult:
        try:
            funcs = script.funcs_to_execute(args)
        except VisError as e:
            raise ScriptError(str(e)) from e
        return self.execute(script.pxl, funcs, script.id)

    def status(self) -> ClusterStatus:
        m = self.recording.manifest
        n = max(len(m.agents), 1)
        window = (m.start_time_ns, m.end_time_ns) if m.start_time_ns is not None else None
        # The agents were collecting when the recording was made; a replay has nothing to lose.
        return ClusterStatus(agents_healthy=n, agents_total=n, events_lost=0, window=window)
