"""The contract every PEM source connector keeps, beyond the socket tracer.

Why one contract: the PEM starts, ticks, stops and reports every connector the same way, so a new
data source (the profiler, /proc readers, tcp tracepoints, JVM files) is one module plus one line in
cluster.pem.sources.registry, and a connector that cannot start (no perf events, no JVM) is reported
in `pxtui status` and in the stirling_error table instead of stopping the others.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from cluster.pem.process_info import ProcessCache
from cluster.store.table_store import TableStore


@dataclass(frozen=True)
class ConnectorContext:
    """What a connector gets from its PEM: where rows go and how to name processes."""

    store: TableStore
    processes: ProcessCache
    asid: int
    own_pid: int
    #: whether a pid belongs to this PEM's node (always true on a real node; see node_filter.py)
    owns: Callable[[int], bool] = lambda _pid: True


@dataclass
class ConnectorStatus:
    name: str
    probes: list[str] = field(default_factory=list)  # tracepoints, perf events, files watched
    events_lost: int = 0
    error: str = ""  # why it is not collecting, when it is not


class SourceConnector(Protocol):
    #: short name used in status and stirling_error ("process_stats", "perf_profiler", ...)
    name: str
    #: how often the PEM calls tick(); a connector with its own thread may ignore ticks
    period_s: float

    def start(self, ctx: ConnectorContext) -> None:
        """Create its tables in ctx.store and start collecting; raise with the reason if it cannot."""

    def tick(self, now_ns: int) -> None:
        """Collect or flush once; called from the PEM's housekeeping thread every period_s."""

    def stop(self) -> None:
        """Stop and flush what is pending into the store."""

    def status(self) -> ConnectorStatus: ...
