"""MQTT 3.1, 3.1.1 and 5.0 framing: bytes of one direction -> :class:`MqttPacket` objects.

A packet is a fixed header (type in the high nibble, flags in the low one, then the remaining
length as a 1-4 byte variable integer), a variable header and a payload. The protocol level comes
from CONNECT (3 = MQIsdp 3.1, 4 = 3.1.1, 5 = 5.0) and decides whether properties follow the
variable header; the stitcher shares it with the other direction's parser.

Renderings follow Pixie's MQTT parser: ``header_fields`` is a JSON object of integers (qos,
packet_identifier, keep_alive, connect flags, reason_code, remaining_length, ...), ``properties``
a JSON object of strings named as Pixie names MQTT 5 properties, and ``payload`` a JSON object of
strings (client_id, topic_name, publish_message, topic_filter, reason_code, ...). Keys are sorted
as Pixie's std::map prints them. The CONNECT password is never decoded, only skipped.

The parser waits (consuming nothing) while a packet is incomplete and never raises. A packet whose
fixed header is invalid means the stream is out of step; MQTT has no marker to resynchronise on,
so the buffered bytes are dropped and counted as one error, and parsing resumes with the next
write (clients write whole packets). A packet with a valid fixed header whose body does not decode
is skipped and counted: its length was known, so the stream stays in step.
"""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass, field

from cluster.pem.data_stream import DataStream
from cluster.pem.protocols.stream_parser import StreamParser

CONNECT, CONNACK, PUBLISH, PUBACK, PUBREC, PUBREL, PUBCOMP = 1, 2, 3, 4, 5, 6, 7
SUBSCRIBE, SUBACK, UNSUBSCRIBE, UNSUBACK, PINGREQ, PINGRESP, DISCONNECT, AUTH = 8, 9, 10, 11, 12, 13, 14, 15
NAMES = {
    CONNECT: "CONNECT", CONNACK: "CONNACK", PUBLISH: "PUBLISH", PUBACK: "PUBACK", PUBREC: "PUBREC",
    PUBREL: "PUBREL", PUBCOMP: "PUBCOMP", SUBSCRIBE: "SUBSCRIBE", SUBACK: "SUBACK", UNSUBSCRIBE: "UNSUBSCRIBE",
    UNSUBACK: "UNSUBACK", PINGREQ: "PINGREQ", PINGRESP: "PINGRESP", DISCONNECT: "DISCONNECT", AUTH: "AUTH",
}  # fmt: skip
# Fixed-header flags each type must carry (MQTT 3.1.1 §2.2.2, 5.0 §2.1.3); PUBLISH's are its own.
_REQUIRED_FLAGS = {PUBREL: 2, SUBSCRIBE: 2, UNSUBSCRIBE: 2}
PROTOCOL_NAMES = {b"MQTT": (4, 5), b"MQIsdp": (3,)}
MAX_REMAINING = 268_435_455  # the largest 4-byte variable integer
DEFAULT_VERSION = 4

_dumps = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), sort_keys=True).encode

# MQTT 5 properties: code -> (Pixie's name, type). Types: B byte, H u16, I u32, V varint, S utf-8
# string, D binary data (rendered as text with escapes, as Pixie's HexAsciiMix), P string pair, b bool.
PROPERTIES: dict[int, tuple[str, str]] = {
    0x01: ("payload_format", "B"), 0x02: ("message_expiry_interval", "I"), 0x03: ("content_type", "S"),
    0x08: ("response_topic", "S"), 0x09: ("correlation_data", "D"), 0x0B: ("subscription_id", "V"),
    0x11: ("session_expiry_interval", "I"), 0x12: ("assigned_client_identifier", "S"),
    0x13: ("server_keep_alive", "H"), 0x15: ("auth_method", "S"), 0x16: ("auth_data", "D"),
    0x17: ("request_problem_information", "B"), 0x18: ("will_delay_interval", "I"),
    0x19: ("request_response_information", "B"), 0x1A: ("response_information", "S"),
    0x1C: ("server_reference", "S"), 0x1F: ("reason_string", "S"), 0x21: ("receive_maximum", "H"),
    0x22: ("topic_alias_maximum", "H"), 0x23: ("topic_alias", "H"), 0x24: ("maximum_qos", "B"),
    0x25: ("retain_available", "b"), 0x26: ("user-properties", "P"), 0x27: ("maximum_packet_size", "I"),
    0x28: ("wildcard_subscription_available", "b"), 0x29: ("subscription_id_available", "b"),
    0x2A: ("shared_subscription_available", "b"),
}  # fmt: skip


class _Bad(Exception):
    """The packet body does not decode."""


@dataclass(slots=True)
class MqttPacket:
    ts_ns: int
    type: int
    flags: int
    header: dict[str, int] = field(default_factory=dict)
    properties: dict[str, str] = field(default_factory=dict)
    payload: dict[str, str] = field(default_factory=dict)
    level: int = 0  # CONNECT only: the protocol level it announced

    @property
    def name(self) -> str:
        return NAMES[self.type]

    @property
    def packet_id(self) -> int:
        return self.header.get("packet_identifier", 0)

    @property
    def qos(self) -> int:
        return self.header.get("qos", 0)

    def render(self) -> tuple[str, str, str, str]:
        """(control packet type, header fields, properties, payload) as the table stores them."""
        return self.name, _dumps(self.header), _dumps(self.properties), _dumps(self.payload)


class _Reader:
    __slots__ = ("buf", "end", "pos")

    def __init__(self, buf: bytes, pos: int, end: int) -> None:
        self.buf, self.pos, self.end = buf, pos, end

    def left(self) -> int:
        return self.end - self.pos

    def take(self, n: int) -> bytes:
        if self.pos + n > self.end:
            raise _Bad
        out = self.buf[self.pos : self.pos + n]
        self.pos += n
        return out

    def u8(self) -> int:
        return self.take(1)[0]

    def u16(self) -> int:
        return struct.unpack(">H", self.take(2))[0]

    def u32(self) -> int:
        return struct.unpack(">I", self.take(4))[0]

    def varint(self) -> int:
        value, shift = 0, 0
        for _ in range(4):
            byte = self.u8()
            value |= (byte & 0x7F) << shift
            if not byte & 0x80:
                return value
            shift += 7
        raise _Bad

    def blob(self) -> bytes:
        return self.take(self.u16())

    def text(self) -> str:
        return self.blob().decode("utf-8", "replace")


def _escape(b: bytes) -> str:
    """Binary data as printable text: ASCII kept, other bytes as \\xNN (Pixie's HexAsciiMix)."""
    return "".join(chr(c) if 0x20 <= c < 0x7F else f"\\x{c:02X}" for c in b)


def read_properties(r: _Reader) -> dict[str, str]:
    """An MQTT 5 property list (its varint length first)."""
    size = r.varint()
    stop = r.pos + size
    if stop > r.end:
        raise _Bad
    out: dict[str, str] = {}
    sub = _Reader(r.buf, r.pos, stop)
    while sub.pos < stop:
        spec = PROPERTIES.get(sub.varint())
        if spec is None:
            raise _Bad
        name, kind = spec
        if kind == "B":
            value = str(sub.u8())
            if name == "payload_format":
                value = {"0": "unspecified", "1": "utf-8"}.get(value, value)
        elif kind == "b":
            value = "true" if sub.u8() == 1 else "false"
        elif kind == "H":
            value = str(sub.u16())
        elif kind == "I":
            value = str(sub.u32())
        elif kind == "V":
            value = str(sub.varint())
        elif kind == "S":
            value = sub.text()
        elif kind == "D":
            value = _escape(sub.blob())
        else:  # P: a user property; several are joined as Pixie joins them
            pair = "{" + sub.text() + ":" + sub.text() + "}"
            out[name] = f"{out[name]}, {pair}" if name in out else pair
            continue
        out[name] = value
    r.pos = stop
    return out


def decode_body(p: MqttPacket, r: _Reader, version: int, body_cap: int) -> None:
    """Fill ``p`` from its variable header and payload (``r`` spans exactly the remaining length)."""
    v5 = version >= 5
    t = p.type
    if t == CONNECT:
        proto = r.blob()
        levels = PROTOCOL_NAMES.get(proto)
        level = r.u8()
        if levels is None or level not in levels:
            raise _Bad
        p.level = level
        v5 = level >= 5
        flags = r.u8()
        if flags & 1:
            raise _Bad  # reserved bit
        p.header.update(
            protocol_level=level, username_flag=flags >> 7, password_flag=flags >> 6 & 1,
            will_retain=flags >> 5 & 1, will_qos=flags >> 3 & 3, will_flag=flags >> 2 & 1,
            clean_start=flags >> 1 & 1, keep_alive=r.u16(),
        )  # fmt: skip
        if v5:
            p.properties = read_properties(r)
        p.payload["client_id"] = r.text()
        if flags & 0x04:
            if v5:
                will = read_properties(r)
                if will:
                    p.properties["will_properties"] = _dumps(will)
            p.payload["will_topic"] = r.text()
            p.payload["will_payload"] = _escape(r.blob()[:body_cap])
        if flags & 0x80:
            p.payload["username"] = r.text()
        if flags & 0x40:
            r.blob()  # the password: skipped, never rendered
    elif t == CONNACK:
        p.header["session_present"] = r.u8() & 1
        p.header["reason_code"] = r.u8()
        if v5 and r.left():
            p.properties = read_properties(r)
    elif t == PUBLISH:
        p.payload["topic_name"] = r.text()
        if p.qos:
            p.header["packet_identifier"] = r.u16()
        if v5:
            p.properties = read_properties(r)
        message = r.take(r.left())
        p.payload["publish_message"] = message[:body_cap].decode("utf-8", "replace")
        if len(message) > body_cap:
            p.header["publish_message_size"] = len(message)
    elif t in (PUBACK, PUBREC, PUBREL, PUBCOMP, SUBACK, UNSUBACK):
        p.header["packet_identifier"] = r.u16()
        if t in (SUBACK, UNSUBACK):
            if v5:
                p.properties = read_properties(r)
            codes = r.take(r.left())
            if codes or t == SUBACK:
                p.payload["reason_code"] = ", ".join(str(c) for c in codes)
        elif r.left():
            p.header["reason_code"] = r.u8()
            if r.left():
                p.properties = read_properties(r)
    elif t in (SUBSCRIBE, UNSUBSCRIBE):
        p.header["packet_identifier"] = r.u16()
        if v5:
            p.properties = read_properties(r)
        topics, options = [], []
        while r.left():
            topics.append(r.text())
            if t == SUBSCRIBE:
                o = r.u8()
                options.append(
                    _dumps(
                        {
                            "maximum_qos": o & 3,
                            "no_local": o >> 2 & 1,
                            "retain_as_published": o >> 3 & 1,
                            "retain_handling": o >> 4 & 3,
                        }
                    )
                )
        if not topics:
            raise _Bad  # a (UN)SUBSCRIBE must name at least one topic filter
        p.payload["topic_filter"] = ", ".join(topics)
        if t == SUBSCRIBE:
            p.payload["subscription_options"] = ", ".join(options)
    elif t in (DISCONNECT, AUTH) and r.left():
        p.header["reason_code"] = r.u8()
        if r.left():
            p.properties = read_properties(r)
    if r.left():
        raise _Bad  # bytes the packet type does not account for


class MqttParser(StreamParser):
    """Incremental packet parser for one direction; kept in ``DataStream.state``."""

    __slots__ = ("body_cap", "version")

    def __init__(self, body_cap: int) -> None:
        self.body_cap = body_cap
        self.errors = 0
        self.version = DEFAULT_VERSION

    def next_packet(self, stream: DataStream) -> MqttPacket | None:
        """Parse and consume the next complete packet, or None if there is none yet."""
        if stream.needs_resync:  # bytes were lost mid-packet: what is buffered cannot be framed
            stream.needs_resync = False
            self._drop(stream)
            return None
        buf, start = stream.view()
        end = len(buf)
        pos = start
        while pos < end:
            head = _fixed_header(buf, pos, end, stream.max_bytes)
            if head is None:
                break  # incomplete
            if head[0] < 0:
                self._drop(stream)
                return None
            ptype, flags, body, total = head
            ts = stream.ts_at(pos - start)
            packet = MqttPacket(ts, ptype, flags)
            if ptype == PUBLISH:
                packet.header.update(qos=flags >> 1 & 3, dup=flags >> 3, retain=flags & 1)
            packet.header["remaining_length"] = total - (body - pos)
            try:
                decode_body(packet, _Reader(buf, body, pos + total), self.version, self.body_cap)
            except (_Bad, struct.error):
                self.errors += 1
                pos += total
                continue
            if ptype == CONNECT:
                self.version = packet.level
            stream.consume(pos + total - start)
            return packet
        stream.consume(pos - start)
        return None

    def _drop(self, stream: DataStream) -> None:
        if len(stream):
            self.errors += 1
        stream.consume(len(stream))


def _fixed_header(buf: bytes, pos: int, end: int, max_bytes: int) -> tuple[int, int, int, int] | None:
    """(type, flags, body offset, total size); None while incomplete; type -1 when invalid."""
    first = buf[pos]
    ptype, flags = first >> 4, first & 0x0F
    bad = (-1, 0, 0, 0)
    if ptype == 0:
        return bad
    if ptype == PUBLISH:
        if flags >> 1 & 3 == 3:
            return bad
    elif flags != _REQUIRED_FLAGS.get(ptype, 0):
        return bad
    value, shift, i = 0, 0, pos + 1
    while True:
        if i >= end:
            return None
        byte = buf[i]
        value |= (byte & 0x7F) << shift
        i += 1
        if not byte & 0x80:
            break
        shift += 7
        if shift > 21:
            return bad
    if ptype in (PINGREQ, PINGRESP) and value:
        return bad
    total = i - pos + value
    if total > max_bytes:
        return bad  # could never be buffered whole
    if end - pos < total:
        return None
    return ptype, flags, i, total
