"""Does a buffer start like Cassandra native protocol traffic?

A frame header (native_protocol_v4.spec §2) is checked field by field, as Pixie's kernel-side check
does: version 3..5 with the direction bit agreeing with the opcode (requests STARTUP, OPTIONS, QUERY,
PREPARE, EXECUTE, REGISTER, BATCH, AUTH_RESPONSE; responses the others), flags within the defined
bits, a non-negative request stream id, and a body length under 16 MiB. Then, stricter than Pixie,
the buffer must hold exactly that frame, or end inside it, or go on with another plausible header:
a random binary prefix seldom lines all of that up. A connection first seen after a v5 connection
switched to segments is recognised by a segment header whose CRC24 matches and whose payload starts
with a frame header.
"""

from __future__ import annotations

from cluster.pem.protocols.cql import frames as f
from cluster.pem.protocols.http.infer import MessageKind

_MAX_INFER_BODY = 16 * 1024 * 1024
_WINDOW = 256


def _header_kind(data: bytes, pos: int) -> MessageKind | None:
    head = data[pos : pos + f.HEADER_LEN]
    if len(head) < f.HEADER_LEN:
        return None
    response = bool(head[0] & 0x80)
    if not f.MIN_VERSION <= (head[0] & 0x7F) <= f.MAX_VERSION or head[1] > f.MAX_FLAGS:
        return None
    if head[4] not in (f.RESPONSE_OPS if response else f.REQUEST_OPS):
        return None
    if not response and head[2] & 0x80:  # a client's stream ids are >= 0
        return None
    if int.from_bytes(head[5:9], "big") >= _MAX_INFER_BODY:
        return None
    return MessageKind.RESPONSE if response else MessageKind.REQUEST


def infer(data: bytes) -> MessageKind | None:
    """REQUEST or RESPONSE for a buffer that starts with a whole-looking CQL frame or v5 segment."""
    whole = len(data)
    data = bytes(data[:_WINDOW])
    kind = _header_kind(data, 0)
    if kind is not None:
        return kind if _fits(data, whole, kind) else None
    if len(data) >= 6 + f.HEADER_LEN and f.crc24(data[:3]) == int.from_bytes(data[3:6], "little"):
        return _header_kind(data, 6)
    return None


def _fits(data: bytes, whole: int, kind: MessageKind) -> bool:
    """The first frame ends exactly at the buffer's end, past it, or before another header."""
    end = f.HEADER_LEN + int.from_bytes(data[5:9], "big")
    if end >= whole or end + f.HEADER_LEN > len(data):
        return True  # the frame is whole or cut by the syscall; or the next header is past the window
    return _header_kind(data, end) is kind
