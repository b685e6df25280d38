"""Does a buffer start like a Redis request?

Redis clients speak first, always with an array of bulk strings (RESP2 and RESP3 alike; a RESP3
client's first command is HELLO). Pixie's kernel-side check (a type marker and a trailing CRLF)
accepts almost any line protocol, so this one is stricter: ``*<n>\\r\\n$<m>\\r\\n`` followed by a
known command name. Replies are not used for inference: ``+OK\\r\\n`` or ``:1\\r\\n`` are too easily
something else, and the request always comes first on a connection we see from its start.
"""

from __future__ import annotations

from cluster.pem.protocols.http.infer import MessageKind
from cluster.pem.protocols.redis.commands import FIRST_WORDS

_MAX_HEAD = 32


def infer(data: bytes) -> MessageKind | None:
    """REQUEST if ``data`` starts with a RESP command array naming a known Redis command."""
    head = bytes(data[:_MAX_HEAD])
    if head[:1] != b"*":
        return None
    nl = head.find(b"\r\n", 1, 8)
    if nl < 0 or not head[1:nl].isdigit() or int(head[1:nl]) < 1:
        return None
    pos = nl + 2
    if head[pos : pos + 1] != b"$":
        return None
    nl2 = head.find(b"\r\n", pos + 1, pos + 8)
    if nl2 < 0 or not head[pos + 1 : nl2].isdigit():
        return None
    size = int(head[pos + 1 : nl2])
    name = head[nl2 + 2 : nl2 + 2 + size]
    if len(name) != size or not name.isascii():
        return None
    return MessageKind.REQUEST if name.decode().upper() in FIRST_WORDS else None
