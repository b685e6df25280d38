"""Does a buffer start like NATS client-protocol traffic?

The server speaks first (``INFO {...}``) and the client answers ``CONNECT {...}``: those two are the
usual evidence. A connection first seen mid-stream is recognised by a whole, well-formed PUB, HPUB,
SUB, MSG or HMSG control line (verb, the right number of fields, numeric sizes, CRLF). Pixie's check
also takes PING, PONG, +OK and -ERR, which too many line protocols share, so they are not used here.
``CONNECT {`` is claimed before HTTP's inference sees a CONNECT method: an HTTP CONNECT request names
``host:port``, never a JSON object.
"""

from __future__ import annotations

from cluster.pem.protocols.http.infer import MessageKind

_MAX_LINE = 1024
# verb -> (kind, accepted field counts, how many trailing fields are sizes)
_LINES: dict[bytes, tuple[MessageKind, tuple[int, ...], int]] = {
    b"PUB": (MessageKind.REQUEST, (2, 3), 1),
    b"HPUB": (MessageKind.REQUEST, (3, 4), 2),
    b"SUB": (MessageKind.REQUEST, (2, 3), 1),
    b"MSG": (MessageKind.RESPONSE, (3, 4), 1),
    b"HMSG": (MessageKind.RESPONSE, (4, 5), 2),
}


def infer(data: bytes) -> MessageKind | None:
    """RESPONSE for INFO or a delivered message, REQUEST for CONNECT, a publish or a subscribe."""
    head = bytes(data[:_MAX_LINE])
    if head.startswith(b"INFO {"):
        return MessageKind.RESPONSE
    if head.startswith(b"CONNECT {"):
        return MessageKind.REQUEST
    nl = head.find(b"\r\n")
    if nl < 0:
        return None
    fields = head[:nl].split(b" ")
    spec = _LINES.get(fields[0])
    if spec is None:
        return None
    kind, counts, sizes = spec
    args = fields[1:]
    if len(args) not in counts or not all(args) or not all(f.isdigit() for f in args[-sizes:]):
        return None
    return kind
