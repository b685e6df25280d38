"""Does a buffer start like HTTP/2 (h2c, or TLS plaintext) traffic?

Three signatures, strictest first, each cheap (a few byte compares, no loop over the data):

* the client connection preface ``PRI * HTTP/2.0\\r\\n\\r\\nSM\\r\\n\\r\\n`` (RFC 9113 §3.4): a request,
  so the side that sends it is the client;
* the server's connection preface, a SETTINGS frame on stream 0 without ACK whose payload is whole
  settings with legal values: a response (the server writes it as soon as it accepts, often before
  it has read the client's preface);
* a connection first seen mid-stream: a HEADERS frame whose header block opens with a pseudo-header
  taken from HPACK's static table (``:method``/``:path``/``:scheme``/``:authority`` on an odd stream:
  a request; ``:status``: a response). Pseudo-headers must come first in a block (RFC 9113 §8.3) and
  the static table is known without the connection's history, so this needs no guessing; Pixie's
  kernel inference looks for the same static ``:method`` byte.

None of these matches another protocol's first bytes: the preface is not an HTTP/1 method, and a
frame header needs type 1 or 4 in byte 3 with flags and stream-id bits that MySQL, PostgreSQL,
DNS-over-TCP and the text protocols do not produce there.
"""

from __future__ import annotations

from cluster.pem.protocols.http.infer import MessageKind

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
# A shorter first read must still hold this much of the preface to count ("PRI * HTTP/2.0").
_MIN_PREFACE_PART = 14
_HEADERS, _SETTINGS = 1, 4
_HEADERS_FLAGS = 0x01 | 0x04 | 0x08 | 0x20  # END_STREAM | END_HEADERS | PADDED | PRIORITY
_MAX_FIRST_SETTINGS = 6 * 32  # a server preface with more settings than this is not one we know
# Static-table indices (RFC 7541 Appendix A): 1 :authority, 2-3 :method, 4-5 :path, 6-7 :scheme,
# 8-14 :status.
_REQUEST_PSEUDO = range(1, 8)
_RESPONSE_PSEUDO = range(8, 15)


def infer(data: bytes) -> MessageKind | None:
    """REQUEST for the client preface or a request HEADERS frame, RESPONSE for the server's first
    SETTINGS frame or a response HEADERS frame; None otherwise."""
    head = bytes(data[:64])
    n = len(head)
    if n >= _MIN_PREFACE_PART and PREFACE.startswith(head[:24]):
        return MessageKind.REQUEST
    if n < 9 or head[3] not in (_HEADERS, _SETTINGS) or head[5] & 0x80:
        return None
    length = (head[0] << 16) | (head[1] << 8) | head[2]
    if head[3] == _SETTINGS:
        return MessageKind.RESPONSE if _server_preface(head, length) else None
    return _headers_kind(head, length)


def _server_preface(head: bytes, length: int) -> bool:
    if head[4] != 0 or head[5:9] != b"\0\0\0\0" or length % 6 or length > _MAX_FIRST_SETTINGS:
        return False
    end = min(9 + length, len(head))
    for pos in range(9, end - 5, 6):
        ident = (head[pos] << 8) | head[pos + 1]
        value = int.from_bytes(head[pos + 2 : pos + 6], "big")
        if not settings_value_ok(ident, value):
            return False
    return True


def settings_value_ok(ident: int, value: int) -> bool:
    """RFC 9113 §6.5.2 bounds; unknown identifiers are allowed (they must be ignored)."""
    if ident == 2:  # ENABLE_PUSH
        return value <= 1
    if ident == 4:  # INITIAL_WINDOW_SIZE
        return value <= 0x7FFFFFFF
    if ident == 5:  # MAX_FRAME_SIZE
        return 16384 <= value <= 0xFFFFFF
    return True


def _headers_kind(head: bytes, length: int) -> MessageKind | None:
    flags = head[4]
    stream_id = int.from_bytes(head[5:9], "big")
    if flags & ~_HEADERS_FLAGS or stream_id == 0 or length == 0:
        return None
    pos = 9
    if flags & 0x08:  # PADDED: pad length byte
        if len(head) <= pos or head[pos] >= length:
            return None
        pos += 1
    if flags & 0x20:  # PRIORITY: stream dependency and weight
        pos += 5
    if pos < len(head) and head[pos] & 0xE0 == 0x20:  # a dynamic table size update may come first
        pos = _skip_integer(head, pos, 5)
    if pos >= len(head) or pos >= 9 + length:
        return None
    index = _first_static_index(head, pos)
    if index in _REQUEST_PSEUDO and stream_id & 1:
        return MessageKind.REQUEST
    if index in _RESPONSE_PSEUDO:
        return MessageKind.RESPONSE
    return None


def _first_static_index(head: bytes, pos: int) -> int:
    """Static index of the first field's name (indexed or literal-with-indexed-name), 0 if none."""
    b = head[pos]
    if b & 0x80:  # indexed field
        return b & 0x7F if b & 0x7F != 0x7F else 0
    if b & 0xC0 == 0x40:  # literal with incremental indexing
        return b & 0x3F if b & 0x3F != 0x3F else 0
    if b & 0xE0 == 0:  # literal without indexing (0000) or never indexed (0001)
        return b & 0x0F if b & 0x0F != 0x0F else 0
    return 0


def _skip_integer(head: bytes, pos: int, prefix_bits: int) -> int:
    """Position after an HPACK integer (RFC 7541 §5.1) starting at ``pos``."""
    mask = (1 << prefix_bits) - 1
    if head[pos] & mask != mask:
        return pos + 1
    pos += 1
    while pos < len(head) and head[pos] & 0x80:
        pos += 1
    return pos + 1
