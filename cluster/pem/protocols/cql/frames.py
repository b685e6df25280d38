"""Cassandra native protocol framing: bytes of one direction -> :class:`CqlFrame` objects.

A frame (native_protocol_v4.spec §2, v5 §2) is a 9-byte header -- version (high bit set on
responses), flags, a 2-byte stream id, opcode, a 4-byte body length -- and the body. Protocol v5
wraps frames, once the connection is set up, in *segments* (v5 §2): a 3-byte little-endian header
(17-bit payload length, then a self-contained bit) with its CRC24, the payload, and the payload's
CRC32. A self-contained segment holds whole frames; a large frame spans several segments that are
not. The client switches to segments after sending a v5 STARTUP, the server after answering it with
READY or AUTHENTICATE; the parser does the same and also recognises a segment by its header CRC, so
a connection first seen mid-stream is parsed whichever layout it uses. Compressed segments (LZ4) and
compressed v4 frames cannot be read without the negotiated codec: their frames keep their header and
opcode with an empty body (``compressed`` set), never a guessed one.

The parser waits (consuming nothing) while a frame is incomplete, never raises on bad input and,
after garbage, resynchronises on the next byte that starts a plausible frame header, counting one
error. Bodies are decoded by :mod:`.body`.
"""

from __future__ import annotations

import zlib
from collections import deque
from dataclasses import dataclass

from cluster.pem.data_stream import DataStream
from cluster.pem.protocols.stream_parser import StreamParser

HEADER_LEN = 9
MAX_FRAME_BODY = 256 * 1024 * 1024  # Cassandra's native_transport_max_frame_size ceiling
MAX_SEGMENT_PAYLOAD = 128 * 1024 - 1
MIN_VERSION, MAX_VERSION = 3, 5
FLAG_COMPRESSION = 0x01
FLAG_TRACING = 0x02
FLAG_CUSTOM_PAYLOAD = 0x04
FLAG_WARNING = 0x08
FLAG_USE_BETA = 0x10
MAX_FLAGS = 0x1F

# Opcodes (native_protocol_v4.spec §2.4): Pixie's req_op / resp_op enums (schemas.md §4.5).
ERROR, STARTUP, READY, AUTHENTICATE, OPTIONS, SUPPORTED = 0x00, 0x01, 0x02, 0x03, 0x05, 0x06
QUERY, RESULT, PREPARE, EXECUTE, REGISTER, EVENT = 0x07, 0x08, 0x09, 0x0A, 0x0B, 0x0C
BATCH, AUTH_CHALLENGE, AUTH_RESPONSE, AUTH_SUCCESS = 0x0D, 0x0E, 0x0F, 0x10
REQUEST_OPS = frozenset((STARTUP, OPTIONS, QUERY, PREPARE, EXECUTE, REGISTER, BATCH, AUTH_RESPONSE))
RESPONSE_OPS = frozenset((ERROR, READY, AUTHENTICATE, SUPPORTED, RESULT, EVENT, AUTH_CHALLENGE, AUTH_SUCCESS))
OPCODE_NAMES = {
    ERROR: "Error", STARTUP: "Startup", READY: "Ready", AUTHENTICATE: "Authenticate", OPTIONS: "Options",
    SUPPORTED: "Supported", QUERY: "Query", RESULT: "Result", PREPARE: "Prepare", EXECUTE: "Execute",
    REGISTER: "Register", EVENT: "Event", BATCH: "Batch", AUTH_CHALLENGE: "AuthChallenge",
    AUTH_RESPONSE: "AuthResponse", AUTH_SUCCESS: "AuthSuccess",
}  # fmt: skip

# CRC24 of a segment header (v5 §2.2; the Java and Python drivers' parameters), table driven.
_CRC24_INIT = 0x875060
_CRC24_POLY = 0x1974F0B
_CRC32_INIT = zlib.crc32(b"\xfa\x2d\x55\xca")


def _crc24_table() -> list[int]:
    table = []
    for i in range(256):
        crc = i << 16
        for _ in range(8):
            crc <<= 1
            if crc & 0x1000000:
                crc ^= _CRC24_POLY
        table.append(crc & 0xFFFFFF)
    return table


_CRC24_TABLE = _crc24_table()


def crc24(data: bytes) -> int:
    """CRC24 over ``data`` in wire order (the segment header's little-endian bytes)."""
    crc = _CRC24_INIT
    for b in data:
        crc = ((crc << 8) & 0xFFFFFF) ^ _CRC24_TABLE[((crc >> 16) ^ b) & 0xFF]
    return crc


def crc32(data: bytes) -> int:
    return zlib.crc32(data, _CRC32_INIT)


@dataclass(slots=True)
class CqlFrame:
    ts_ns: int
    version: int
    flags: int
    stream: int
    opcode: int
    body: bytes  # the message body (tracing id, warnings and custom payload still in front)
    compressed: bool = False  # body unreadable without the negotiated codec: left empty


class _NeedMore(Exception):
    pass


class _Bad(Exception):
    pass


class CqlParser(StreamParser):
    """Incremental parser for one direction; kept in ``DataStream.state``."""

    __slots__ = ("_in_garbage", "_partial", "_partial_ts", "_ready", "is_request", "segmented")

    def __init__(self, is_request: bool) -> None:
        self.is_request = is_request
        self.errors = 0
        self.segmented = False  # v5 framing in force (seen switch, or a segment decoded)
        self._ready: deque[CqlFrame] = deque()  # frames decoded from one segment, not yet handed out
        self._partial = bytearray()  # a frame spanning segments that are not self-contained
        self._partial_ts = 0
        self._in_garbage = False

    def next_frame(self, stream: DataStream) -> CqlFrame | None:
        """Parse and consume the next complete frame, or None if there is none yet."""
        while not self._ready:
            if stream.needs_resync:  # bytes were lost: a half-assembled frame is garbage
                stream.needs_resync = False
                self._partial.clear()
            buf, start = stream.view()
            end = len(buf)
            pos = start
            while True:
                if pos >= end:
                    stream.consume(pos - start)
                    return None
                try:
                    frame, after = self._unit(buf, pos, end, stream.ts_at(pos - start))
                except _NeedMore:
                    stream.consume(pos - start)
                    return None
                except _Bad:
                    pos = self._skip_garbage(buf, pos + 1, end)
                    continue
                stream.consume(after - start)
                self._in_garbage = False
                if frame is not None:
                    self._note_switch(frame)
                    return frame
                break  # a segment was decoded: hand out its frames, or read the next segment
        return self._ready.popleft()

    def _note_switch(self, frame: CqlFrame) -> None:
        """v5 §2.3: segments start after STARTUP (client) and after its READY/AUTHENTICATE (server)."""
        if frame.version >= 5 and frame.opcode in (STARTUP, READY, AUTHENTICATE):
            self.segmented = True

    def _skip_garbage(self, buf: bytes, pos: int, end: int) -> int:
        if not self._in_garbage:
            self.errors += 1
            self._in_garbage = True
        self._partial.clear()
        want = 0x80 if not self.is_request else 0x00
        while pos < end:
            b = buf[pos]
            if (b & 0x80) == want and MIN_VERSION <= (b & 0x7F) <= MAX_VERSION:
                return pos
            if self.segmented and end - pos >= 6 and _segment_header_ok(buf, pos):
                return pos
            pos += 1
        return end

    def _unit(self, buf: bytes, pos: int, end: int, ts: int) -> tuple[CqlFrame | None, int]:
        """A legacy frame (returned) or a segment (its frames queued in ``_ready``)."""
        if self.segmented:
            if end - pos < 6:
                raise _NeedMore
            if _segment_header_ok(buf, pos):
                return None, self._segment(buf, pos, end, ts)
            return self._frame(buf, pos, end, ts)
        try:
            return self._frame(buf, pos, end, ts)
        except _Bad:
            if end - pos >= 6 and _segment_header_ok(buf, pos):
                self.segmented = True
                return None, self._segment(buf, pos, end, ts)
            raise

    def _frame(self, buf: bytes, pos: int, end: int, ts: int) -> tuple[CqlFrame, int]:
        n = min(end - pos, HEADER_LEN)
        head = buf[pos : pos + n]
        _check_header(head, self.is_request)
        if n < HEADER_LEN:
            raise _NeedMore
        length = int.from_bytes(head[5:9], "big")
        if length > MAX_FRAME_BODY:
            raise _Bad
        after = pos + HEADER_LEN + length
        if after > end:
            raise _NeedMore
        return _make(head, buf[pos + HEADER_LEN : after], ts), after

    def _segment(self, buf: bytes, pos: int, end: int, ts: int) -> int:
        header = int.from_bytes(buf[pos : pos + 3], "little")
        length = header & MAX_SEGMENT_PAYLOAD
        self_contained = bool(header >> 17 & 1)
        after = pos + 6 + length + 4
        if after > end:
            raise _NeedMore
        payload = buf[pos + 6 : pos + 6 + length]
        if crc32(payload) != int.from_bytes(buf[after - 4 : after], "little"):
            raise _Bad
        if self_contained:
            self._partial.clear()
            self._ready.extend(self._frames_in(payload, ts))
            return after
        if not self._partial:
            self._partial_ts = ts
        self._partial += payload
        if len(self._partial) >= HEADER_LEN:
            head = bytes(self._partial[:HEADER_LEN])
            try:
                _check_header(head, self.is_request)
            except _Bad:
                self._partial.clear()
                self.errors += 1
                return after
            total = HEADER_LEN + int.from_bytes(head[5:9], "big")
            if total > MAX_FRAME_BODY:
                self._partial.clear()
                self.errors += 1
            elif len(self._partial) >= total:
                whole = bytes(self._partial)
                self._partial.clear()
                self._ready.extend(self._frames_in(whole, self._partial_ts))
        return after

    def _frames_in(self, payload: bytes, ts: int) -> list[CqlFrame]:
        out = []
        pos, end = 0, len(payload)
        while pos < end:
            try:
                frame, pos = self._frame(payload, pos, end, ts)
            except (_Bad, _NeedMore):
                self.errors += 1  # a segment that does not hold whole frames
                break
            out.append(frame)
        return out


def _segment_header_ok(buf: bytes, pos: int) -> bool:
    return crc24(buf[pos : pos + 3]) == int.from_bytes(buf[pos + 3 : pos + 6], "little")


def _check_header(head: bytes, is_request: bool) -> None:
    """Raise _Bad unless the (possibly partial) header can start a frame of this direction."""
    b0 = head[0]
    if bool(b0 & 0x80) == is_request or not MIN_VERSION <= (b0 & 0x7F) <= MAX_VERSION:
        raise _Bad
    if len(head) > 1 and head[1] > MAX_FLAGS:
        raise _Bad
    if len(head) > 4 and head[4] not in (REQUEST_OPS if is_request else RESPONSE_OPS):
        raise _Bad
    if len(head) > 5 and head[5] & 0x80:  # a negative length
        raise _Bad


def _make(head: bytes, body: bytes, ts: int) -> CqlFrame:
    flags = head[1]
    compressed = bool(flags & FLAG_COMPRESSION)
    return CqlFrame(
        ts, head[0] & 0x7F, flags, int.from_bytes(head[2:4], "big", signed=True), head[4],
        b"" if compressed else body, compressed,
    )  # fmt: skip
