"""Does a buffer start like AMQP 0-9-1?

A client opens every AMQP connection with the 8-byte protocol header ``AMQP\\x00\\x00\\x09\\x01``,
which no other protocol sends; that is the common case and makes the sender the client. A
connection first seen mid-stream is recognised only by one whole method frame whose class and
method are known and whose end octet (0xCE) sits exactly where the size says: its sender then
tells the role (connection.start or basic.deliver come from the server). Content and heartbeat
frames are too short and generic to claim a connection on their own.
"""

from __future__ import annotations

import struct

from cluster.pem.protocols.amqp.frames import FRAME_END, FRAME_METHOD, HEADER_SIZE, PROTOCOL_HEADER
from cluster.pem.protocols.amqp.spec import CLIENT, METHODS, SERVER
from cluster.pem.protocols.http.infer import MessageKind

_MAX_INFER_FRAME = 1 << 16


def infer(data: bytes) -> MessageKind | None:
    """REQUEST for the protocol header or a client method frame, RESPONSE for a server method frame."""
    if data[:8] == PROTOCOL_HEADER:
        return MessageKind.REQUEST
    if len(data) < HEADER_SIZE + 5 or data[0] != FRAME_METHOD:
        return None
    size = struct.unpack_from(">I", data, 3)[0]
    if size < 4 or size > _MAX_INFER_FRAME or len(data) < HEADER_SIZE + size + 1:
        return None
    if data[HEADER_SIZE + size] != FRAME_END:
        return None
    method = METHODS.get(struct.unpack_from(">HH", data, HEADER_SIZE))
    if method is None:
        return None
    if method.sender == CLIENT:
        return MessageKind.REQUEST
    if method.sender == SERVER:
        return MessageKind.RESPONSE
    return None
