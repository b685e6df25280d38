"""Every source connector the PEM runs next to the socket tracer, by name.

A factory per name (not instances) so each PEM gets fresh state, and `pxtui agent --connectors`
(or PemConfig.connectors) can pick a subset; each factory takes the PemConfig.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

from cluster.pem.sources.connector import SourceConnector

Factory = Callable[[Any], SourceConnector]


def _lazy(module: str, name: str) -> Factory:
    """A factory importing its connector on first use: a PEM that runs a subset pays for no other."""

    def make(config: Any) -> SourceConnector:
        return getattr(importlib.import_module(module), name)(config)

    return make


#: name -> factory(config), in start order; one line per connector
CONNECTORS: dict[str, Factory] = {
    "perf_profiler": _lazy("cluster.pem.sources.perf_profiler", "PerfProfiler"),
    "process_stats": _lazy("cluster.pem.sources.process_stats", "ProcessStatsConnector"),
    "network_stats": _lazy("cluster.pem.sources.network_stats", "NetworkStatsConnector"),
    "tcp_stats": _lazy("cluster.pem.sources.tcp_stats", "TcpStatsConnector"),
    "proc_exit": _lazy("cluster.pem.sources.proc_exit", "ProcExitConnector"),
    "jvm_stats": _lazy("cluster.pem.sources.jvm_stats", "JvmStatsConnector"),
}


def build(names: tuple[str, ...] | None, config: Any) -> list[SourceConnector]:
    """The connectors asked for (None = all), in registry order; an unknown name is an error."""
    if names is None:
        names = tuple(CONNECTORS)
    unknown = [n for n in names if n not in CONNECTORS]
    if unknown:
        raise ValueError(f"unknown source connector(s) {', '.join(unknown)}; known: {', '.join(CONNECTORS)}")
    return [CONNECTORS[n](config) for n in names]
