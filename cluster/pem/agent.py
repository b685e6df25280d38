"""The PEM: one node's data collection and its tables.

It wires the socket tracer (kernel) to the connection tracker (parsing) to the table store, runs a
housekeeping thread that flushes parsed records into Arrow batches, and answers status questions.
Plan fragments run against `store` (a cluster.pxl TableSource) with `metadata`.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid
from dataclasses import dataclass

import pyarrow as pa

from cluster import schemas
from cluster.metadata.local import LocalMetadata
from cluster.pem.conn_tracker import ConnTracker
from cluster.pem.node_filter import NodeFilter, netns_inode
from cluster.pem.process_info import ProcessCache
from cluster.pem.sources import registry
from cluster.pem.sources.bcc_loader import kernel_headers_source
from cluster.pem.sources.connector import ConnectorContext, SourceConnector
from cluster.store.table_store import TableStats, TableStore

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PemConfig:
    asid: int = 1
    body_cap: int = 512
    max_msg_bytes: int = 16384
    table_max_bytes: int = 256 * 1024 * 1024
    flush_interval_s: float = 0.1
    conn_stats_period_s: float = 10.0
    #: source connectors beside the socket tracer (cluster.pem.sources.registry); None = all
    connectors: tuple[str, ...] | None = None
    #: this PEM's share of the host's processes when several PEMs simulate nodes (node_filter.py):
    #: (index, count) by pid, and/or only the processes of the PEM's own network namespace
    node_share: tuple[int, int] | None = None
    netns_only: bool = False
    #: metadata from the Kubernetes API (in-cluster service account) instead of this host's /proc
    kubernetes: bool = False
    #: how often the CPU profiler ships its stack counts (PXTUI_PROFILER_PERIOD_S overrides)
    profiler_period_s: float = 10.0


@dataclass(frozen=True)
class PemStatus:
    agent_id: str
    asid: int
    hostname: str
    state: str
    probes: list[str]
    kernel_headers: str
    events_seen: int
    events_lost: int
    parse_errors: int
    conns_active: int
    tables: list[TableStats]
    error: str
    conns_reset: int = 0  # connections whose parser kept failing and were reset (conn_tracker.py)


def describe_headers(src: dict) -> str:
    kind = src.get("kind", "missing")
    if kind == "exact":
        return f"exact ({src.get('path', '')})"
    if kind == "fallback":
        return f"fallback: {src.get('version', '?')} headers for kernel {os.uname().release}"
    return "missing"


class Pem:
    def __init__(self, config: PemConfig | None = None):
        self.config = config or PemConfig()
        self.agent_id = str(uuid.uuid4())
        self.started_ns = time.time_ns()
        self.hostname = socket.gethostname()
        self.store = TableStore(self.config.table_max_bytes)
        self.processes = ProcessCache(self.config.asid)
        self.metadata = (
            self._kubernetes_metadata() if self.config.kubernetes else LocalMetadata(self.processes, self.hostname)
        )
        self.tracker = ConnTracker(
            self.store,
            self.processes,
            body_cap=self.config.body_cap,
            conn_stats_period_s=self.config.conn_stats_period_s,
        )
        self.node_filter = NodeFilter(self.config.node_share, netns_inode() if self.config.netns_only else None)
        self.tracer = None
        self.connectors: list[SourceConnector] = []
        self.connector_errors: dict[str, str] = {}
        self.error = ""
        self._stop = threading.Event()
        self._house: threading.Thread | None = None

    def _kubernetes_metadata(self):  # type: ignore[no-untyped-def]
        """Pods, services and the rest from the API server; a upid resolves through its container id
        (from the process's cgroup), as Pixie's PEM resolves it."""
        from cluster.metadata.k8s.source import KubernetesMetadata

        def container_of(upid: bytes) -> str | None:
            info = self.processes.by_upid(upid)
            return info.container_id or None if info is not None else None

        def cmdline_of(upid: bytes) -> str:
            info = self.processes.by_upid(upid)
            return info.cmdline if info is not None else ""

        return KubernetesMetadata.in_cluster(
            resolver=container_of, cmdline=cmdline_of, hostname=os.environ.get("NODE_NAME") or self.hostname
        )

    def start(self) -> None:
        """Load the eBPF probes (3-5 s: BCC compiles every time) and start collecting.
        Raises BpfUnavailable with the reason when the kernel side cannot load."""
        from cluster.pem.sources.socket_tracer import SocketTracer

        self.tracer = SocketTracer(self.node_filter.wrap(self.tracker.handle), max_msg_bytes=self.config.max_msg_bytes)
        try:
            self.tracer.start()
        except Exception as e:
            self.error = str(e)
            self.tracer = None
            raise
        if self.config.kubernetes:
            self.metadata.start()
        self._start_connectors()
        self._house = threading.Thread(target=self._housekeeping, name="pem-housekeeping", daemon=True)
        self._house.start()

    def _start_connectors(self) -> None:
        """Start every other connector; one that cannot start is reported, never fatal: the socket
        tracer and the other connectors keep collecting."""
        ctx = ConnectorContext(self.store, self.processes, self.config.asid, os.getpid(), self.node_filter.owns)
        self.store.create("stirling_error", schemas.STIRLING_ERROR)
        for conn in registry.build(self.config.connectors, self.config):
            try:
                conn.start(ctx)
            except Exception as e:
                log.warning("source connector %s cannot start: %s", conn.name, e)
                self.connector_errors[conn.name] = str(e)
                self._report(conn.name, 2, str(e), "start")
                continue
            self._report(conn.name, 0, "", "start")
            self.connectors.append(conn)

    def _report(self, connector: str, code: int, error: str, where: str) -> None:
        self.store.append(
            "stirling_error",
            pa.table(
                {
                    "time_": pa.array([time.time_ns()], schemas.STIRLING_ERROR.field("time_").type),
                    "upid": pa.array(
                        [self.processes.lookup(os.getpid()).upid], schemas.STIRLING_ERROR.field("upid").type
                    ),
                    "source_connector": [connector],
                    "status": pa.array([code], pa.int64()),
                    "error": [error],
                    "context": [where],
                },
                schema=schemas.STIRLING_ERROR,
            ),
        )

    def _housekeeping(self) -> None:
        due = {c.name: 0.0 for c in self.connectors}
        failing: set[str] = set()
        while not self._stop.wait(self.config.flush_interval_s):
            try:
                self.tracker.tick()
            except Exception:  # a bug in one flush must not stop collection
                log.exception("PEM housekeeping failed")
            now = time.monotonic()
            for conn in self.connectors:
                if now < due[conn.name]:
                    continue
                due[conn.name] = now + conn.period_s
                try:
                    conn.tick(time.time_ns())
                    failing.discard(conn.name)
                except Exception as e:  # report once per failure streak, keep ticking the others
                    if conn.name not in failing:
                        log.exception("source connector %s failed", conn.name)
                        self._report(conn.name, 2, f"{type(e).__name__}: {e}", "tick")
                    failing.add(conn.name)

    def stop(self) -> None:
        self._stop.set()
        if self._house is not None:
            self._house.join(timeout=5)
        for conn in self.connectors:
            try:
                conn.stop()
            except Exception:
                log.exception("source connector %s failed to stop", conn.name)
        self.connectors = []
        if self.config.kubernetes:
            self.metadata.stop()
        if self.tracer is not None:
            self.tracer.stop()
            self.tracer = None
        self.tracker.tick(time.time_ns() + 10**12)  # emit what is pending

    def status(self) -> PemStatus:
        tstats = self.tracer.stats() if self.tracer is not None else {}
        seen = tstats.get("events_seen", 0)
        if isinstance(seen, dict):
            seen = sum(seen.values())
        headers = tstats.get("header_source") or kernel_headers_source()
        probes = list(tstats.get("probes", []))
        lost = int(tstats.get("events_lost", 0))
        errors = [self.error] if self.error else []
        errors += [f"{n}: {e}" for n, e in self.connector_errors.items()]
        for conn in self.connectors:
            cs = conn.status()
            probes += [f"{cs.name}:{p}" for p in cs.probes]
            lost += cs.events_lost
            if cs.error:
                errors.append(f"{cs.name}: {cs.error}")
        return PemStatus(
            agent_id=self.agent_id,
            asid=self.config.asid,
            hostname=self.hostname,
            state="AGENT_STATE_HEALTHY" if self.tracer is not None else "AGENT_STATE_UNHEALTHY",
            probes=probes,
            kernel_headers=describe_headers(headers),
            events_seen=int(seen),
            events_lost=lost,
            parse_errors=self.tracker.stats.parse_errors,
            conns_active=self.tracker.active_connections(),
            tables=self.store.stats(),
            error="; ".join(errors),
            conns_reset=self.tracker.stats.conns_reset,
        )
