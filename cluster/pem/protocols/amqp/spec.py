"""AMQP 0-9-1 method table: argument layouts, which methods wait for a reply, and who may send them.

Written from the AMQP 0-9-1 specification (amqp0-9-1.xml, with RabbitMQ's extensions: exchange.bind,
basic.nack, confirm.select, connection.blocked/update-secret), which is also what Pixie's generated
decoder follows. Argument types use one letter each:

    o octet   s short   l long   L longlong   t timestamp   b bit (consecutive bits share an octet)
    n short string      S long string        F field table

A synchronous method names the replies that answer it; the pairing in :mod:`.stitch` uses that to
pair a request with its reply whichever side sent first (the server opens with connection.start).
A method whose ``no_wait`` bit is set expects no reply and is treated as asynchronous.
"""

from __future__ import annotations

from dataclasses import dataclass

CLIENT, SERVER, BOTH = "C", "S", "B"

# Arguments whose value is a credential: rendered as their size only, never their bytes.
SECRET_ARGS = frozenset(("response",))


@dataclass(frozen=True, slots=True)
class Method:
    name: str
    args: tuple[tuple[str, str], ...]  # (field name, type letter)
    replies: frozenset[tuple[int, int]]  # empty: asynchronous
    sender: str  # CLIENT, SERVER or BOTH (used to tell the role of a connection seen mid-stream)


def _m(name: str, args: str, sender: str, *replies: tuple[int, int]) -> Method:
    fields = tuple((a.split(":")[0], a.split(":")[1]) for a in args.split())
    return Method(name, fields, frozenset(replies), sender)


_C, _S, _B = CLIENT, SERVER, BOTH

METHODS: dict[tuple[int, int], Method] = {
    # connection (10)
    (10, 10): _m(
        "connection.start", "version_major:o version_minor:o server_properties:F mechanisms:S locales:S", _S, (10, 11)
    ),
    (10, 11): _m("connection.start-ok", "client_properties:F mechanism:n response:S locale:n", _C),
    (10, 20): _m("connection.secure", "challenge:S", _S, (10, 21)),
    (10, 21): _m("connection.secure-ok", "response:S", _C),
    (10, 30): _m("connection.tune", "channel_max:s frame_max:l heartbeat:s", _S, (10, 31)),
    (10, 31): _m("connection.tune-ok", "channel_max:s frame_max:l heartbeat:s", _C),
    (10, 40): _m("connection.open", "virtual_host:n reserved_1:n reserved_2:b", _C, (10, 41)),
    (10, 41): _m("connection.open-ok", "reserved_1:n", _S),
    (10, 50): _m("connection.close", "reply_code:s reply_text:n class_id:s method_id:s", _B, (10, 51)),
    (10, 51): _m("connection.close-ok", "", _B),
    (10, 60): _m("connection.blocked", "reason:n", _S),
    (10, 61): _m("connection.unblocked", "", _S),
    (10, 70): _m("connection.update-secret", "new_secret:S reason:n", _C, (10, 71)),
    (10, 71): _m("connection.update-secret-ok", "", _S),
    # channel (20)
    (20, 10): _m("channel.open", "reserved_1:n", _C, (20, 11)),
    (20, 11): _m("channel.open-ok", "reserved_1:S", _S),
    (20, 20): _m("channel.flow", "active:b", _B, (20, 21)),
    (20, 21): _m("channel.flow-ok", "active:b", _B),
    (20, 40): _m("channel.close", "reply_code:s reply_text:n class_id:s method_id:s", _B, (20, 41)),
    (20, 41): _m("channel.close-ok", "", _B),
    # exchange (40)
    (40, 10): _m(
        "exchange.declare",
        "reserved_1:s exchange:n type:n passive:b durable:b auto_delete:b internal:b no_wait:b arguments:F",
        _C,
        (40, 11),
    ),
    (40, 11): _m("exchange.declare-ok", "", _S),
    (40, 20): _m("exchange.delete", "reserved_1:s exchange:n if_unused:b no_wait:b", _C, (40, 21)),
    (40, 21): _m("exchange.delete-ok", "", _S),
    (40, 30): _m(
        "exchange.bind", "reserved_1:s destination:n source:n routing_key:n no_wait:b arguments:F", _C, (40, 31)
    ),
    (40, 31): _m("exchange.bind-ok", "", _S),
    (40, 40): _m(
        "exchange.unbind", "reserved_1:s destination:n source:n routing_key:n no_wait:b arguments:F", _C, (40, 51)
    ),
    (40, 51): _m("exchange.unbind-ok", "", _S),
    # queue (50)
    (50, 10): _m(
        "queue.declare",
        "reserved_1:s queue:n passive:b durable:b exclusive:b auto_delete:b no_wait:b arguments:F",
        _C,
        (50, 11),
    ),
    (50, 11): _m("queue.declare-ok", "queue:n message_count:l consumer_count:l", _S),
    (50, 20): _m("queue.bind", "reserved_1:s queue:n exchange:n routing_key:n no_wait:b arguments:F", _C, (50, 21)),
    (50, 21): _m("queue.bind-ok", "", _S),
    (50, 30): _m("queue.purge", "reserved_1:s queue:n no_wait:b", _C, (50, 31)),
    (50, 31): _m("queue.purge-ok", "message_count:l", _S),
    (50, 40): _m("queue.delete", "reserved_1:s queue:n if_unused:b if_empty:b no_wait:b", _C, (50, 41)),
    (50, 41): _m("queue.delete-ok", "message_count:l", _S),
    (50, 50): _m("queue.unbind", "reserved_1:s queue:n exchange:n routing_key:n arguments:F", _C, (50, 51)),
    (50, 51): _m("queue.unbind-ok", "", _S),
    # basic (60)
    (60, 10): _m("basic.qos", "prefetch_size:l prefetch_count:s global:b", _C, (60, 11)),
    (60, 11): _m("basic.qos-ok", "", _S),
    (60, 20): _m(
        "basic.consume",
        "reserved_1:s queue:n consumer_tag:n no_local:b no_ack:b exclusive:b no_wait:b arguments:F",
        _C,
        (60, 21),
    ),
    (60, 21): _m("basic.consume-ok", "consumer_tag:n", _S),
    (60, 30): _m("basic.cancel", "consumer_tag:n no_wait:b", _B, (60, 31)),
    (60, 31): _m("basic.cancel-ok", "consumer_tag:n", _B),
    (60, 40): _m("basic.publish", "reserved_1:s exchange:n routing_key:n mandatory:b immediate:b", _C),
    (60, 50): _m("basic.return", "reply_code:s reply_text:n exchange:n routing_key:n", _S),
    (60, 60): _m("basic.deliver", "consumer_tag:n delivery_tag:L redelivered:b exchange:n routing_key:n", _S),
    (60, 70): _m("basic.get", "reserved_1:s queue:n no_ack:b", _C, (60, 71), (60, 72)),
    (60, 71): _m("basic.get-ok", "delivery_tag:L redelivered:b exchange:n routing_key:n message_count:l", _S),
    (60, 72): _m("basic.get-empty", "reserved_1:n", _S),
    (60, 80): _m("basic.ack", "delivery_tag:L multiple:b", _B),
    (60, 90): _m("basic.reject", "delivery_tag:L requeue:b", _C),
    (60, 100): _m("basic.recover-async", "requeue:b", _C),
    (60, 110): _m("basic.recover", "requeue:b", _C, (60, 111)),
    (60, 111): _m("basic.recover-ok", "", _S),
    (60, 120): _m("basic.nack", "delivery_tag:L multiple:b requeue:b", _B),
    # confirm (85)
    (85, 10): _m("confirm.select", "no_wait:b", _C, (85, 11)),
    (85, 11): _m("confirm.select-ok", "", _S),
    # tx (90)
    (90, 10): _m("tx.select", "", _C, (90, 11)),
    (90, 11): _m("tx.select-ok", "", _S),
    (90, 20): _m("tx.commit", "", _C, (90, 21)),
    (90, 21): _m("tx.commit-ok", "", _S),
    (90, 30): _m("tx.rollback", "", _C, (90, 31)),
    (90, 31): _m("tx.rollback-ok", "", _S),
}

CLOSE_METHODS = frozenset(((10, 50), (20, 40)))

# Basic content-header properties, from the highest flag bit down (spec: basic class "properties").
BASIC_PROPERTIES: tuple[tuple[str, str], ...] = (
    ("content_type", "n"), ("content_encoding", "n"), ("headers", "F"), ("delivery_mode", "o"),
    ("priority", "o"), ("correlation_id", "n"), ("reply_to", "n"), ("expiration", "n"), ("message_id", "n"),
    ("timestamp", "t"), ("type", "n"), ("user_id", "n"), ("app_id", "n"), ("cluster_id", "n"),
)  # fmt: skip
