"""AMQP frame pairing: a connection's two streams -> amqp_events records, as Pixie pairs them.

Columns are by side, not by who asked: ``req_*`` always describe a frame the client sent and
``resp_*`` one the server sent, so connection.start (server) / start-ok (client) is one record with
req = start-ok and resp = start, as in Pixie. ``time_`` is the later of the two frames.

* A synchronous method waits, per channel and per side, for a reply from the other side; a reply
  pairs with the oldest waiting method it answers (AMQP is in order within a channel). Unlike
  Pixie's plain FIFO, matching by the spec's reply list keeps a server-initiated close or a
  consumer cancel from throwing later pairs out of step.
* A server channel.close or connection.close while the client waits on that channel is the error
  answer to the oldest waiting method (e.g. a passive queue.declare of a missing queue -> 404);
  the close itself then waits for the client's close-ok like any other method.
* Asynchronous frames (basic.publish and its content header and body, basic.deliver, acks,
  heartbeats, and methods sent with no_wait) are one record each with the other side empty.
"""

from __future__ import annotations

import heapq
from collections import deque
from typing import Any

from cluster.pem.data_stream import DataStream
from cluster.pem.protocols.amqp.frames import FRAME_METHOD, AmqpFrame, AmqpParser
from cluster.pem.protocols.amqp.spec import CLOSE_METHODS, METHODS
from cluster.pem.protocols.stitching import GuardedStitcher

DEFAULT_MAX_PENDING = 1024
DEFAULT_BODY_CAP = 512
CLIENT_SIDE, SERVER_SIDE = 0, 1
REPLY_METHODS = frozenset(r for m in METHODS.values() for r in m.replies)

Record = dict[str, Any]


class AmqpStitcher(GuardedStitcher):
    """One connection's stitcher; methods waiting for a reply live in ``_waiting``."""

    __slots__ = ("_waiting", "_waiting_count", "body_cap")

    def __init__(self, body_cap: int = DEFAULT_BODY_CAP, max_pending: int = DEFAULT_MAX_PENDING) -> None:
        super().__init__(max_pending)
        self.body_cap = body_cap
        self._waiting: dict[tuple[int, int], deque[AmqpFrame]] = {}  # (side, channel) -> asks
        self._waiting_count = 0

    def _process(self, client: DataStream, server: DataStream) -> list[Record]:
        cparser = AmqpParser.for_stream(client, self.body_cap)
        sparser = AmqpParser.for_stream(server, self.body_cap)
        cframes = [(f.ts_ns, CLIENT_SIDE, f) for f in _drain(cparser, client)]
        sframes = [(f.ts_ns, SERVER_SIDE, f) for f in _drain(sparser, server)]
        out: list[Record] = []
        for _, side, frame in heapq.merge(cframes, sframes, key=lambda e: (e[0], e[1])):
            self._handle(side, frame, out)
        self.parse_errors += cparser.take_errors() + sparser.take_errors()
        self.records += len(out)
        return out

    def _close(self, client: DataStream, server: DataStream, out: list[Record]) -> None:
        self.dropped_requests += self._waiting_count
        self._waiting.clear()
        self._waiting_count = 0
        if len(client) or len(server):
            self.parse_errors += 1  # a truncated frame

    def _handle(self, side: int, frame: AmqpFrame, out: list[Record]) -> None:
        if frame.frame_type != FRAME_METHOD:
            out.append(_record(side, frame, None))
            return
        key = frame.key
        if key in REPLY_METHODS:
            ask = self._take_ask(1 - side, frame.channel, key)
            if ask is None:
                self.unmatched_responses += 1
            else:
                out.append(_record(side, frame, ask))
            return
        if not frame.replies:
            out.append(_record(side, frame, None))
            return
        if side == SERVER_SIDE and key in CLOSE_METHODS:
            asks = self._waiting.get((CLIENT_SIDE, frame.channel))
            if asks:
                self._waiting_count -= 1
                out.append(_record(side, frame, asks.popleft()))
        self._wait(side, frame)

    def _take_ask(self, side: int, channel: int, reply: tuple[int, int]) -> AmqpFrame | None:
        asks = self._waiting.get((side, channel))
        if not asks:
            return None
        for i, ask in enumerate(asks):
            if reply in ask.replies:
                del asks[i]
                self._waiting_count -= 1
                return ask
        return None

    def _wait(self, side: int, frame: AmqpFrame) -> None:
        self._waiting.setdefault((side, frame.channel), deque()).append(frame)
        self._waiting_count += 1
        while self._waiting_count > self.max_pending:
            oldest = min((q for q in self._waiting.values() if q), key=lambda q: q[0].ts_ns)
            oldest.popleft()
            self._waiting_count -= 1
            self.dropped_requests += 1


def _drain(parser: AmqpParser, stream: DataStream) -> list[AmqpFrame]:
    frames = []
    while (frame := parser.next_frame(stream)) is not None:
        frames.append(frame)
    return frames


def _record(side: int, frame: AmqpFrame, other: AmqpFrame | None) -> Record:
    """One row: ``frame`` (sent by ``side``) and optionally its counterpart from the other side."""
    req, resp = (frame, other) if side == CLIENT_SIDE else (other, frame)
    ts = frame.ts_ns if other is None else max(frame.ts_ns, other.ts_ns)
    latency = 0 if other is None else abs(frame.ts_ns - other.ts_ns)
    return {
        "time_": ts,
        "frame_type": max(frame.frame_type, other.frame_type if other else 0),
        "channel": frame.channel,
        "req_class_id": req.class_id if req else 0,
        "req_method_id": req.method_id if req else 0,
        "resp_class_id": resp.class_id if resp else 0,
        "resp_method_id": resp.method_id if resp else 0,
        "req_msg": req.msg if req else "",
        "resp_msg": resp.msg if resp else "",
        "latency": latency,
    }
