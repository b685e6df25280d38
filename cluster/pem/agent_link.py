"""An agent's side of membership: register with the broker, heartbeat, register again when needed.

Why a loop that never gives up: the broker may start after the agent, restart under it, or be
unreachable for a while; an agent keeps collecting throughout and rejoins as soon as the broker
answers (a heartbeat answered with known=false means the broker forgot us, so we register again).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

import grpc

from cluster.api import agent_pb2 as apb
from cluster.api import agent_pb2_grpc as apb_grpc
from cluster.api import vizier_pb2 as pb
from cluster.auth.service_auth import TokenSource

log = logging.getLogger(__name__)


class RegistrationRefused(RuntimeError):
    """The broker refused this agent for a reason retrying cannot fix (a taken ASID, a bad token)."""


class AgentLink:
    def __init__(
        self,
        broker: str,
        agent_id: str,
        address: str,
        hostname: str,
        create_time_ns: int,
        tokens: TokenSource,
        status: Callable[[], pb.AgentStatus],
        schemas: Callable[[], list[apb.TableSchema]],
        asid: int = 0,
        kelvin: bool = False,
    ) -> None:
        self.broker = broker
        self.agent_id = agent_id
        self.address = address
        self.hostname = hostname
        self.create_time_ns = create_time_ns
        self.tokens = tokens
        self.status = status
        self.schemas = schemas
        self.asid = asid
        self.kelvin = kelvin
        self.interval_s = 1.0
        self.registered = threading.Event()
        self._stop = threading.Event()
        self._channel = grpc.insecure_channel(broker)
        self._stub = apb_grpc.AgentRegistryStub(self._channel)
        self._thread: threading.Thread | None = None
        self._sent_tables: frozenset[str] = frozenset()

    def register(self, timeout: float | None = None) -> int:
        """Register, retrying while the broker is unreachable; the ASID it gave (or confirmed)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        warned = False
        while not self._stop.is_set():
            try:
                schemas = self.schemas()
                resp = self._stub.Register(
                    apb.RegisterRequest(
                        agent_id=self.agent_id,
                        address=self.address,
                        hostname=self.hostname,
                        asid=self.asid,
                        status=self.status(),
                        create_time_ns=self.create_time_ns,
                        schemas=schemas,
                        kelvin=self.kelvin,
                    ),
                    timeout=5,
                    metadata=self.tokens.metadata(),
                )
            except grpc.RpcError as e:
                if e.code() in (
                    grpc.StatusCode.ALREADY_EXISTS,
                    grpc.StatusCode.UNAUTHENTICATED,
                    grpc.StatusCode.INVALID_ARGUMENT,
                ):
                    raise RegistrationRefused(
                        f"the broker at {self.broker} refused this agent: {e.details()}"
                    ) from None
                if not warned:
                    log.warning("broker at %s not reachable (%s); retrying", self.broker, e.code().name)
                    warned = True
                if deadline is not None and time.monotonic() > deadline:
                    raise TimeoutError(f"the broker at {self.broker} did not answer: {e.details()}") from None
                self._stop.wait(0.5)
                continue
            self.asid = resp.asid
            self.interval_s = resp.heartbeat_interval_s or 1.0
            self._sent_tables = frozenset(s.name for s in schemas)
            self.registered.set()
            log.info("registered with the broker at %s as asid %d", self.broker, self.asid)
            return self.asid
        raise RuntimeError("stopped before registering")

    def start_heartbeats(self) -> None:
        self._thread = threading.Thread(target=self._beat, name="agent-heartbeat", daemon=True)
        self._thread.start()

    def _beat(self) -> None:
        seq = 0
        failing = False
        while not self._stop.wait(self.interval_s):
            seq += 1
            try:
                schemas = self.schemas()
                names = frozenset(s.name for s in schemas)
                resp = self._stub.Heartbeat(
                    apb.HeartbeatRequest(
                        agent_id=self.agent_id,
                        seq=seq,
                        status=self.status(),
                        schemas=schemas if names != self._sent_tables else [],
                    ),
                    timeout=max(self.interval_s * 2, 2.0),
                    metadata=self.tokens.metadata(),
                )
                self._sent_tables = names
                if failing:
                    log.info("broker at %s answers again", self.broker)
                    failing = False
                if not resp.known:
                    log.info("the broker does not know this agent (it restarted); registering again")
                    self.register()
            except grpc.RpcError as e:
                if not failing:
                    log.warning("heartbeat to %s failed: %s %s", self.broker, e.code().name, e.details())
                    failing = True
            except RegistrationRefused as e:
                log.error("%s", e)
            except Exception:
                log.exception("heartbeat failed")

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._channel.close()
