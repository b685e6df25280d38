"""Does a buffer start like a Kafka request?

Kafka clients speak first, and every request starts with a fixed header (size int32, api_key int16,
api_version int16, correlation_id int32, client_id length int16): the check is Pixie's (a size
within Kafka's limit, a known API key with a version it has, a non-negative correlation id) plus the
client id, which must be present (the protocol allows it null or empty, but every client names
itself: "console-producer", "rdkafka", "sarama", "kafka-python-producer-1", a broker its id), fit in
the frame and, for the bytes present, be printable ASCII. Without that rule a response would pass: an
ApiVersions response reads as Produce v1 with an empty client id. Responses themselves are not used:
a correlation id and a size are no evidence at all.

The other binary protocols are told apart by the size alone: MySQL's 3-byte little-endian length,
MongoDB's little-endian int32, TLS records, MQTT, AMQP's "AMQP" and every text protocol read as a
size far above ``MAX_FRAME``; a PostgreSQL startup packet passes for Metadata v0 but PostgreSQL is
asked first, and its client id length would not fit anyway.
"""

from __future__ import annotations

from cluster.pem.protocols.http.infer import MessageKind
from cluster.pem.protocols.kafka.frames import request_head_ok

_HEAD = 14
_PRINTABLE = bytes(range(0x20, 0x7F))


def infer(data: bytes) -> MessageKind | None:
    """REQUEST if ``data`` starts with a plausible Kafka request header."""
    head = bytes(data[: _HEAD + 64])
    if not request_head_ok(head, 0, len(head)):
        return None
    cid_len = int.from_bytes(head[12:14], "big", signed=True)
    client_id = head[_HEAD : _HEAD + cid_len]
    if cid_len < 1 or client_id.translate(None, _PRINTABLE):  # something left: not printable ASCII
        return None
    return MessageKind.REQUEST
