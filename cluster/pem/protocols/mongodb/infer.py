"""Does a buffer start like a MongoDB request?

Pixie's kernel-side check, kept: a 16-byte header whose messageLength is at least 16, a
non-negative requestID, responseTo 0, and a request opCode (OP_MSG, OP_QUERY -- the first handshake
of most drivers --, OP_COMPRESSED, or a legacy write). Stricter than Pixie: the length must also be
under maxMessageSizeBytes and cover the buffer exactly, or run past it (a message split across
syscalls). Replies are not used for inference (Pixie's choice too): a connection seen from its start
always begins with the client's request.
"""

from __future__ import annotations

import struct

from cluster.pem.protocols.http.infer import MessageKind
from cluster.pem.protocols.mongodb import frames as f

_REQUEST_OPS = frozenset(
    (f.OP_MSG, f.OP_QUERY, f.OP_COMPRESSED, f.OP_UPDATE, f.OP_INSERT, f.OP_GET_MORE, f.OP_DELETE, f.OP_KILL_CURSORS)
)
_HEADER = struct.Struct("<iiii")


def infer(data: bytes) -> MessageKind | None:
    """REQUEST if ``data`` starts with a MongoDB request header that frames the buffer."""
    if len(data) < f.HEADER_LEN:
        return None
    length, request_id, response_to, op_code = _HEADER.unpack_from(bytes(data[: f.HEADER_LEN]))
    if op_code not in _REQUEST_OPS or response_to != 0 or request_id < 0:
        return None
    if not f.HEADER_LEN < length <= f.MAX_MESSAGE or length < len(data):
        return None
    return MessageKind.REQUEST
