"""AMQP 0-9-1 framing: bytes of one direction -> :class:`AmqpFrame` objects with their fields as JSON.

A frame is ``type:u8 channel:u16 size:u32 payload[size] 0xCE``; the client opens the connection
with the 8-byte protocol header ``AMQP\\x00\\x00\\x09\\x01``, which is consumed silently. Method
frames decode their arguments by :mod:`.spec` (field tables too, as JSON objects), content headers
their body size and basic properties, content bodies their first ``body_cap`` bytes as text, and
heartbeats nothing. Credentials (connection.start-ok/secure-ok ``response``) are replaced by their
length so they never reach a table.

The parser waits (consuming nothing) while a frame is incomplete and never raises: a frame whose
type, size or end octet is wrong is garbage; the parser counts one error per run of garbage and
resynchronises on the next offset where a whole well-formed frame starts (the end octet at the
announced size is a strong check). A complete frame whose payload does not decode is skipped and
counted, keeping the stream in step since its size was known.
"""

from __future__ import annotations

import json
import math
import re
import struct
from dataclasses import dataclass
from typing import Any

from cluster.pem.data_stream import DataStream
from cluster.pem.protocols.amqp.spec import BASIC_PROPERTIES, METHODS, SECRET_ARGS
from cluster.pem.protocols.stream_parser import StreamParser

PROTOCOL_HEADER = b"AMQP\x00\x00\x09\x01"
FRAME_METHOD, FRAME_HEADER, FRAME_BODY, FRAME_HEARTBEAT = 1, 2, 3, 8
FRAME_TYPES = frozenset((FRAME_METHOD, FRAME_HEADER, FRAME_BODY, FRAME_HEARTBEAT))
FRAME_END = 0xCE
HEADER_SIZE = 7
MAX_TABLE_DEPTH = 8
_FRAME_START = re.compile(rb"[\x01\x02\x03\x08]|AMQP")
_HDR = struct.Struct(">BHI")
_dumps = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), default=str).encode


class _Bad(Exception):
    """The payload does not decode."""


@dataclass(slots=True)
class AmqpFrame:
    ts_ns: int
    frame_type: int
    channel: int
    class_id: int = 0
    method_id: int = 0
    msg: str = ""
    replies: frozenset[tuple[int, int]] = frozenset()  # non-empty: a synchronous method awaiting these
    size: int = 0  # payload bytes

    @property
    def key(self) -> tuple[int, int]:
        return (self.class_id, self.method_id)


class _Decoder:
    """Reads AMQP argument types from ``buf[pos:end]``; raises _Bad when the payload runs out."""

    __slots__ = ("bits", "buf", "end", "pos")

    def __init__(self, buf: bytes, pos: int, end: int) -> None:
        self.buf = buf
        self.pos = pos
        self.end = end
        self.bits: tuple[int, int] | None = None  # (octet, next bit) while reading packed bits

    def take(self, n: int) -> bytes:
        if n < 0 or self.pos + n > self.end:
            raise _Bad
        out = self.buf[self.pos : self.pos + n]
        self.pos += n
        return out

    def unpack(self, fmt: str, n: int) -> Any:
        return struct.unpack(fmt, self.take(n))[0]

    def value(self, kind: str) -> Any:
        if kind != "b":
            self.bits = None
        if kind == "o":
            return self.unpack(">B", 1)
        if kind == "s":
            return self.unpack(">H", 2)
        if kind == "l":
            return self.unpack(">I", 4)
        if kind in "Lt":
            return self.unpack(">Q", 8)
        if kind == "n":
            return _text(self.take(self.unpack(">B", 1)))
        if kind == "S":
            return self.take(self.unpack(">I", 4))
        if kind == "F":
            return self.table(0)
        if kind == "b":
            if self.bits is None or self.bits[1] == 8:
                self.bits = (self.unpack(">B", 1), 0)
            octet, bit = self.bits
            self.bits = (octet, bit + 1)
            return bool(octet >> bit & 1)
        raise _Bad

    def table(self, depth: int) -> dict[str, Any]:
        if depth > MAX_TABLE_DEPTH:
            raise _Bad
        size = self.unpack(">I", 4)
        stop = self.pos + size
        if stop > self.end:
            raise _Bad
        out: dict[str, Any] = {}
        while self.pos < stop:
            name = _text(self.take(self.unpack(">B", 1)))
            out[name] = self.field(depth)
        if self.pos != stop:
            raise _Bad
        return out

    def field(self, depth: int) -> Any:
        tag = self.take(1)
        simple = _FIELD_TYPES.get(tag)
        if simple is not None:
            fmt, n = simple
            value = self.unpack(fmt, n)
            return value if not isinstance(value, float) or math.isfinite(value) else str(value)  # JSON has no NaN
        if tag == b"t":
            return self.unpack(">B", 1) != 0
        if tag == b"S" or tag == b"x":
            return _text(self.take(self.unpack(">I", 4)))
        if tag == b"D":
            scale = self.unpack(">B", 1)
            return self.unpack(">i", 4) / (10**scale)
        if tag == b"F":
            return self.table(depth + 1)
        if tag == b"A":
            if depth > MAX_TABLE_DEPTH:
                raise _Bad
            size = self.unpack(">I", 4)
            stop = self.pos + size
            if stop > self.end:
                raise _Bad
            items = []
            while self.pos < stop:
                items.append(self.field(depth + 1))
            if self.pos != stop:
                raise _Bad
            return items
        if tag == b"V":
            return None
        raise _Bad


# Field-table value types with a fixed size (RabbitMQ's reading of the 0-9-1 errata).
_FIELD_TYPES: dict[bytes, tuple[str, int]] = {
    b"b": (">b", 1), b"B": (">B", 1), b"s": (">h", 2), b"u": (">H", 2), b"I": (">i", 4), b"i": (">I", 4),
    b"l": (">q", 8), b"L": (">Q", 8), b"f": (">f", 4), b"d": (">d", 8), b"T": (">Q", 8),
}  # fmt: skip


def _text(b: bytes) -> str:
    return b.decode("utf-8", "replace")


def decode_method(buf: bytes, pos: int, end: int, frame: AmqpFrame) -> None:
    """Fill ``frame`` from a method payload ``buf[pos:end]``; raises _Bad on a malformed one."""
    if end - pos < 4:
        raise _Bad
    class_id, method_id = struct.unpack_from(">HH", buf, pos)
    method = METHODS.get((class_id, method_id))
    if method is None:
        raise _Bad
    dec = _Decoder(buf, pos + 4, end)
    fields: dict[str, Any] = {}
    for name, kind in method.args:
        value = dec.value(kind)
        if kind == "S":
            value = f"<{len(value)} bytes>" if name in SECRET_ARGS else _text(value)
        fields[name] = value
    frame.class_id, frame.method_id = class_id, method_id
    frame.msg = _dumps(fields)
    frame.replies = frozenset() if fields.get("no_wait") else method.replies


def decode_header(buf: bytes, pos: int, end: int, frame: AmqpFrame) -> None:
    """A content header: class, body size and (for the basic class) the properties present."""
    dec = _Decoder(buf, pos, end)
    class_id = dec.value("s")
    weight = dec.value("s")
    body_size = dec.value("L")
    flags = dec.value("s")
    fields: dict[str, Any] = {"body_size": body_size, "property_flags": flags}
    if weight:
        fields["weight"] = weight
    if class_id == 60:
        for i, (name, kind) in enumerate(BASIC_PROPERTIES):
            if flags >> (15 - i) & 1:
                value = dec.value(kind)
                fields[name] = _text(value) if isinstance(value, bytes) else value
    frame.class_id = class_id
    frame.msg = _dumps(fields)


def _frame_at(buf: bytes, pos: int, end: int, max_size: int) -> int:
    """Size of the whole frame starting at ``pos``: >0 complete, 0 need more, -1 not a frame."""
    if end - pos < HEADER_SIZE:
        return 0 if buf[pos] in FRAME_TYPES else -1
    ftype, channel, size = _HDR.unpack_from(buf, pos)
    if ftype not in FRAME_TYPES or size > max_size or (ftype == FRAME_HEARTBEAT and (size or channel)):
        return -1
    total = HEADER_SIZE + size + 1
    if end - pos < total:
        return 0
    return total if buf[pos + total - 1] == FRAME_END else -1


class AmqpParser(StreamParser):
    """Incremental frame parser for one direction; kept in ``DataStream.state``."""

    __slots__ = ("_in_garbage", "body_cap")

    def __init__(self, body_cap: int) -> None:
        self.body_cap = body_cap
        self.errors = 0
        self._in_garbage = False

    def next_frame(self, stream: DataStream) -> AmqpFrame | None:
        """Parse and consume the next complete frame, or None if there is none yet."""
        if stream.needs_resync:  # bytes were lost: the next byte is probably mid-frame
            stream.needs_resync = False
            self._in_garbage = True
        buf, start = stream.view()
        end = len(buf)
        pos = start
        max_size = max(0, stream.max_bytes - HEADER_SIZE - 1)
        while pos < end:
            if buf[pos] == 0x41:  # "A": the protocol header
                head = buf[pos : pos + 8]
                if head == PROTOCOL_HEADER:
                    pos += 8
                    self._in_garbage = False
                    continue
                if PROTOCOL_HEADER.startswith(head):
                    break  # wait for the rest of it
            total = _frame_at(buf, pos, end, max_size)
            if total == 0:
                if not self._in_garbage:
                    break  # a frame still arriving
                # Resynchronising: an incomplete candidate may be noise announcing a huge size, so
                # prefer a complete frame further on; wait only when there is none.
                later = self._next_complete(buf, pos + 1, end, max_size)
                if later < 0:
                    break
                pos = later
                continue
            if total < 0:
                pos = self._skip_garbage(buf, pos + 1, end)
                continue
            ts = stream.ts_at(pos - start)
            frame = self._decode(buf, pos, total, ts)
            pos += total
            self._in_garbage = False
            if frame is None:
                self.errors += 1
                continue
            stream.consume(pos - start)
            return frame
        stream.consume(pos - start)
        return None

    def _skip_garbage(self, buf: bytes, pos: int, end: int) -> int:
        if not self._in_garbage:
            self.errors += 1
            self._in_garbage = True
        hit = _FRAME_START.search(buf, pos, end)
        return end if hit is None else hit.start()

    @staticmethod
    def _next_complete(buf: bytes, pos: int, end: int, max_size: int) -> int:
        """Offset of the next whole well-formed frame in ``buf[pos:end]``, or -1."""
        while (hit := _FRAME_START.search(buf, pos, end)) is not None:
            pos = hit.start()
            if buf[pos] != 0x41 and _frame_at(buf, pos, end, max_size) > 0:
                return pos
            pos += 1
        return -1

    def _decode(self, buf: bytes, pos: int, total: int, ts: int) -> AmqpFrame | None:
        ftype, channel, size = _HDR.unpack_from(buf, pos)
        frame = AmqpFrame(ts, ftype, channel, size=size)
        body = pos + HEADER_SIZE
        try:
            if ftype == FRAME_METHOD:
                decode_method(buf, body, body + size, frame)
            elif ftype == FRAME_HEADER:
                decode_header(buf, body, body + size, frame)
            elif ftype == FRAME_BODY:
                text = _text(buf[body : body + min(size, self.body_cap)])
                frame.msg = _dumps({"body_size": size, "body": text})
            else:
                frame.msg = "{}"
        except (_Bad, struct.error, RecursionError):
            return None
        return frame
