"""MQTT 3.1.1 and 5.0: fixed and variable headers, properties, pairing by packet identifier in both
directions, inference and robustness. Packets are written by hand from the MQTT 3.1.1 and 5.0
specifications (test data); MQTT 5 property blocks are packed by paho-mqtt's own Properties class."""

from __future__ import annotations

import json
import struct

from hypothesis import given, settings
from hypothesis import strategies as st
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from cluster.pem.data_stream import DataStream
from cluster.pem.protocols.amqp.infer import infer as infer_amqp
from cluster.pem.protocols.http.infer import MessageKind
from cluster.pem.protocols.http.infer import infer as infer_http
from cluster.pem.protocols.mqtt import MqttStitcher, infer
from cluster.pem.protocols.mysql.infer import infer as infer_mysql
from cluster.pem.protocols.pgsql.infer import infer as infer_pgsql
from cluster.pem.protocols.redis.infer import infer as infer_redis
from cluster.schemas import ROLE_CLIENT, ROLE_SERVER


def varint(n: int) -> bytes:
    out = bytearray()
    while True:
        n, b = n >> 7, n & 0x7F
        out.append(b | 0x80 if n else b)
        if not n:
            return bytes(out)


def s(x: str | bytes) -> bytes:
    b = x.encode() if isinstance(x, str) else x
    return struct.pack(">H", len(b)) + b


def pkt(ptype: int, flags: int, body: bytes) -> bytes:
    return bytes([ptype << 4 | flags]) + varint(len(body)) + body


def props(kind: int, **values) -> bytes:
    """An MQTT 5 property block packed by paho-mqtt."""
    p = Properties(kind)
    for k, v in values.items():
        setattr(p, k, v)
    return p.pack()


NO_PROPS = b"\x00"
pid = struct.Struct(">H").pack


def connect(level: int, client_id: str = "cid", user: str = "", password: str = "", p: bytes = NO_PROPS) -> bytes:
    flags = 0x02 | (0x80 if user else 0) | (0x40 if password else 0)
    body = s("MQTT") + bytes([level, flags]) + pid(30) + (p if level == 5 else b"") + s(client_id)
    return pkt(1, 0, body + (s(user) if user else b"") + (s(password) if password else b""))


def run(events, role: int = ROLE_CLIENT, st_: MqttStitcher | None = None, max_bytes: int = 1 << 20):
    """Feed ('c'|'s', bytes) in order (timestamps 1, 2, ...), processing after each like the tracker."""
    st_ = st_ or MqttStitcher(body_cap=16)
    client, server = DataStream(max_bytes), DataStream(max_bytes)
    egress, ingress = (client, server) if role == ROLE_CLIENT else (server, client)
    out = []
    for ts, (side, data) in enumerate(events, 1):
        (client if side == "c" else server).append(ts, data)
        out += st_.process(role, egress, ingress)
    return out, st_


def brief(r: dict) -> tuple[str, str]:
    return r["req_control_packet_type"], r["resp_control_packet_type"]


def untimed(r: dict) -> dict:
    return {k: v for k, v in r.items() if k not in ("time_", "latency")}


def j(r: dict, col: str) -> dict:
    return json.loads(r[col])


V5_SESSION = [
    ("c", connect(5, "sensor-1", "alice", "hunter2",
                  props(PacketTypes.CONNECT, SessionExpiryInterval=60, UserProperty=[("a", "1"), ("b", "2")]))),
    ("s", pkt(2, 0, b"\x00\x00" + props(PacketTypes.CONNACK, ReceiveMaximum=20, TopicAliasMaximum=10))),
    ("c", pkt(8, 2, pid(1) + NO_PROPS + s("cmd/#") + b"\x01" + s("cfg") + b"\x26")),
    ("s", pkt(9, 0, pid(1) + NO_PROPS + b"\x01\x02")),
    ("c", pkt(3, 0, s("t/0") + props(PacketTypes.PUBLISH, ContentType="text/plain") + b"qos zero")),
    ("c", pkt(3, 2, s("t/1") + pid(2) + NO_PROPS + b"qos one")),
    ("s", pkt(4, 0, pid(2))),
    ("c", pkt(3, 4 | 1, s("t/2") + pid(3) + NO_PROPS + b"qos two, a long message")),
    ("s", pkt(5, 0, pid(3))),
    ("c", pkt(6, 2, pid(3))),
    ("s", pkt(7, 0, pid(3))),
    ("c", pkt(10, 2, pid(4) + NO_PROPS + s("cfg"))),
    ("s", pkt(11, 0, pid(4) + NO_PROPS + b"\x00")),
    ("c", b"\xc0\x00"),
    ("s", b"\xd0\x00"),
    ("c", pkt(14, 0, b"\x00" + NO_PROPS)),
]  # fmt: skip


def test_v5_session_pairs_every_packet_with_its_ack():
    recs, st_ = run(V5_SESSION)
    assert [brief(r) for r in recs] == [
        ("CONNECT", "CONNACK"), ("SUBSCRIBE", "SUBACK"), ("PUBLISH", ""), ("PUBLISH", "PUBACK"),
        ("PUBLISH", "PUBREC"), ("PUBREL", "PUBCOMP"), ("UNSUBSCRIBE", "UNSUBACK"), ("PINGREQ", "PINGRESP"),
        ("DISCONNECT", ""),
    ]  # fmt: skip
    con = recs[0]
    assert j(con, "req_header_fields") == {
        "clean_start": 1, "keep_alive": 30, "password_flag": 1, "protocol_level": 5, "remaining_length": 56,
        "username_flag": 1, "will_flag": 0, "will_qos": 0, "will_retain": 0}  # fmt: skip
    assert j(con, "req_properties") == {"session_expiry_interval": "60", "user-properties": "{a:1}, {b:2}"}
    assert j(con, "req_payload") == {"client_id": "sensor-1", "username": "alice"}
    assert "hunter2" not in "".join(str(v) for v in con.values())  # the password is never decoded
    assert j(con, "resp_header_fields") == {"reason_code": 0, "remaining_length": 9, "session_present": 0}
    assert j(con, "resp_properties") == {"receive_maximum": "20", "topic_alias_maximum": "10"}
    assert (con["time_"], con["latency"]) == (2, 1)
    sub = recs[1]
    assert j(sub, "req_payload")["topic_filter"] == "cmd/#, cfg"
    assert j(sub, "req_payload")["subscription_options"] == (
        '{"maximum_qos":1,"no_local":0,"retain_as_published":0,"retain_handling":0}, '
        '{"maximum_qos":2,"no_local":1,"retain_as_published":0,"retain_handling":2}'
    )
    assert j(sub, "resp_payload") == {"reason_code": "1, 2"}
    q0, q1, q2 = recs[2:5]
    assert j(q0, "req_payload") == {"publish_message": "qos zero", "topic_name": "t/0"}
    assert j(q0, "req_properties") == {"content_type": "text/plain"} and q0["resp_header_fields"] == ""
    assert (q0["time_"], q0["latency"]) == (5, 0)
    assert j(q1, "req_header_fields") == {
        "dup": 0,
        "packet_identifier": 2,
        "qos": 1,
        "remaining_length": 15,
        "retain": 0,
    }
    assert j(q2, "req_header_fields")["retain"] == 1
    assert j(q2, "req_payload")["publish_message"] == "qos two, a long "  # body_cap=16
    assert j(q2, "req_header_fields")["publish_message_size"] == 23
    assert j(recs[6], "resp_payload") == {"reason_code": "0"}
    assert j(recs[8], "req_header_fields") == {"reason_code": 0, "remaining_length": 2}
    assert (st_.parse_errors, st_.unmatched_responses, st_.internal_errors) == (0, 0, 0)


def test_v311_session_has_no_properties():
    recs, st_ = run([
        ("c", connect(4, "c311")), ("s", pkt(2, 0, b"\x01\x00")),
        ("c", pkt(8, 2, pid(9) + s("a/b") + b"\x00")), ("s", pkt(9, 0, pid(9) + b"\x00")),
        ("c", pkt(3, 2, s("a/b") + pid(10) + b"{\"t\": 21.5}")), ("s", pkt(4, 0, pid(10))),
        ("c", pkt(10, 2, pid(11) + s("a/b"))), ("s", pkt(11, 0, pid(11))),
        ("c", b"\xe0\x00"),
    ])  # fmt: skip
    assert [brief(r) for r in recs] == [
        ("CONNECT", "CONNACK"),
        ("SUBSCRIBE", "SUBACK"),
        ("PUBLISH", "PUBACK"),
        ("UNSUBSCRIBE", "UNSUBACK"),
        ("DISCONNECT", ""),
    ]
    assert j(recs[0], "req_header_fields")["protocol_level"] == 4
    assert j(recs[0], "resp_header_fields") == {"reason_code": 0, "remaining_length": 2, "session_present": 1}
    assert j(recs[2], "req_payload") == {"publish_message": '{"t": 21.5}', "topic_name": "a/b"}
    assert all(r["req_properties"] == "{}" for r in recs)
    assert j(recs[3], "resp_payload") == {}  # a 3.1.1 UNSUBACK carries no reason codes
    assert (st_.parse_errors, st_.unmatched_responses) == (0, 0)


def test_broker_publish_to_a_subscriber_is_acked_by_the_client():
    recs, st_ = run([
        ("c", connect(4)), ("s", pkt(2, 0, b"\x00\x00")),
        ("s", pkt(3, 2, s("news") + pid(2) + b"hello")),  # the broker's packet id 2 ...
        ("c", pkt(3, 2, s("news") + pid(2) + b"mine")),  # ... and the client's own id 2: separate spaces
        ("c", pkt(4, 0, pid(2))),
        ("s", pkt(4, 0, pid(2))),
        ("s", pkt(3, 4, s("news") + pid(5) + b"q2")), ("c", pkt(5, 0, pid(5))),
        ("s", pkt(6, 2, pid(5))), ("c", pkt(7, 0, pid(5))),
    ])  # fmt: skip
    got = [(brief(r), j(r, "req_payload").get("publish_message"), r["latency"]) for r in recs[1:]]
    assert got == [
        (("PUBLISH", "PUBACK"), "hello", 2),
        (("PUBLISH", "PUBACK"), "mine", 2),
        (("PUBLISH", "PUBREC"), "q2", 1),
        (("PUBREL", "PUBCOMP"), None, 1),
    ]
    assert st_.unmatched_responses == 0


def test_server_side_role_gives_the_same_records():
    client_side, _ = run(V5_SESSION)
    server_side, _ = run(V5_SESSION, role=ROLE_SERVER)
    assert server_side == client_side


def test_every_split_point_gives_the_same_records():
    client = b"".join(d for side, d in V5_SESSION[:6] if side == "c")
    server = b"".join(d for side, d in V5_SESSION[:6] if side == "s")
    whole, _ = run([("c", client), ("s", server)])
    assert len(whole) == 3
    for i in range(len(client) + 1):
        recs, st_ = run([("c", client[:i]), ("c", client[i:]), ("s", server)])
        assert [untimed(r) for r in recs] == [untimed(r) for r in whole], i
        assert st_.parse_errors == 0
    for i in range(len(server) + 1):
        recs, _ = run([("c", client), ("s", server[:i]), ("s", server[i:])])
        assert [brief(r) for r in recs] == [brief(r) for r in whole], i


def test_unmatched_acks_are_counted():
    recs, st_ = run([("c", connect(4)), ("s", pkt(2, 0, b"\x00\x00")), ("s", pkt(4, 0, pid(77))), ("s", b"\xd0\x00")])
    assert [brief(r) for r in recs] == [("CONNECT", "CONNACK")] and st_.unmatched_responses == 2


def test_malformed_packet_body_is_skipped_and_counted():
    empty_subscribe = pkt(8, 2, pid(1))  # no topic filter: a protocol violation
    bad_property = pkt(3, 0, s("t") + b"\x02\x7f\x00" + b"x")  # property 0x7f does not exist
    recs, st_ = run(
        [
            ("c", connect(5)),
            ("s", pkt(2, 0, b"\x00\x00\x00")),
            ("c", empty_subscribe + bad_property + b"\xc0\x00"),
            ("s", b"\xd0\x00"),
        ]
    )
    assert [brief(r) for r in recs] == [("CONNECT", "CONNACK"), ("PINGREQ", "PINGRESP")]
    assert st_.parse_errors == 2 and st_.internal_errors == 0


def test_invalid_fixed_header_drops_the_buffer_and_resumes_with_the_next_write():
    recs, st_ = run(
        [
            ("c", connect(4)),
            ("s", pkt(2, 0, b"\x00\x00")),
            ("c", b"\x00garbage\xc0\x00"),
            ("c", b"\xc0\x00"),
            ("s", b"\xd0\x00"),
        ]
    )
    assert [brief(r) for r in recs] == [("CONNECT", "CONNACK"), ("PINGREQ", "PINGRESP")]
    assert st_.parse_errors == 1


def test_stream_overflow_resynchronises():
    big = pkt(3, 0, s("t") + b"x" * 3000)
    recs, st_ = run(
        [
            ("c", connect(4)),
            ("s", pkt(2, 0, b"\x00\x00")),
            ("c", big[:1500]),
            ("c", big[1500:2500]),
            ("c", b"\xc0\x00"),
            ("s", b"\xd0\x00"),
        ],
        max_bytes=2048,
    )
    assert brief(recs[-1]) == ("PINGREQ", "PINGRESP") and st_.internal_errors == 0


def test_close_counts_truncated_and_unanswered():
    st_ = MqttStitcher()
    client, server = DataStream(), DataStream()
    client.append(1, connect(4) + pkt(3, 2, s("t") + pid(1) + b"x") + b"\x30\x10ab")
    assert st_.process(ROLE_CLIENT, client, server) == []
    assert st_.on_close(ROLE_CLIENT, client, server) == []
    assert st_.dropped_requests == 2 and st_.parse_errors == 1


def test_pending_requests_are_bounded():
    st_ = MqttStitcher(max_pending=8)
    recs, _ = run([("c", connect(4))] + [("c", pkt(3, 2, s("t") + pid(i) + b"m")) for i in range(1, 51)], st_=st_)
    assert recs == [] and st_._waiting_count == 8 and st_.dropped_requests == 43


def test_infer_claims_only_a_connect():
    assert infer(connect(4)) is MessageKind.REQUEST
    assert infer(memoryview(connect(5))) is MessageKind.REQUEST
    assert infer(pkt(1, 0, s("MQIsdp") + b"\x03\x02" + pid(10) + s("old"))) is MessageKind.REQUEST
    not_mqtt = (
        b"\xc0\x00",
        b"\x20\x02\x00\x00",
        pkt(3, 0, s("t") + b"m"),
        pkt(1, 0, s("MQTT") + b"\x07\x02"),
        pkt(1, 0, s("HTTP") + b"\x04\x02"),
        b"\x10",
        b"\x10\xff\xff\xff\xff\xff",
        b"GET / HTTP/1.1\r\n",
        b"",
    )
    for data in not_mqtt:
        assert infer(data) is None, data
    for other in (infer_http, infer_mysql, infer_pgsql, infer_redis, infer_amqp):
        assert other(connect(4)) is None and other(connect(5)) is None


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.booleans(), st.binary(max_size=48)), max_size=12), st.integers(0, 15))
def test_noise_and_mutations_never_raise_and_stay_bounded(chunks, which):
    events = [("c" if is_c else "s", data) for is_c, data in chunks]
    events.insert(0, ("c", connect(5)))
    events.insert(len(events) // 2, V5_SESSION[which])
    st_ = MqttStitcher(max_pending=4)
    recs, st_ = run(events, st_=st_, max_bytes=4096)
    st_.on_close(ROLE_CLIENT, DataStream(), DataStream())
    assert st_.internal_errors == 0 and st_._waiting_count <= 4
    assert all(isinstance(r["req_payload"], str) for r in recs)


@settings(max_examples=200, deadline=None)
@given(st.integers(0, 10_000), st.integers(0, 255))
def test_flipping_any_byte_of_a_session_never_raises(where, value):
    data = bytearray(b"".join(d for side, d in V5_SESSION if side == "c"))
    data[where % len(data)] = value
    _, st_ = run([("c", bytes(data)), ("s", b"".join(d for side, d in V5_SESSION if side == "s"))])
    assert st_.internal_errors == 0


def test_truncation_at_every_byte_never_raises():
    data = b"".join(d for _, d in V5_SESSION)
    for i in range(len(data)):
        _, st_ = run([("c", data[:i])])
        st_.on_close(ROLE_CLIENT, DataStream(), DataStream())
        assert st_.internal_errors == 0


# ---- through the connection tracker: both protocols inferred from their first bytes ----


def test_tracker_routes_amqp_and_mqtt_to_their_tables():
    import pika.frame as pf
    import pika.spec as ps

    from tests.unit.test_redis_protocol import _tracker_run
    from tests.util import as_rows

    t = _tracker_run([
        (1, 3, "out", b"AMQP\x00\x00\x09\x01"),
        (2, 3, "in", pf.Method(0, ps.Connection.Start(server_properties={})).marshal()),
        (3, 3, "out", pf.Method(0, ps.Connection.StartOk(client_properties={}, response=b"\0u\0p")).marshal()),
        (1, 4, "out", connect(5, "tracker")), (2, 4, "in", pkt(2, 0, b"\x00\x00\x00")),
        (3, 4, "out", pkt(3, 0, s("room/1") + NO_PROPS + b"21.5")),
    ])  # fmt: skip
    amqp = as_rows(t.store.scan("amqp_events", None, None))
    mqtt = as_rows(t.store.scan("mqtt_events", None, None))
    assert [(r["req_method_id"], r["resp_method_id"], r["trace_role"], r["latency"]) for r in amqp] == [(11, 10, 1, 1)]
    assert [(brief(r), r["trace_role"], r["remote_port"]) for r in mqtt] == [
        (("CONNECT", "CONNACK"), 1, 6379),
        (("PUBLISH", ""), 1, 6379),
    ]
    assert {c.protocol for c in t._conns.values()} == {12, 14}
    assert t.stats.parse_errors == 0
