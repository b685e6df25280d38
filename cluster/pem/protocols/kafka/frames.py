"""Kafka framing: bytes of one direction -> :class:`KafkaFrame` objects, and the bodies they carry.

Every Kafka message is an int32 size followed by that many bytes (kafka.apache.org/protocol,
"Common Request and Response Structure"). A request starts with its header: api_key int16,
api_version int16, correlation_id int32, then (header v1 and v2) client_id, a nullable
int16-prefixed string even in flexible versions, and (header v2, flexible versions) a tag section.
Header v0, without a client id, is ControlledShutdown v0's alone. A response starts with the
correlation_id, then a tag section in header v1; which header a response has depends on the request
it answers, so responses are decoded when they are paired (:func:`decode_response`).

Bounded buffering: a frame up to ``FULL_FRAME_MAX`` is decoded once whole; a larger one (a big fetch
response, say) is decoded from its first ``PREFIX_MAX`` bytes (see :mod:`.wire` for what that
allows) and the rest is consumed as it arrives, never held. A size past ``MAX_FRAME`` (Kafka's
socket.request.max.bytes default) or a header that cannot be Kafka's is garbage: the parser counts
one error and resynchronises on the next plausible frame start: for requests a known API key and
version, a non-negative correlation id and a client id that fits; for responses the correlation id
of a request still waiting for its answer.
"""

from __future__ import annotations

import re
import struct
from collections.abc import Collection
from dataclasses import dataclass

from cluster.pem.data_stream import DataStream
from cluster.pem.protocols.kafka import apis, bodies
from cluster.pem.protocols.kafka.wire import Malformed, Reader
from cluster.pem.protocols.stream_parser import StreamParser

MAX_FRAME = 100 * 1024 * 1024
FULL_FRAME_MAX = 256 * 1024
PREFIX_MAX = 64 * 1024
REQUEST_HEADER_MIN = 10  # api_key, api_version, correlation_id, client_id length
RESPONSE_HEADER_MIN = 4  # correlation_id
_HEAD = struct.Struct(">ihhih")  # size, api_key, api_version, correlation_id, client_id length
_SIZE_CORR = struct.Struct(">ii")
_CORR = struct.Struct(">i")
# A request frame start, loosely: size < 128 MiB, api_key < 256, api_version < 256, correlation_id >= 0.
_REQUEST_START = re.compile(rb"[\x00-\x07][\x00-\xff]{3}\x00[\x00-\xff]\x00[\x00-\xff][\x00-\x7f]")
_RESYNC_IDS = 64  # pending correlation ids searched for when a response stream resynchronises


@dataclass(slots=True)
class KafkaFrame:
    ts_ns: int
    correlation_id: int
    size: int  # the declared size (bytes after the size field)
    data: bytes  # the frame after its size field; only a prefix when size > FULL_FRAME_MAX
    api_key: int = -1  # requests only, from here on
    api_version: int = -1
    client_id: str = ""
    body_at: int = 0  # offset of the body in ``data`` (after the request header)

    @property
    def truncated(self) -> bool:
        return len(self.data) < self.size


def header_v0(api_key: int, version: int) -> bool:
    """Request header v0 (no client id): ControlledShutdown v0 only."""
    return api_key == apis.CONTROLLED_SHUTDOWN and version == 0


def request_head_ok(buf: bytes, pos: int, end: int) -> bool:
    """Could a request frame start at ``pos``? Needs the 14 header bytes up to the client id length."""
    if end - pos < 14:
        return False
    size, key, version, corr, cid_len = _HEAD.unpack_from(buf, pos)
    return (
        REQUEST_HEADER_MIN <= size <= MAX_FRAME
        and corr >= 0
        and apis.known(key, version)
        and (-1 <= cid_len <= size - REQUEST_HEADER_MIN or header_v0(key, version))
    )


class KafkaParser(StreamParser):
    """Incremental parser for one direction; kept in ``DataStream.state``."""

    __slots__ = ("_in_garbage", "_resync", "_skip", "is_request")

    def __init__(self, is_request: bool) -> None:
        self.is_request = is_request
        self.errors = 0
        self._skip = 0  # bytes of an oversized frame still to drop as they arrive
        self._resync = False
        self._in_garbage = False

    def next_frame(self, stream: DataStream, pending: Collection[int] | None = None) -> KafkaFrame | None:
        """Parse and consume the next frame, or None if there is none complete yet.

        ``pending`` (responses): correlation ids of the requests awaiting an answer; a response
        answering none of them is taken as garbage. None accepts any correlation id.
        """
        if stream.needs_resync:  # bytes were lost: what follows is probably mid-frame
            stream.needs_resync = False
            self._skip = 0
            self._resync = True
        if self._skip:
            n = min(self._skip, len(stream))
            stream.consume(n)
            self._skip -= n
            if self._skip:
                return None
        buf, start = stream.view()
        end = len(buf)
        pos = start
        while True:
            if self._resync:
                found = self._find_start(buf, pos, end, pending)
                if found < 0:  # keep a tail that may be the start of a frame
                    stream.consume(max(pos, end - 16) - start)
                    return None
                pos = found
                self._resync = False
            if end - pos < (14 if self.is_request else 8):
                break
            frame_ok = self._head_ok(buf, pos, end, pending)
            if not frame_ok:
                self._garbage()
                pos += 1
                continue
            size = _CORR.unpack_from(buf, pos)[0]
            total = 4 + size
            held = size if size <= FULL_FRAME_MAX else min(size, PREFIX_MAX)
            if end - pos < 4 + held:
                break
            frame = self._frame(stream, buf, pos, start, size, held)
            if frame is None:
                self._garbage()
                pos += 1
                continue
            taken = min(end - pos, total)
            stream.consume(pos + taken - start)
            self._skip = total - taken
            self._in_garbage = False
            return frame
        stream.consume(pos - start)
        return None

    def _garbage(self) -> None:
        if not self._in_garbage:
            self.errors += 1
            self._in_garbage = True
        self._resync = True

    def _head_ok(self, buf: bytes, pos: int, end: int, pending: Collection[int] | None) -> bool:
        if self.is_request:
            return request_head_ok(buf, pos, end)
        size, corr = _SIZE_CORR.unpack_from(buf, pos)
        return RESPONSE_HEADER_MIN <= size <= MAX_FRAME and corr >= 0 and (pending is None or corr in pending)

    def _frame(self, stream: DataStream, buf: bytes, pos: int, start: int, size: int, held: int) -> KafkaFrame | None:
        data = buf[pos + 4 : pos + 4 + held]
        ts = stream.ts_at(pos - start)
        if not self.is_request:
            return KafkaFrame(ts, _CORR.unpack_from(data, 0)[0], size, data)
        key, version, corr = struct.unpack_from(">hhi", data, 0)
        if header_v0(key, version):
            return KafkaFrame(ts, corr, size, data, key, version, "", 8)
        r = Reader(data, 8, len(data), False, size)
        try:
            client_id = r.legacy_string()
        except Malformed:
            return None
        return KafkaFrame(ts, corr, size, data, key, version, client_id, r.pos)

    def _find_start(self, buf: bytes, pos: int, end: int, pending: Collection[int] | None) -> int:
        """The first offset from ``pos`` where a frame can start, or -1."""
        if self.is_request:
            while (hit := _REQUEST_START.search(buf, pos, end)) is not None:
                if request_head_ok(buf, hit.start(), end):
                    return hit.start()
                pos = hit.start() + 1
            return -1
        if pending is None:
            return pos
        best = -1
        for i, corr in enumerate(pending):
            if i >= _RESYNC_IDS:
                break
            at = buf.find(_CORR.pack(corr), pos + 4, end)
            while at >= 0 and not self._head_ok(buf, at - 4, end, None):
                at = buf.find(_CORR.pack(corr), at + 1, end)
            if at >= 0 and (best < 0 or at - 4 < best):
                best = at - 4
        return best


def _reader(frame: KafkaFrame, at: int, flexible: bool) -> Reader:
    return Reader(frame.data, at, len(frame.data), flexible, frame.size)


def decode_request(frame: KafkaFrame) -> tuple[bodies.Obj | None, bool]:
    """(Pixie's JSON object for the request body or None when it has no decoder, ok).

    ok is False when the body does not follow its layout (a parse error for the caller to count).
    """
    decoder = bodies.REQUESTS.get(frame.api_key)
    if decoder is None or not apis.decodable(frame.api_key, frame.api_version):
        return None, True
    r = _reader(frame, frame.body_at, apis.is_flexible(frame.api_key, frame.api_version))
    try:
        r.tags()  # request header v2's tag section
        return decoder(r, frame.api_version), True
    except Malformed:
        return None, False


def decode_response(frame: KafkaFrame, api_key: int, version: int) -> tuple[bodies.Obj | None, bool]:
    """The response body answering a request of (api_key, version); as :func:`decode_request`."""
    decoder = bodies.RESPONSES.get(api_key)
    if decoder is None or not apis.decodable(api_key, version):
        return None, True
    r = _reader(frame, RESPONSE_HEADER_MIN, apis.is_flexible(api_key, version))
    try:
        if apis.response_header_flexible(api_key, version):
            r.tags()
        return decoder(r, version), True
    except Malformed:
        return None, False
