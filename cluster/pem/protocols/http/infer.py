"""Does a buffer start like an HTTP/1.x message?

The connection tracker calls :func:`infer` on the first bytes of a connection to pick the protocol
and, when connect()/accept() was not seen, to tell which side is the client. It must be cheap (a few
slices, no regex) and conservative: a false positive routes a non-HTTP connection to this parser.
The patterns are Pixie's (the nine RFC 7231/5789 methods followed by a space, or ``HTTP/1.``).
"""

from __future__ import annotations

import enum

from cluster.schemas import ROLE_CLIENT, ROLE_SERVER


class MessageKind(enum.IntEnum):
    REQUEST = 1
    RESPONSE = 2


METHODS: frozenset[bytes] = frozenset(
    (b"GET", b"HEAD", b"POST", b"PUT", b"DELETE", b"CONNECT", b"OPTIONS", b"TRACE", b"PATCH")
)
METHOD_NAMES: frozenset[str] = frozenset(m.decode() for m in METHODS)
# "METHOD " as it starts a request line; used to recognise a request start split mid-token.
REQUEST_STARTS: tuple[bytes, ...] = tuple(sorted(m + b" " for m in METHODS))
RESPONSE_START = b"HTTP/1."
# Longest method (CONNECT/OPTIONS) plus its space: where the first space must appear by.
MAX_METHOD_SPAN = 8


def infer(data: bytes) -> MessageKind | None:
    """REQUEST if ``data`` starts with a known method and a space, RESPONSE if with ``HTTP/1.``."""
    if data[:7] == RESPONSE_START:
        return MessageKind.RESPONSE
    sp = data.find(b" ", 0, MAX_METHOD_SPAN)
    if sp > 0 and bytes(data[:sp]) in METHODS:
        return MessageKind.REQUEST
    return None


def role_for(kind: MessageKind, egress: bool) -> int:
    """Trace role implied by seeing ``kind`` on one direction: sending requests makes a client."""
    sends_requests = (kind is MessageKind.REQUEST) == egress
    return ROLE_CLIENT if sends_requests else ROLE_SERVER
