"""Does a buffer start like PostgreSQL frontend traffic?

Two signatures, both from the frontend (which always speaks first), after Pixie's kernel-side check:

* a start-up packet: ``length:4 | 0x00030000`` followed by NUL-terminated ``user`` parameters, or an
  SSLRequest/GSSENCRequest (length 8 and its magic code);
* a complete simple Query: ``'Q' | length:4 | text NUL``, the text printable (a connection first
  seen mid-stream).

Backend bytes are not used: its first messages ('R', 'S', 'N') are single letters with a length,
too weak a signature on their own.
"""

from __future__ import annotations

import struct

from cluster.pem.protocols.http.infer import MessageKind

_U32 = struct.Struct(">I")
_V3 = 196608
_SSL_CODES = (80877103, 80877104)
_FIRST_PARAMS = (b"user\x00", b"datab", b"appli", b"clien", b"repli")  # the start-up packet's first key


def infer(data: bytes) -> MessageKind | None:
    """REQUEST if ``data`` starts with a start-up packet or a whole simple Query message."""
    if len(data) < 8:
        return None
    head = bytes(data[:64])
    if head[0] == 0:
        length, code = _U32.unpack_from(head, 0)[0], _U32.unpack_from(head, 4)[0]
        if code in _SSL_CODES and length == 8:
            return MessageKind.REQUEST
        if code == _V3 and 16 <= length <= 10000 and head[8:13] in _FIRST_PARAMS:
            return MessageKind.REQUEST
        return None
    if head[0] != 0x51:  # 'Q'
        return None
    length = _U32.unpack_from(head, 1)[0]
    if length < 5 or length > 100_000 or len(data) < length + 1 or data[length] != 0:
        return None
    text = bytes(data[5 : min(length, 69)])
    return MessageKind.REQUEST if text and all(32 <= b < 127 or b in (9, 10, 13) for b in text) else None
