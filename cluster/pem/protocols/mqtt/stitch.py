"""MQTT request/ack pairing: a connection's two streams -> mqtt_events records.

Pixie pairs MQTT packets by packet identifier and control type; this does the same, in both
directions, since a broker also publishes to its subscribers and waits for their acks:

* CONNECT -> CONNACK and PINGREQ -> PINGRESP (no identifier: in order);
* PUBLISH QoS 1 -> PUBACK, PUBLISH QoS 2 -> PUBREC, then PUBREL -> PUBCOMP (two records, as in
  Pixie), SUBSCRIBE -> SUBACK, UNSUBSCRIBE -> UNSUBACK, all by packet identifier. Identifiers are
  per sender, so a client's PUBLISH 7 and the broker's PUBLISH 7 never meet.
* PUBLISH QoS 0, DISCONNECT and AUTH expect nothing: one record each, response columns empty.

``req_*`` is the packet that opened the exchange and ``resp_*`` its ack, whichever side sent it;
trace_role stays the connection's role, so a broker's PUBLISH traced at a subscribing client is a
record whose request arrived (rather than left) on a client connection. An ack that answers
nothing waiting is counted in ``unmatched_responses``.
"""

from __future__ import annotations

import heapq
from collections import deque
from typing import Any

from cluster.pem.data_stream import DataStream
from cluster.pem.protocols.mqtt.frames import (
    CONNACK,
    CONNECT,
    PINGREQ,
    PINGRESP,
    PUBACK,
    PUBCOMP,
    PUBLISH,
    PUBREC,
    PUBREL,
    SUBACK,
    SUBSCRIBE,
    UNSUBACK,
    UNSUBSCRIBE,
    MqttPacket,
    MqttParser,
)
from cluster.pem.protocols.stitching import GuardedStitcher

DEFAULT_MAX_PENDING = 1024
DEFAULT_BODY_CAP = 512
CLIENT_SIDE, SERVER_SIDE = 0, 1
_ACK_OF = {CONNECT: CONNACK, PUBREL: PUBCOMP, SUBSCRIBE: SUBACK, UNSUBSCRIBE: UNSUBACK, PINGREQ: PINGRESP}
_PUBLISH_ACK = {1: PUBACK, 2: PUBREC}
ACKS = frozenset((CONNACK, PUBACK, PUBREC, PUBCOMP, SUBACK, UNSUBACK, PINGRESP))
_EMPTY = ("", "", "", "")

Record = dict[str, Any]
_Key = tuple[int, int, int]  # (side that sent the request, ack type awaited, packet identifier)


class MqttStitcher(GuardedStitcher):
    """One connection's stitcher; requests waiting for their ack live in ``_waiting``."""

    __slots__ = ("_waiting", "_waiting_count", "body_cap")

    def __init__(self, body_cap: int = DEFAULT_BODY_CAP, max_pending: int = DEFAULT_MAX_PENDING) -> None:
        super().__init__(max_pending)
        self.body_cap = body_cap
        self._waiting: dict[_Key, deque[MqttPacket]] = {}
        self._waiting_count = 0

    def _process(self, client: DataStream, server: DataStream) -> list[Record]:
        cparser = MqttParser.for_stream(client, self.body_cap)
        sparser = MqttParser.for_stream(server, self.body_cap)
        cpackets = [(p.ts_ns, CLIENT_SIDE, p) for p in _drain(cparser, client)]
        sparser.version = cparser.version  # only CONNECT announces the level
        spackets = [(p.ts_ns, SERVER_SIDE, p) for p in _drain(sparser, server)]
        out: list[Record] = []
        for _, side, packet in heapq.merge(cpackets, spackets, key=lambda e: (e[0], e[1])):
            self._handle(side, packet, out)
        self.parse_errors += cparser.take_errors() + sparser.take_errors()
        self.records += len(out)
        return out

    def _close(self, client: DataStream, server: DataStream, out: list[Record]) -> None:
        self.dropped_requests += self._waiting_count
        self._waiting.clear()
        self._waiting_count = 0
        if len(client) or len(server):
            self.parse_errors += 1  # a truncated packet

    def _handle(self, side: int, p: MqttPacket, out: list[Record]) -> None:
        if p.type in ACKS:
            waiting = self._waiting.get((1 - side, p.type, p.packet_id))
            if not waiting:
                self.unmatched_responses += 1
                return
            req = waiting.popleft()
            self._waiting_count -= 1
            out.append(_record(req, p))
            return
        ack = _PUBLISH_ACK.get(p.qos) if p.type == PUBLISH else _ACK_OF.get(p.type)
        if ack is None:  # QoS 0 PUBLISH, DISCONNECT, AUTH
            out.append(_record(p, None))
            return
        self._waiting.setdefault((side, ack, p.packet_id), deque()).append(p)
        self._waiting_count += 1
        while self._waiting_count > self.max_pending:
            oldest = min((q for q in self._waiting.values() if q), key=lambda q: q[0].ts_ns)
            oldest.popleft()
            self._waiting_count -= 1
            self.dropped_requests += 1


def _drain(parser: MqttParser, stream: DataStream) -> list[MqttPacket]:
    packets = []
    while (packet := parser.next_packet(stream)) is not None:
        packets.append(packet)
    return packets


def _record(req: MqttPacket, resp: MqttPacket | None) -> Record:
    rtype, rheader, rprops, rpayload = req.render()
    stype, sheader, sprops, spayload = resp.render() if resp is not None else _EMPTY
    return {
        "time_": req.ts_ns if resp is None else resp.ts_ns,
        "req_control_packet_type": rtype,
        "req_header_fields": rheader,
        "req_properties": rprops,
        "req_payload": rpayload,
        "resp_control_packet_type": stype,
        "resp_header_fields": sheader,
        "resp_properties": sprops,
        "resp_payload": spayload,
        "latency": 0 if resp is None else max(0, resp.ts_ns - req.ts_ns),
    }
