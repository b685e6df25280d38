"""The broker's view of its agents: who registered, where they listen, and whether they are alive.

Agents register once, then heartbeat. The state follows Pixie's: HEALTHY while heartbeats arrive,
UNRESPONSIVE after a few missed ones (still listed, no longer asked to run queries), DISCONNECTED
after longer, and forgotten after longer still. A restarted agent registers anew (a new agent id) and
takes over its predecessor's place (the same address, or the same host name once the old one has
stopped heartbeating), so the old entry goes at once instead of lingering as UNRESPONSIVE, and it
keeps the ASID, so its upids stay comparable with what the broker saw before.
"""

from __future__ import annotations

import logging
import socket
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field

import grpc
import pyarrow as pa

from cluster.api import agent_pb2 as apb
from cluster.api import agent_pb2_grpc as apb_grpc
from cluster.api import vizier_pb2 as pb
from cluster.api.serving import GRPC_OPTIONS
from cluster.pem.agent_server import schemas_from_pb
from cluster.pxl.sources import AgentStatus

log = logging.getLogger(__name__)

HEALTHY = "AGENT_STATE_HEALTHY"
UNRESPONSIVE = "AGENT_STATE_UNRESPONSIVE"
DISCONNECTED = "AGENT_STATE_DISCONNECTED"



@dataclass
class Agent:
    agent_id: str
    address: str
    hostname: str
    asid: int
    create_time_ns: int
    last_heartbeat: float  # time.monotonic()
    status: pb.AgentStatus
    schemas: dict[str, pa.Schema]
    channel: grpc.Channel
    stub: apb_grpc.AgentServiceStub
    seq: int = 0
    ip: str = field(default="")
    kelvin: bool = False  # a `pxtui kelvin`: merges, collects no data

    @property
    def kelvin_stub(self) -> apb_grpc.KelvinServiceStub:
        return apb_grpc.KelvinServiceStub(self.channel)

    def close(self) -> None:
        self.channel.close()


class AgentRegistry(apb_grpc.AgentRegistryServicer):
    def __init__(self, heartbeat_interval_s: float = 1.0, unresponsive_after_s: float | None = None,
                 disconnected_after_s: float = 60.0, forget_after_s: float = 600.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.heartbeat_interval_s = heartbeat_interval_s
        self.unresponsive_after_s = unresponsive_after_s or max(3 * heartbeat_interval_s, 2.0)
        self.disconnected_after_s = disconnected_after_s
        self.forget_after_s = forget_after_s
        self.clock = clock
        self._agents: dict[str, Agent] = {}
        self._lock = threading.Lock()
        self._next_asid = 1
        self.started_ns = time.time_ns()
        self.kelvin_id = uuid.uuid4()
        self._changed = threading.Condition(self._lock)

    # ---- the RPCs agents call ------------------------------------------------------------------
    def Register(self, request: apb.RegisterRequest, context: grpc.ServicerContext) -> apb.RegisterResponse:
        if not request.agent_id or not request.address:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, "register: agent_id and address are required")
        with self._lock:
            self._forget_old()
            # Its predecessor: the same address, or the same host name with heartbeats that stopped
            # (a restarted agent that listens on a new port).
            silent = [a for a in self._agents.values() if self.clock() - a.last_heartbeat > self.unresponsive_after_s]
            replaced = [a for a in self._agents.values()
                        if a.agent_id != request.agent_id and a.kelvin == request.kelvin
                        and (a.address == request.address or (a.hostname == request.hostname and a in silent))]
            asid = request.asid
            if asid == 0 and replaced:
                asid = replaced[0].asid
            holder = next((a for a in self._agents.values() if a.asid == asid and a not in replaced
                           and a.agent_id != request.agent_id), None) if asid else None
            if holder is not None:
                context.abort(grpc.StatusCode.ALREADY_EXISTS,
                              f"asid {asid} is held by agent {holder.agent_id} ({holder.hostname} at "
                              f"{holder.address}); give this agent another --asid")
            for old in replaced:
                log.info("agent %s at %s replaces %s (restarted)", request.agent_id, request.address, old.agent_id)
                self._agents.pop(old.agent_id).close()
            if asid == 0:
                asid = self._fresh_asid()
            self._next_asid = max(self._next_asid, asid + 1)
            existing = self._agents.pop(request.agent_id, None)
            if existing is not None:
                existing.close()
            channel = grpc.insecure_channel(request.address, options=GRPC_OPTIONS)
            self._agents[request.agent_id] = Agent(
                agent_id=request.agent_id, address=request.address, hostname=request.hostname, asid=asid,
                create_time_ns=request.create_time_ns or time.time_ns(), last_heartbeat=self.clock(),
                status=request.status, schemas=schemas_from_pb(request.schemas), channel=channel,
                stub=apb_grpc.AgentServiceStub(channel), ip=request.address.rsplit(":", 1)[0],
                kelvin=request.kelvin,
            )
            self._changed.notify_all()
        log.info("agent %s (%s) registered from %s with asid %d", request.agent_id, request.hostname,
                 request.address, asid)
        return apb.RegisterResponse(asid=asid, heartbeat_interval_s=self.heartbeat_interval_s)

    def Heartbeat(self, request: apb.HeartbeatRequest, context: grpc.ServicerContext) -> apb.HeartbeatResponse:
        with self._lock:
            agent = self._agents.get(request.agent_id)
            if agent is None:
                return apb.HeartbeatResponse(known=False)
            agent.last_heartbeat = self.clock()
            agent.seq = request.seq
            agent.status = request.status
            if request.schemas:
                agent.schemas = schemas_from_pb(request.schemas)
            self._changed.notify_all()
        return apb.HeartbeatResponse(known=True)

    # ---- what the broker asks ------------------------------------------------------------------
    def _fresh_asid(self) -> int:
        used = {a.asid for a in self._agents.values()}
        asid = self._next_asid
        while asid in used:
            asid += 1
        return asid

    def _forget_old(self) -> None:
        now = self.clock()
        for aid in [aid for aid, a in self._agents.items() if now - a.last_heartbeat > self.forget_after_s]:
            log.info("forgetting agent %s: no heartbeat for %.0f s", aid, now - self._agents[aid].last_heartbeat)
            self._agents.pop(aid).close()

    def state(self, agent: Agent) -> str:
        """From the heartbeats' timing; while they arrive, what the agent says of itself (an agent
        still loading its probes, or one whose probes failed, is not asked to run queries)."""
        silent = self.clock() - agent.last_heartbeat
        if silent <= self.unresponsive_after_s:
            return agent.status.state or HEALTHY
        if silent <= self.disconnected_after_s:
            return UNRESPONSIVE
        return DISCONNECTED

    def snapshot(self) -> list[tuple[Agent, str]]:
        """Every agent the broker knows with its state now, oldest first."""
        with self._lock:
            self._forget_old()
            agents = sorted(self._agents.values(), key=lambda a: (a.create_time_ns, a.agent_id))
        return [(a, self.state(a)) for a in agents]

    def healthy(self) -> list[Agent]:
        return [a for a, st in self.snapshot() if st == HEALTHY]

    def wait_for(self, pred: Callable[[list[tuple[Agent, str]]], bool], timeout: float) -> bool:
        """Block until pred(snapshot) holds (for start-up and tests), or the timeout passes."""
        deadline = time.monotonic() + timeout
        while not pred(self.snapshot()):
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            with self._lock:
                self._changed.wait(min(left, 0.2))
        return True

    def schemas(self) -> dict[str, pa.Schema]:
        """The union of every live agent's tables (the first agent's schema of a name wins)."""
        out: dict[str, pa.Schema] = {}
        for agent, st in self.snapshot():
            if st != DISCONNECTED and not agent.kelvin:
                for name, schema in agent.schemas.items():
                    out.setdefault(name, schema)
        return out

    def agent_statuses(self) -> list[AgentStatus]:
        """px.GetAgentStatus: every PEM and Kelvin that registered, then this broker's own Kelvin."""
        now = self.clock()
        rows: list[AgentStatus] = []
        for agent, st in self.snapshot():
            rows.append(AgentStatus(
                agent_id=_uuid_bytes(agent.agent_id), asid=agent.asid, hostname=agent.hostname,
                ip_address=agent.ip, agent_state=st, create_time=agent.create_time_ns,
                last_heartbeat_ns=int((now - agent.last_heartbeat) * 1e9),
                kernel_headers_installed=not agent.status.kernel_headers.startswith("missing"),
                collects_data=not agent.kelvin,
            ))
        rows.append(AgentStatus(
            agent_id=self.kelvin_id.bytes, asid=0, hostname=socket.gethostname(), ip_address="", agent_state=HEALTHY,
            create_time=self.started_ns, last_heartbeat_ns=0, kernel_headers_installed=False,
            collects_data=False,
        ))
        return rows

    def close(self) -> None:
        with self._lock:
            for a in self._agents.values():
                a.close()
            self._agents.clear()


def _uuid_bytes(agent_id: str) -> bytes:
    try:
        return uuid.UUID(agent_id).bytes
    except ValueError:
        return uuid.uuid5(uuid.NAMESPACE_OID, agent_id).bytes
