"""Does a buffer start like MQTT?

Only a CONNECT is trusted: its fixed header (0x10 and a valid remaining length) is followed by the
protocol name ``MQTT`` with level 4 (3.1.1) or 5, or ``MQIsdp`` with level 3 (3.1), which no other
protocol sends. Every MQTT connection opens with it, from the client. Other packets are two to a
few bytes of loose shape (``\\xc0\\x00`` is a PINGREQ), so a connection first seen mid-stream is
left alone rather than risk claiming some other binary protocol's connection.
"""

from __future__ import annotations

from cluster.pem.protocols.http.infer import MessageKind
from cluster.pem.protocols.mqtt.frames import PROTOCOL_NAMES


def infer(data: bytes) -> MessageKind | None:
    """REQUEST if ``data`` starts with an MQTT CONNECT packet header."""
    if data[:1] != b"\x10":
        return None
    i, length, shift = 1, 0, 0
    while True:
        if i >= len(data) or i > 4:
            return None
        byte = data[i]
        length |= (byte & 0x7F) << shift
        i += 1
        if not byte & 0x80:
            break
        shift += 7
    name_len = int.from_bytes(bytes(data[i : i + 2]), "big")
    levels = PROTOCOL_NAMES.get(bytes(data[i + 2 : i + 2 + name_len]))
    if levels is None or len(data) < i + 3 + name_len or length < name_len + 6:
        return None
    return MessageKind.REQUEST if data[i + 2 + name_len] in levels else None
