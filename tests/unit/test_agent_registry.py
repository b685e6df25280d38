"""The broker's agent registry: states from heartbeats, ASIDs, and restarted agents taking over."""

from __future__ import annotations

import grpc
import pytest

from cluster.api import agent_pb2 as apb
from cluster.api import vizier_pb2 as pb
from cluster.vizier.agents import DISCONNECTED, HEALTHY, UNRESPONSIVE, AgentRegistry


class Aborted(Exception):
    pass


class Context:
    def abort(self, code: grpc.StatusCode, details: str) -> None:
        raise Aborted(code, details)


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def register(reg: AgentRegistry, agent_id: str, address: str, hostname: str, asid: int = 0,
             kelvin: bool = False) -> int:
    req = apb.RegisterRequest(agent_id=agent_id, address=address, hostname=hostname, asid=asid, kelvin=kelvin,
                              status=pb.AgentStatus(state=HEALTHY))
    return reg.Register(req, Context()).asid  # type: ignore[arg-type]


def beat(reg: AgentRegistry, agent_id: str) -> bool:
    return reg.Heartbeat(apb.HeartbeatRequest(agent_id=agent_id, status=pb.AgentStatus(state=HEALTHY)),
                         Context()).known  # type: ignore[arg-type]


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def reg(clock: Clock):  # type: ignore[no-untyped-def]
    r = AgentRegistry(heartbeat_interval_s=1.0, disconnected_after_s=60, forget_after_s=600, clock=clock)
    yield r
    r.close()


def states(reg: AgentRegistry) -> dict[str, str]:
    return {a.agent_id: st for a, st in reg.snapshot()}


def test_states_follow_the_heartbeats(reg: AgentRegistry, clock: Clock) -> None:
    assert register(reg, "a", "10.0.0.1:1", "n1") == 1
    assert register(reg, "b", "10.0.0.2:1", "n2") == 2
    clock.t += 2.5
    assert beat(reg, "a")
    clock.t += 1.0  # b silent for 3.5 s: past three missed heartbeats
    assert states(reg) == {"a": HEALTHY, "b": UNRESPONSIVE}
    clock.t += 60
    assert states(reg) == {"a": DISCONNECTED, "b": DISCONNECTED}
    clock.t += 600
    assert states(reg) == {}  # forgotten
    assert not beat(reg, "a")  # the agent is told to register again


def test_a_restarted_agent_takes_its_predecessors_place_and_asid(reg: AgentRegistry, clock: Clock) -> None:
    register(reg, "old-1", "10.0.0.1:5000", "n1")
    register(reg, "old-2", "10.0.0.2:5000", "n2")
    # same address: replaced at once, even while the old one still looks healthy
    assert register(reg, "new-1", "10.0.0.1:5000", "n1") == 1
    assert set(states(reg)) == {"new-1", "old-2"}
    # same host name on a new port: replaced only once the old one has stopped heartbeating
    assert register(reg, "twin", "10.0.0.2:6000", "n2") == 3
    assert set(states(reg)) == {"new-1", "old-2", "twin"}
    clock.t += 5
    beat(reg, "new-1")
    beat(reg, "twin")
    assert register(reg, "new-2", "10.0.0.2:7000", "n2") == 2  # old-2 was silent: its asid goes on
    assert set(states(reg)) == {"new-1", "twin", "new-2"}


def test_an_asid_held_by_another_agent_is_refused(reg: AgentRegistry) -> None:
    register(reg, "a", "10.0.0.1:1", "n1", asid=7)
    with pytest.raises(Aborted) as err:
        register(reg, "b", "10.0.0.2:1", "n2", asid=7)
    assert err.value.args[0] == grpc.StatusCode.ALREADY_EXISTS and "asid 7 is held by agent a" in err.value.args[1]


def test_kelvins_are_listed_but_hold_no_tables(reg: AgentRegistry) -> None:
    register(reg, "pem", "10.0.0.1:1", "n1")
    register(reg, "kelvin", "10.0.0.9:1", "k1", kelvin=True)
    rows = reg.agent_statuses()
    assert [(r["hostname"], r["collects_data"]) for r in rows][:2] == [("n1", True), ("k1", False)]
    assert rows[-1]["collects_data"] is False  # the broker's own Kelvin, last
