"""AMQP 0-9-1: framing, method decoding, Pixie's pairing (sync by reply, async one row each),
inference and robustness. Frames are encoded by pika's own marshalling (pika.frame / pika.spec),
the bytes a pika client puts on the wire; the server's frames use the same encoders."""

from __future__ import annotations

import json
import struct

import pika.frame as pf
import pika.spec as ps
from hypothesis import given, settings
from hypothesis import strategies as st

from cluster.pem.data_stream import DataStream
from cluster.pem.protocols.amqp import AmqpStitcher, infer
from cluster.pem.protocols.amqp.frames import PROTOCOL_HEADER
from cluster.pem.protocols.http.infer import MessageKind
from cluster.pem.protocols.http.infer import infer as infer_http
from cluster.pem.protocols.mysql.infer import infer as infer_mysql
from cluster.pem.protocols.pgsql.infer import infer as infer_pgsql
from cluster.pem.protocols.redis.infer import infer as infer_redis
from cluster.schemas import ROLE_CLIENT, ROLE_SERVER

HEARTBEAT = b"\x08\x00\x00\x00\x00\x00\x00\xce"


def m(channel: int, method) -> bytes:
    return pf.Method(channel, method).marshal()


def content(channel: int, body: bytes, **props) -> bytes:
    return pf.Header(channel, len(body), ps.BasicProperties(**props)).marshal() + pf.Body(channel, body).marshal()


HANDSHAKE = [
    ("c", PROTOCOL_HEADER),
    ("s", m(0, ps.Connection.Start(server_properties={"product": "RabbitMQ", "capabilities": {"basic.nack": True}},
                                   mechanisms=b"PLAIN AMQPLAIN", locales=b"en_US"))),
    ("c", m(0, ps.Connection.StartOk(client_properties={"product": "Pika"}, mechanism="PLAIN",
                                     response=b"\0guest\0s3cret-pw"))),
    ("s", m(0, ps.Connection.Tune(2047, 131072, 60))),
    ("c", m(0, ps.Connection.TuneOk(2047, 131072, 60)) + m(0, ps.Connection.Open("/"))),
    ("s", m(0, ps.Connection.OpenOk())),
    ("c", m(1, ps.Channel.Open())),
    ("s", m(1, ps.Channel.OpenOk())),
]  # fmt: skip


def run(events, role: int = ROLE_CLIENT, st_: AmqpStitcher | None = None, max_bytes: int = 1 << 20):
    """Feed ('c'|'s', bytes) in order (timestamps 1, 2, ...), processing after each like the tracker."""
    st_ = st_ or AmqpStitcher(body_cap=16)
    client, server = DataStream(max_bytes), DataStream(max_bytes)
    egress, ingress = (client, server) if role == ROLE_CLIENT else (server, client)
    out = []
    for ts, (side, data) in enumerate(events, 1):
        (client if side == "c" else server).append(ts, data)
        out += st_.process(role, egress, ingress)
    return out, st_


def brief(r: dict) -> tuple:
    return (r["frame_type"], r["channel"], r["req_class_id"], r["req_method_id"], r["resp_class_id"],
            r["resp_method_id"])  # fmt: skip


def test_handshake_pairs_as_pixie_with_client_frames_on_the_request_side():
    recs, st_ = run(HANDSHAKE)
    assert [brief(r) for r in recs] == [
        (1, 0, 10, 11, 10, 10),  # start-ok / start: req is the client's frame, as in Pixie's test
        (1, 0, 10, 31, 10, 30),  # tune-ok / tune
        (1, 0, 10, 40, 10, 41),  # open / open-ok
        (1, 1, 20, 10, 20, 11),  # channel.open / open-ok
    ]
    start = recs[0]
    assert (start["time_"], start["latency"]) == (3, 1)  # the later of the two frames
    server_props = json.loads(start["resp_msg"])
    assert server_props["server_properties"] == {"product": "RabbitMQ", "capabilities": {"basic.nack": True}}
    assert server_props["mechanisms"] == "PLAIN AMQPLAIN" and server_props["version_minor"] == 9
    start_ok = json.loads(start["req_msg"])
    assert start_ok == {
        "client_properties": {"product": "Pika"},
        "mechanism": "PLAIN",
        "response": "<16 bytes>",
        "locale": "en_US",
    }
    assert json.loads(recs[1]["req_msg"]) == {"channel_max": 2047, "frame_max": 131072, "heartbeat": 60}
    assert all("s3cret" not in r["req_msg"] + r["resp_msg"] for r in recs)  # credentials never reach a table
    assert (st_.parse_errors, st_.unmatched_responses, st_.internal_errors) == (0, 0, 0)


def test_publish_header_body_deliver_and_acks_are_one_row_each():
    recs, st_ = run([
        *HANDSHAKE,
        ("c", m(1, ps.Queue.Declare(queue="jobs", durable=True))),
        ("s", m(1, ps.Queue.DeclareOk("jobs", 0, 0))),
        ("c", m(1, ps.Basic.Publish(exchange="", routing_key="jobs"))
         + content(1, b"hello world, a long body", content_type="text/plain", delivery_mode=2, headers={"k": 1})),
        ("c", m(1, ps.Basic.Consume(queue="jobs", consumer_tag="ctag1"))),
        ("s", m(1, ps.Basic.ConsumeOk("ctag1"))),
        ("s", m(1, ps.Basic.Deliver("ctag1", 1, False, "", "jobs")) + content(1, b"hi")),
        ("c", m(1, ps.Basic.Ack(delivery_tag=1))),
        ("s", HEARTBEAT),
    ])  # fmt: skip
    assert st_.parse_errors == 0
    recs = recs[4:]
    assert [brief(r) for r in recs] == [
        (1, 1, 50, 10, 50, 11),  # queue.declare / declare-ok
        (1, 1, 60, 40, 0, 0),  # basic.publish: async, resp empty
        (2, 1, 60, 0, 0, 0),  # its content header (class 60, method 0)
        (3, 1, 0, 0, 0, 0),  # its body
        (1, 1, 60, 20, 60, 21),  # basic.consume / consume-ok
        (1, 1, 0, 0, 60, 60),  # basic.deliver from the server: req empty
        (2, 1, 0, 0, 60, 0),
        (3, 1, 0, 0, 0, 0),
        (1, 1, 60, 80, 0, 0),  # basic.ack
        (8, 0, 0, 0, 0, 0),  # heartbeat
    ]
    assert json.loads(recs[0]["req_msg"])["durable"] is True
    assert json.loads(recs[0]["resp_msg"]) == {"queue": "jobs", "message_count": 0, "consumer_count": 0}
    assert json.loads(recs[1]["req_msg"])["routing_key"] == "jobs"
    header = json.loads(recs[2]["req_msg"])
    assert header["body_size"] == 24 and header["content_type"] == "text/plain" and header["delivery_mode"] == 2
    assert header["headers"] == {"k": 1}
    assert json.loads(recs[3]["req_msg"]) == {"body_size": 24, "body": "hello world, a l"}  # body_cap=16
    assert json.loads(recs[5]["resp_msg"])["consumer_tag"] == "ctag1" and recs[5]["req_msg"] == ""
    assert json.loads(recs[7]["resp_msg"]) == {"body_size": 2, "body": "hi"}
    assert all(r["latency"] == 0 for i, r in enumerate(recs) if i not in (0, 4))


def test_server_close_answers_the_waiting_method_then_waits_for_close_ok():
    recs, st_ = run([
        *HANDSHAKE,
        ("c", m(1, ps.Queue.Declare(queue="missing", passive=True))),
        ("s", m(1, ps.Channel.Close(404, "NOT_FOUND - no queue 'missing'", 50, 10))),
        ("c", m(1, ps.Channel.CloseOk())),
        ("c", m(2, ps.Channel.Open())),
        ("s", m(2, ps.Channel.OpenOk())),
    ])  # fmt: skip
    assert [brief(r) for r in recs[4:]] == [(1, 1, 50, 10, 20, 40), (1, 1, 20, 41, 20, 40), (1, 2, 20, 10, 20, 11)]
    assert json.loads(recs[4]["resp_msg"])["reply_code"] == 404
    assert st_.unmatched_responses == 0


def test_get_ok_get_empty_and_no_wait():
    recs, st_ = run([
        *HANDSHAKE,
        ("c", m(1, ps.Basic.Get(queue="q"))), ("s", m(1, ps.Basic.GetEmpty())),
        ("c", m(1, ps.Basic.Get(queue="q"))), ("s", m(1, ps.Basic.GetOk(7, False, "", "q", 0)) + content(1, b"x")),
        ("c", m(1, ps.Queue.Bind(queue="q", exchange="ex", routing_key="rk", nowait=True))),
        ("c", m(1, ps.Confirm.Select())), ("s", m(1, ps.Confirm.SelectOk())),
    ])  # fmt: skip
    assert [brief(r) for r in recs[4:]] == [
        (1, 1, 60, 70, 60, 72),
        (1, 1, 60, 70, 60, 71),
        (2, 1, 0, 0, 60, 0),
        (3, 1, 0, 0, 0, 0),
        (1, 1, 50, 20, 0, 0),  # no_wait: nothing will answer it, so it is a row of its own
        (1, 1, 85, 10, 85, 11),
    ]
    assert st_._waiting_count == 0


def test_server_side_role_gives_the_same_records():
    client_side, _ = run(HANDSHAKE)
    server_side, _ = run(HANDSHAKE, role=ROLE_SERVER)
    assert server_side == client_side


def test_every_split_point_gives_the_same_records():
    client = (
        PROTOCOL_HEADER
        + m(0, ps.Connection.StartOk(client_properties={}, response=b"\0u\0p"))
        + m(1, ps.Basic.Publish(exchange="x", routing_key="r"))
        + content(1, b"payload")
    )
    server = m(0, ps.Connection.Start(server_properties={"a": "b"}))
    whole, _ = run([("s", server), ("c", client)])
    assert len(whole) == 4
    for i in range(len(client) + 1):
        recs, st_ = run([("s", server), ("c", client[:i]), ("c", client[i:])])
        assert [brief(r) for r in recs] == [brief(r) for r in whole], i
        assert st_.parse_errors == 0


def test_garbage_is_counted_and_parsing_recovers():
    frame = m(1, ps.Basic.Publish(exchange="", routing_key="after-garbage"))
    recs, st_ = run([("c", PROTOCOL_HEADER + b"\x01\x02 this is not amqp \xff\xce" + frame)])
    assert [json.loads(r["req_msg"])["routing_key"] for r in recs] == ["after-garbage"]
    assert st_.parse_errors == 1 and st_.internal_errors == 0


def test_undecodable_method_frame_is_skipped_and_counted():
    bad = b"\x01\x00\x01\x00\x00\x00\x04\x00\x63\x00\x01\xce"  # class 99: unknown
    short = b"\x01\x00\x01\x00\x00\x00\x05\x00\x3c\x00\x28\x00\xce"  # basic.publish cut short
    good = m(1, ps.Basic.Ack(delivery_tag=3))
    recs, st_ = run([("c", bad + short + good)])
    assert [brief(r) for r in recs] == [(1, 1, 60, 80, 0, 0)]
    assert st_.parse_errors == 2


def test_overflow_resynchronises_on_the_next_whole_frame():
    big = pf.Body(1, b"x" * 3000).marshal()
    after = m(1, ps.Basic.Ack(delivery_tag=9))
    recs, st_ = run([("c", big[:1500]), ("c", big[1500:2500]), ("c", b"tail" + after)], max_bytes=2048)
    assert [brief(r) for r in recs] == [(1, 1, 60, 80, 0, 0)]
    assert st_.internal_errors == 0


def test_close_counts_truncated_and_unanswered():
    st_ = AmqpStitcher()
    client, server = DataStream(), DataStream()
    client.append(1, m(1, ps.Queue.Declare(queue="q")) + m(1, ps.Basic.Ack(delivery_tag=1))[:5])
    assert st_.process(ROLE_CLIENT, client, server) == []
    assert st_.on_close(ROLE_CLIENT, client, server) == []
    assert st_.dropped_requests == 1 and st_.parse_errors == 1


def test_pending_methods_are_bounded():
    st_ = AmqpStitcher(max_pending=8)
    recs, _ = run([("c", m(1, ps.Queue.Declare(queue=f"q{i}"))) for i in range(50)], st_=st_)
    assert recs == [] and st_._waiting_count == 8 and st_.dropped_requests == 42


def test_infer_claims_only_amqp():
    assert infer(PROTOCOL_HEADER) is MessageKind.REQUEST
    assert (
        infer(memoryview(PROTOCOL_HEADER + m(0, ps.Connection.StartOk(client_properties={}, response=b"x"))))
        is MessageKind.REQUEST
    )
    assert infer(m(0, ps.Connection.Start())) is MessageKind.RESPONSE  # seen mid-stream: from the server
    assert infer(m(1, ps.Basic.Deliver("t", 1, False, "", "q"))) is MessageKind.RESPONSE
    assert infer(m(1, ps.Basic.Publish(exchange="", routing_key="q"))) is MessageKind.REQUEST
    not_amqp = (
        b"AMQP\x00\x00\x09\x00",
        b"AMQP",
        HEARTBEAT,
        m(1, ps.Basic.Ack(delivery_tag=1))[:-1] + b"\x00",
        b"\x01\x00\x01\x00\x00\x00\x04\x00\x63\x00\x01\xce",
        b"GET / HTTP/1.1\r\n",
        b"*1\r\n$4\r\nPING\r\n",
        b"\x10\x0c\x00\x04MQTT\x04\x02\x00\x3c",
        b"",
    )
    for data in not_amqp:
        assert infer(data) is None, data
    # ...and the protocols tried before AMQP leave its first bytes alone.
    for other in (infer_http, infer_mysql, infer_pgsql, infer_redis):
        assert other(PROTOCOL_HEADER) is None and other(m(0, ps.Connection.Start())) is None


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.booleans(), st.binary(max_size=48)), max_size=12), st.integers(0, 11))
def test_noise_and_mutations_never_raise_and_stay_bounded(chunks, cut):
    frames = [data for _, data in HANDSHAKE]
    events = [("c" if is_c else "s", data) for is_c, data in chunks]
    events.insert(len(events) // 2, ("c", frames[cut % len(frames)]))
    st_ = AmqpStitcher(max_pending=4)
    recs, st_ = run(events, st_=st_, max_bytes=4096)
    st_.on_close(ROLE_CLIENT, DataStream(), DataStream())
    assert st_.internal_errors == 0 and st_._waiting_count <= 4
    assert all(isinstance(r["req_msg"], str) and isinstance(r["resp_msg"], str) for r in recs)


@settings(max_examples=200, deadline=None)
@given(st.integers(0, 10_000), st.integers(0, 255))
def test_flipping_any_byte_of_a_session_never_raises(where, value):
    data = bytearray(b"".join(d for side, d in HANDSHAKE if side == "c"))
    data[where % len(data)] = value
    _recs, st_ = run([("s", HANDSHAKE[1][1]), ("c", bytes(data)), ("s", HANDSHAKE[3][1])])
    assert st_.internal_errors == 0


def test_truncation_at_every_byte_never_raises():
    data = b"".join(d for _, d in HANDSHAKE)
    for i in range(len(data)):
        _recs, st_ = run([("c", data[:i])])
        st_.on_close(ROLE_CLIENT, DataStream(), DataStream())
        assert st_.internal_errors == 0


def test_frame_size_larger_than_the_stream_can_hold_is_garbage():
    huge = b"\x03\x00\x01" + struct.pack(">I", 5_000_000) + b"x" * 64
    recs, st_ = run([("c", huge + m(1, ps.Basic.Ack(delivery_tag=1)))])
    assert [brief(r) for r in recs] == [(1, 1, 60, 80, 0, 0)] and st_.parse_errors == 1
