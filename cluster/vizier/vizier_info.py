"""What the UDTFs (px.GetAgentStatus, px.GetSchemas, px.GetTables) learn about the embedded Vizier.

In the embedded default the PEM and Kelvin share this process, so there is one data-collecting
agent; its state and kernel-header source come from the PEM's own status.
"""

from __future__ import annotations

import socket
import time
import uuid
from collections.abc import Mapping

import pyarrow as pa

from cluster.pem.agent import Pem
from cluster.pxl.sources import AgentStatus


def _local_ip() -> str:
    try:
        return socket.gethostbyname(socket.gethostname())
    except OSError:
        return ""


class EmbeddedVizierInfo:
    """A cluster.pxl.sources.VizierInfo over the in-process PEM."""

    def __init__(self, pem: Pem):
        self.pem = pem
        self.ip = _local_ip()

    def agents(self) -> list[AgentStatus]:
        st = self.pem.status()
        return [AgentStatus(
            agent_id=uuid.UUID(st.agent_id).bytes,
            asid=st.asid,
            hostname=st.hostname,
            ip_address=self.ip,
            agent_state=st.state,
            create_time=self.pem.started_ns,
            last_heartbeat_ns=0,  # in-process: the broker sees the PEM directly, never late
            kernel_headers_installed=not st.kernel_headers.startswith("missing"),
            collects_data=True,
        )]

    def schemas(self) -> Mapping[str, pa.Schema]:
        return self.pem.store.schemas()

    def now_ns(self) -> int:
        return time.time_ns()
