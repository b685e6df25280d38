"""Does a buffer start like MySQL traffic?

Either direction can be recognised, because MySQL's server speaks first:

* the server greeting (HandshakeV10): sequence id 0, protocol version 10, a printable
  NUL-terminated version string starting with a digit, and the packet length matching the buffer;
* a command from a connection first seen mid-stream, with Pixie's rules: sequence id 0, a length of
  1..10000 that covers the rest of the buffer exactly, and one of COM_QUERY, COM_CONNECT,
  COM_STMT_PREPARE, COM_STMT_EXECUTE or COM_STMT_CLOSE; a COM_QUERY must also be printable text.
"""

from __future__ import annotations

from cluster.pem.protocols.http.infer import MessageKind

_COMMANDS = frozenset((0x03, 0x0B, 0x16, 0x17, 0x19))


def infer(data: bytes) -> MessageKind | None:
    """RESPONSE for a server greeting, REQUEST for a plausible first command, else None."""
    if len(data) < 5:
        return None
    head = bytes(data[:96])
    length = head[0] | head[1] << 8 | head[2] << 16
    if head[3] != 0 or length == 0 or len(data) != 4 + length:
        return None
    body = head[4:]
    if body[0] == 0x0A:
        nul = body.find(b"\x00", 1, 64)
        version = body[1:nul] if nul > 1 else b""
        if version[:1].isdigit() and all(32 <= b < 127 for b in version) and length >= nul + 1 + 4 + 8 + 1 + 2:
            return MessageKind.RESPONSE
        return None
    if length > 10000 or body[0] not in _COMMANDS:
        return None
    if body[0] == 0x03:
        text = body[1:65]
        if not text or not all(32 <= b < 127 or b in (9, 10, 13) or b >= 0x80 for b in text):
            return None
    return MessageKind.REQUEST
