"""Does a buffer start like a DNS message?

Pixie's kernel check looks at the 12-byte header only (opcode QUERY, the Z bit clear, 1 to 10
questions, few records). That is kept as a cheap first filter, and then the whole message must decode
(questions and answers) and end exactly where it should: a UDP datagram is one message, and the first
read of a DNS-over-TCP connection is a 2-byte length and the message it announces. The header's QR
bit tells a query (REQUEST) from an answer (RESPONSE).
"""

from __future__ import annotations

import struct

from cluster.pem.protocols.dns.frames import DECODE_ERRORS, HEADER_LEN, render_answers, render_queries, skip_records
from cluster.pem.protocols.http.infer import MessageKind

_HEADER = struct.Struct("!HHHHHH")
MAX_QUESTIONS = 10  # Pixie's bound
MAX_RECORDS = 256  # answers + authority + additional


def _kind(msg: bytes) -> MessageKind | None:
    if len(msg) < HEADER_LEN:
        return None
    _txid, flags, qd, an, ns, ar = _HEADER.unpack_from(msg)
    if (flags >> 11) & 0xF or (flags >> 6) & 1 or not 1 <= qd <= MAX_QUESTIONS or an + ns + ar > MAX_RECORDS:
        return None
    try:
        pos = render_queries(msg, HEADER_LEN, qd)[1]
        pos = render_answers(msg, pos, an)[1]
        pos = skip_records(msg, pos, ns + ar)  # the rest must be well-formed records that fill the message
    except DECODE_ERRORS:
        return None
    if pos != len(msg):
        return None
    return MessageKind.RESPONSE if flags >> 15 else MessageKind.REQUEST


def infer(data: bytes) -> MessageKind | None:
    """REQUEST for a DNS query, RESPONSE for an answer: a whole datagram, or TCP's length + message."""
    data = bytes(data)
    kind = _kind(data)
    if kind is None and len(data) >= HEADER_LEN + 2:
        size = (data[0] << 8) | data[1]
        if HEADER_LEN <= size <= len(data) - 2:
            kind = _kind(data[2 : 2 + size])
    return kind
