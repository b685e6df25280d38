"""What the UDTFs (px.GetAgentStatus, px.GetSchemas, px.GetTables) learn about the cluster: the
broker's agent registry, with the Kelvin (this process) listed after the PEMs."""

from __future__ import annotations

import time
from collections.abc import Mapping

import pyarrow as pa

from cluster.pxl.sources import AgentStatus
from cluster.vizier.agents import AgentRegistry


class ClusterVizierInfo:
    """A cluster.pxl.sources.VizierInfo over the broker's registry."""

    def __init__(self, registry: AgentRegistry):
        self.registry = registry

    def agents(self) -> list[AgentStatus]:
        return self.registry.agent_statuses()

    def schemas(self) -> Mapping[str, pa.Schema]:
        return self.registry.schemas()

    def now_ns(self) -> int:
        return time.time_ns()
