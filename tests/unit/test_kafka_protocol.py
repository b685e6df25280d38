"""Kafka: framing, request/response headers (classic and flexible), bodies rendered as Pixie renders
them, correlation-id pairing, inference, splits at every byte, bad input and bounded buffering.

No Kafka server can be installed on these machines. The byte streams here come from the REAL client
library: kafka-python's producer and consumer run against tests/kafka_spec_server.py, a one-node
broker whose responses are built from the protocol specification (Apache Kafka's message
definitions, through kafka-python's generated message classes), and the bytes each side wrote are
recorded and replayed into the parser. Messages at versions kafka-python's clients do not send
(Produce v13, Fetch v13-v18 with topic ids) are encoded with the same generated classes. The Pixie
reference strings are those of Pixie's kafka_trace_bpf_test and stitcher_test.
"""

from __future__ import annotations

import json
import struct
import uuid
from collections import defaultdict
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from kafka import KafkaConsumer, KafkaProducer
from kafka.protocol.consumer import (
    FetchRequest,
    FetchResponse,
    JoinGroupRequest,
    JoinGroupResponse,
    SyncGroupRequest,
    SyncGroupResponse,
)
from kafka.protocol.metadata import MetadataRequest
from kafka.protocol.producer import ProduceRequest, ProduceResponse
from kafka.record.memory_records import MemoryRecordsBuilder

from cluster.pem.data_stream import DataStream
from cluster.pem.protocols import registry
from cluster.pem.protocols.http.infer import MessageKind
from cluster.pem.protocols.kafka import KafkaParser, KafkaStitcher, infer
from cluster.pem.protocols.kafka.frames import FULL_FRAME_MAX, PREFIX_MAX
from cluster.pem.protocols.kafka.wire import uuid_text
from cluster.schemas import ROLE_CLIENT, ROLE_SERVER
from tests.kafka_spec_server import build, serving

Session = dict[int, list[tuple[int, str, bytes]]]  # connection -> (ts, "c"|"s", bytes) in order
WANT = {0, 1, 2, 3, 8, 9, 10, 11, 14, 18}  # Produce .. ApiVersions: what a producer and a group consumer send


def record_session(broker_version: str, m: str) -> Session:
    """kafka-python producer (acks=all, then acks=0) and group consumer against the spec broker."""
    rec: list[tuple[int, int, str, bytes]] = []
    with serving(broker_version, rec) as port:
        boot = f"127.0.0.1:{port}"
        p = KafkaProducer(bootstrap_servers=boot, client_id=f"producer-{m}", linger_ms=0)
        for i in range(3):
            p.send(f"orders-{m}", key=b"k%d" % i, value=b"order-%d" % i).get(timeout=10)
        p.close()
        q = KafkaProducer(bootstrap_servers=boot, client_id=f"fireforget-{m}", acks=0, enable_idempotence=False)
        q.send(f"orders-{m}", value=b"no-ack").get(timeout=10)
        q.flush()
        q.close()
        c = KafkaConsumer(f"orders-{m}", bootstrap_servers=boot, client_id=f"consumer-{m}", group_id=f"g-{m}",
                          auto_offset_reset="earliest", enable_auto_commit=False,
                          consumer_timeout_ms=10000)  # fmt: skip
        got = [msg.value for _, msg in zip(range(4), c, strict=False)]
        c.commit()
        c.close()
    assert sorted(got) == [b"no-ack", b"order-0", b"order-1", b"order-2"], got
    out: Session = defaultdict(list)
    for ts, conn, side, data in rec:
        out[conn].append((ts, side, data))
    return dict(out)


@pytest.fixture(scope="module", params=["2.1", "3.9"])
def session(request: pytest.FixtureRequest) -> tuple[str, Session]:
    m = uuid.uuid4().hex[:8]
    return m, record_session(request.param, m)


def replay(chunks: list[tuple[int, str, bytes]], role: int = ROLE_CLIENT, st_: KafkaStitcher | None = None,
           close: bool = True) -> tuple[list[dict[str, Any]], KafkaStitcher]:  # fmt: skip
    """Feed one connection's chunks in order (client bytes are the client's egress), processing after each."""
    st_ = st_ or KafkaStitcher()
    client, server = DataStream(), DataStream()
    egress, ingress = (client, server) if role == ROLE_CLIENT else (server, client)
    out: list[dict[str, Any]] = []
    for ts, side, data in chunks:
        (client if side == "c" else server).append(ts, data)
        out += st_.process(role, egress, ingress)
    if close:
        out += st_.on_close(role, egress, ingress)
    return out, st_


def all_records(sess: Session, role: int = ROLE_CLIENT) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    for chunks in sess.values():
        out, st_ = replay(chunks, role)
        assert (st_.parse_errors, st_.unmatched_responses, st_.internal_errors) == (0, 0, 0)
        rows += out
    return rows


def frame(msg: Any, version: int, corr: int = 7, client_id: str | None = "console-producer") -> bytes:
    """One framed message encoded by kafka-python's spec-generated classes (request header if a request)."""
    msg.API_VERSION = version
    if msg.is_request():
        msg.with_header(correlation_id=corr, client_id=client_id)
    else:
        msg.with_header(correlation_id=corr)
    return msg.encode(header=True, framed=True)


def pair(req: bytes, resp: bytes, role: int = ROLE_CLIENT) -> tuple[list[dict[str, Any]], KafkaStitcher]:
    return replay([(100, "c", req), (250, "s", resp)], role)


def batch(value: bytes, key: bytes | None = b"k") -> bytes:
    """One v2 record batch of one record (b"hello" with key b"k": 74 bytes, the size in Pixie's tests)."""
    b = MemoryRecordsBuilder(magic=2, compression_type=0, batch_size=1 << 20)
    b.append(timestamp=1700000000000, key=key, value=value, headers=[])
    b.close()
    return bytes(b.buffer())


def produce(version: int, topic: str = "foo", acks: int = 1, records: bytes | None = None, corr: int = 7) -> bytes:
    topic_key = {"topic_id": uuid.UUID(int=0x1234)} if version >= 13 else {"name": topic}
    rec = batch(b"hello") if records is None else records
    msg = build(ProduceRequest, {"transactional_id": None, "acks": acks, "timeout_ms": 1500, "topic_data": [
        {**topic_key, "partition_data": [{"index": 0, "records": rec}]}]}, version)  # fmt: skip
    return frame(msg, version, corr)


def produce_resp(version: int, topic: str = "foo", corr: int = 7) -> bytes:
    topic_key = {"topic_id": uuid.UUID(int=0x1234)} if version >= 13 else {"name": topic}
    part = {"index": 0, "error_code": 0, "base_offset": 0, "log_append_time_ms": -1, "log_start_offset": 0,
            "record_errors": [], "error_message": None}  # fmt: skip
    msg = build(ProduceResponse, {"responses": [{**topic_key, "partition_responses": [part]}], "throttle_time_ms": 0},
                version)  # fmt: skip
    return frame(msg, version, corr)


# --- what the real client sends, against both broker versions ---------------------------------------


def test_real_client_session_every_api_paired_on_both_ends(session: tuple[str, Session]):
    m, sess = session
    client = all_records(sess)
    assert {r["req_cmd"] for r in client} >= WANT
    assert {r["client_id"] for r in client} == {f"producer-{m}", f"fireforget-{m}", f"consumer-{m}"}
    assert all(r["latency"] >= 0 and r["time_"] > 0 for r in client)
    produces = [r for r in client if r["req_cmd"] == 0 and r["client_id"] == f"producer-{m}"]
    assert [json.loads(r["resp"])["topics"][0]["partitions"][0]["base_offset"] for r in produces] == [0, 1, 2]
    for r in produces:
        size = json.loads(r["req_body"])["topics"][0]["partitions"][0]["message_set"]["size"]
        assert r["req_body"] == (
            f'{{"transactional_id":"","acks":-1,"timeout_ms":30000,"topics":[{{"name":"orders-{m}",'
            f'"partitions":[{{"index":0,"message_set":{{"size":{size}}}}}]}}]}}'
        )
    [no_ack] = [r for r in client if r["client_id"] == f"fireforget-{m}" and r["req_cmd"] == 0]
    assert no_ack["resp"] == "" and no_ack["latency"] == 0 and json.loads(no_ack["req_body"])["acks"] == 0
    fetched = sum(p["message_set"]["size"] for r in client if r["req_cmd"] == 1
                  for t in json.loads(r["resp"])["topics"] for p in t["partitions"])  # fmt: skip
    assert fetched >= sum(json.loads(r["req_body"])["topics"][0]["partitions"][0]["message_set"]["size"]
                          for r in client if r["req_cmd"] == 0)  # fmt: skip
    # The broker's side of the same bytes gives the same records.
    server = all_records({k: [(ts, s, d) for ts, s, d in v] for k, v in sess.items()}, ROLE_SERVER)
    key = lambda r: (r["time_"], r["req_cmd"], r["req_body"], r["resp"])  # noqa: E731
    assert sorted(map(key, server)) == sorted(map(key, client))


def test_every_split_point_of_a_real_session_gives_the_same_records(session: tuple[str, Session]):
    """The producer's connection (ApiVersions, Metadata, InitProducerId, Produce x3) re-chunked at
    every byte of each direction, pipelined: all requests first, then all responses."""
    _, sess = session
    producers = [v for v in sess.values() if any(b"producer-" in d for _, s, d in v if s == "c")]
    chunks = max(producers, key=lambda v: sum(len(d) for _, _, d in v))  # the one that produced
    req = b"".join(d for _, s, d in chunks if s == "c")
    resp = b"".join(d for _, s, d in chunks if s == "s")
    want, _ = replay([(1, "c", req), (2, "s", resp)])
    assert len(want) >= 5
    strip = lambda rows: [(r["req_cmd"], r["client_id"], r["req_body"], r["resp"]) for r in rows]  # noqa: E731
    for side, data in (("c", req), ("s", resp)):
        other = resp if side == "c" else req
        for k in range(1, len(data)):
            parts = [(1, side, data[:k]), (1, side, data[k:])]
            events = [*parts, (2, "s", other)] if side == "c" else [(1, "c", other), *parts]
            got, st_ = replay(events)
            assert strip(got) == strip(want), (side, k)
            assert st_.parse_errors == 0 and st_.internal_errors == 0, (side, k)


# --- Pixie's reference renderings ------------------------------------------------------------------


def test_produce_matches_pixie_and_flexible_versions_decode_alike():
    pixie_req = ('{"transactional_id":"","acks":1,"timeout_ms":1500,"topics":[{"name":"foo","partitions":'
                 '[{"index":0,"message_set":{"size":74}}]}]}')  # fmt: skip
    pixie_resp = ('{"topics":[{"name":"foo","partitions":[{"index":0,"error_code":0,"base_offset":0,'
                  '"log_append_time_ms":-1,"log_start_offset":0,"record_errors":[],"error_message":""}]}],'
                  '"throttle_time_ms":0}')  # fmt: skip
    for version in (3, 7, 8, 9, 11, 12):  # 9+: flexible (request header v2, compact strings, tagged fields)
        [rec], st_ = pair(produce(version, records=batch(b"hello")), produce_resp(version))
        assert (rec["req_cmd"], rec["client_id"], rec["req_body"], rec["resp"]) == (
            0, "console-producer", pixie_req, pixie_resp), version  # fmt: skip
        assert rec["time_"] == 100 and rec["latency"] == 150 and st_.parse_errors == 0
    [rec], _ = pair(produce(13), produce_resp(13))  # v13: topics by id
    tid = uuid_text(uuid.UUID(int=0x1234).bytes)
    assert json.loads(rec["req_body"])["topics"][0] == {
        "topic_id": tid, "name": "", "partitions": [{"index": 0, "message_set": {"size": 74}}]}  # fmt: skip
    assert json.loads(rec["resp"])["topics"][0]["topic_id"] == tid


def test_join_and_sync_group_match_pixie():
    member = "consumer-console-consumer"
    join = build(JoinGroupRequest, {"group_id": "console-consumer", "session_timeout_ms": 10000,
                                    "rebalance_timeout_ms": 300000, "member_id": member, "group_instance_id": None,
                                    "protocol_type": "consumer", "protocols": [{"name": "range", "metadata": b"\0\1"}]},
                 )  # fmt: skip
    joined = build(JoinGroupResponse, {"throttle_time_ms": 0, "error_code": 0, "generation_id": 1,
                                       "protocol_type": "consumer", "protocol_name": "range", "leader": member,
                                       "member_id": member,
                                       "members": [{"member_id": member, "group_instance_id": None,
                                                    "metadata": b"x"}]})  # fmt: skip
    [rec], _ = pair(frame(join, 7, client_id="console-consumer"), frame(joined, 7))
    assert rec["req_body"] == (
        '{"group_id":"console-consumer","session_timeout_ms":10000,"rebalance_timeout_ms":300000,"member_id":'
        '"consumer-console-consumer","group_instance_id":"","protocol_type":"consumer","protocols":[{"protocol":'
        '"range"}]}')  # fmt: skip
    assert rec["resp"] == (
        '{"throttle_time_ms":0,"error_code":0,"generation_id":1,"protocol_type":"consumer","protocol_name":"range",'
        '"leader":"consumer-console-consumer","member_id":"consumer-console-consumer","members":[{"member_id":'
        '"consumer-console-consumer","group_instance_id":""}]}')  # fmt: skip
    sync = build(SyncGroupRequest, {"group_id": "console-consumer", "generation_id": 1, "member_id": member,
                                    "group_instance_id": None, "protocol_type": "consumer", "protocol_name": "range",
                                    "assignments": [{"member_id": member, "assignment": b"abc"}]})  # fmt: skip
    synced = build(SyncGroupResponse, {"throttle_time_ms": 0, "error_code": 0, "protocol_type": "consumer",
                                       "protocol_name": "range", "assignment": b"abc"})  # fmt: skip
    for version in (5,):
        [rec], _ = pair(frame(sync, version), frame(synced, version))
        assert rec["req_body"] == (
            '{"group_id":"console-consumer","generation_id":1,"member_id":"consumer-console-consumer",'
            '"group_instance_id":"","protocol_type":"consumer","protocol_name":"range","assignments":[{"member_id":'
            '"consumer-console-consumer"}]}')  # fmt: skip
        assert rec["resp"] == ('{"throttle_time_ms":0,"error_code":0,"protocol_type":"consumer",'
                               '"protocol_name":"range"}')  # fmt: skip


def fetch_pair(version: int, records: bytes) -> tuple[bytes, bytes]:
    tkey = {"topic_id": uuid.UUID(int=0xABC)} if version >= 13 else {"topic": "foo"}
    req = build(FetchRequest, {"replica_id": -1, "max_wait_ms": 500, "min_bytes": 1, "max_bytes": 52428800,
                               "isolation_level": 0, "session_id": 0, "session_epoch": 0, "rack_id": "",
                               "topics": [{**tkey, "partitions": [{"partition": 0, "current_leader_epoch": 0,
                                           "fetch_offset": 0, "last_fetched_epoch": -1, "log_start_offset": -1,
                                           "partition_max_bytes": 1048576}]}],
                               "forgotten_topics_data": []})  # fmt: skip
    resp = build(FetchResponse, {"throttle_time_ms": 0, "error_code": 0, "session_id": 5, "responses": [
        {**tkey, "partitions": [{"partition_index": 0, "error_code": 0, "high_watermark": 1, "last_stable_offset": 1,
                                 "log_start_offset": 0, "aborted_transactions": [], "preferred_read_replica": -1,
                                 "records": records}]}]})  # fmt: skip
    return frame(req, version, client_id="console-consumer"), frame(resp, version)


@pytest.mark.parametrize("version", [4, 7, 11, 12, 13, 15, 17, 18])
def test_fetch_matches_pixie_at_every_layout(version: int):
    [rec], st_ = pair(*fetch_pair(version, batch(b"hello")))
    assert st_.parse_errors == 0
    req, resp = json.loads(rec["req_body"]), json.loads(rec["resp"])
    topic = {"topic_id": uuid_text(uuid.UUID(int=0xABC).bytes), "name": ""} if version >= 13 else {"name": "foo"}
    if version == 11:  # Pixie's kafka_trace_bpf_test expectation, byte for byte (its broker answered v11)
        assert rec["req_body"] == (
            '{"replica_id":-1,"session_id":0,"session_epoch":0,"topics":[{"name":"foo","partitions":[{"index":0,'
            '"current_leader_epoch":0,"fetch_offset":0,"last_fetched_epoch":-1,"log_start_offset":-1,'
            '"partition_max_bytes":1048576}]}],"forgotten_topics":[],"rack_id":""}')  # fmt: skip
        assert rec["resp"] == (
            '{"throttle_time_ms":0,"error_code":0,"session_id":5,"topics":[{"name":"foo","partitions":[{"index":0,'
            '"error_code":0,"high_watermark":1,"last_stable_offset":1,"log_start_offset":0,"aborted_transactions":[],'
            '"preferred_read_replica":-1,"message_set":{"size":74}}]}]}')  # fmt: skip
    assert {k: req["topics"][0][k] for k in topic} == topic and req["replica_id"] == -1
    assert {k: resp["topics"][0][k] for k in topic} == topic
    assert resp["topics"][0]["partitions"][0]["message_set"] == {"size": 74}
    assert resp["session_id"] == (5 if version >= 7 else 0)


def test_metadata_request_rendered_and_other_apis_recorded_with_empty_bodies():
    md = build(MetadataRequest, {"topics": [{"name": "foo", "topic_id": uuid.UUID(int=0)}],
                                 "allow_auto_topic_creation": True,
                                 "include_topic_authorized_operations": False})  # fmt: skip
    for version, want in ((1, '{"topics":[{"topic_id":"","name":"foo"}],"allow_auto_topic_creation":false,'
                                '"include_cluster_authorized_operations":false,'
                                '"include_topic_authorized_operations":false}'),
                          (12, '{"topics":[{"topic_id":"","name":"foo"}],"allow_auto_topic_creation":true,'
                               '"include_cluster_authorized_operations":false,'
                               '"include_topic_authorized_operations":false}')):  # fmt: skip
        st_ = KafkaStitcher()
        stream = DataStream()
        stream.append(1, frame(md, version))
        rows = st_.process(ROLE_CLIENT, stream, DataStream())
        assert rows == [] and len(st_._pending) == 1
        assert next(iter(st_._pending.values())).body == want
    # ApiVersions v3 (flexible request, v0 response header) -> recorded, empty bodies, no error.
    req = struct.pack(">hhih", 18, 3, 1, 6) + b"client\x00" + b"\x06pxtui\x061.0.0\x00"
    resp = struct.pack(">i", 1) + struct.pack(">h", 0) + b"\x01" + struct.pack(">i", 0) + b"\x00"
    [rec], st_ = pair(len(req).to_bytes(4, "big") + req, len(resp).to_bytes(4, "big") + resp)
    assert (rec["req_cmd"], rec["client_id"], rec["req_body"], rec["resp"]) == (18, "client", "", "")
    assert st_.parse_errors == 0


def test_request_header_v0_has_no_client_id():
    """ControlledShutdown v0 (a 0.8 broker to its controller) is the one request with header v0."""
    req = struct.pack(">ihhii", 12, 7, 0, 5, 1001)
    resp = struct.pack(">iihi", 10, 5, 0, 0)  # error_code, remaining_partitions (empty)
    [rec], st_ = pair(req, resp)
    assert (rec["req_cmd"], rec["client_id"], rec["req_body"], rec["resp"]) == (7, "", "", "")
    assert st_.parse_errors == 0


def test_request_header_v2_tagged_fields_are_skipped():
    """A flexible request whose header carries a tagged field (KIP-482) before its body."""
    raw = produce(9)
    size, head = struct.unpack_from(">i", raw)[0], raw[4:]
    cid_end = 8 + 2 + len("console-producer")
    assert head[cid_end] == 0  # empty tag section as kafka-python writes it
    tagged = head[:cid_end] + b"\x01\x05\x03abc" + head[cid_end + 1 :]  # one field: tag 5, 3 bytes
    [rec], st_ = pair((size + 5).to_bytes(4, "big") + tagged[: size + 5], produce_resp(9))
    assert json.loads(rec["req_body"])["topics"][0]["name"] == "foo" and st_.parse_errors == 0


# --- pairing ---------------------------------------------------------------------------------------


def test_pipelined_requests_pair_by_correlation_id_and_unanswered_ones_are_dropped():
    reqs = [produce(8, topic=f"t{i}", corr=i) for i in range(4)]
    # Request 1 is never answered (as if its response were lost); 0, 2, 3 are.
    resps = [produce_resp(8, topic=f"t{i}", corr=i) for i in (0, 2, 3)]
    rows, st_ = replay([(10, "c", b"".join(reqs)), (20, "s", b"".join(resps))], close=False)
    assert [json.loads(r["req_body"])["topics"][0]["name"] for r in rows] == ["t0", "t2", "t3"]
    assert all(json.loads(r["resp"])["topics"][0]["name"] == json.loads(r["req_body"])["topics"][0]["name"]
               for r in rows)  # fmt: skip
    assert st_.dropped_requests == 1 and not st_._pending and st_.parse_errors == 0


def test_acks_zero_produce_is_recorded_at_once_and_a_stray_response_is_resynchronised():
    rows, st_ = replay([(10, "c", produce(8, acks=0, corr=3))], close=False)
    assert len(rows) == 1 and rows[0]["resp"] == "" and rows[0]["latency"] == 0 and not st_._pending
    # A response nobody asked for: not a frame of this connection; the next real one still pairs.
    rows, st_ = replay([(10, "c", produce(8, corr=9)), (20, "s", produce_resp(8, corr=4) + produce_resp(8, corr=9))])
    assert len(rows) == 1 and json.loads(rows[0]["resp"])["topics"][0]["name"] == "foo"
    assert st_.parse_errors == 1 and st_.internal_errors == 0


def test_pending_requests_are_bounded():
    st_ = KafkaStitcher(max_pending=10)
    rows, st_ = replay([(i, "c", produce(8, acks=1, corr=i)) for i in range(50)], st_=st_, close=False)
    assert rows == [] and len(st_._pending) == 10 and st_.dropped_requests == 40


# --- inference -------------------------------------------------------------------------------------


def test_infer_claims_real_first_requests_and_nothing_else(session: tuple[str, Session]):
    _, sess = session
    for chunks in sess.values():
        first = next(d for _, s, d in chunks if s == "c")
        assert infer(first) is MessageKind.REQUEST
        assert [p.name for p in registry.PROTOCOLS if p.infer(first)] == ["KAFKA"]
        server_first = next(d for _, s, d in chunks if s == "s")
        assert infer(server_first) is None  # responses are no evidence
    others = [
        b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
        b"\x00\x00\x00\x54\x00\x03\x00\x00user\x00postgres\x00database\x00postgres\x00\x00",  # PG startup
        b"\x00\x00\x00\x08\x04\xd2\x16\x2f",  # PG SSLRequest
        b"J\x00\x00\x00\n8.0.36\x00",  # MySQL greeting
        b"*1\r\n$4\r\nPING\r\n",
        b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + bytes(32),  # TLS ClientHello
        b"AMQP\x00\x00\x09\x01",
        b"\x10\x1a\x00\x04MQTT\x04\x02\x00\x3c\x00\x0epxtui-client-1",
        b"\x3b\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00\x00\xdd\x07\x00\x00",  # MongoDB OP_MSG
        b"\x00\x1c\x12\x34\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00\x03www\x07example\x03com\x00\x00\x01\x00\x01",
        b"\x04\x00\x00\x00\x01\x00\x00\x00\x16\x00\x01\x00\x0bCQL_VERSION\x00\x053.0.0",  # CQL STARTUP
        b"\x00\x00\x12\x04\x00\x00\x00\x00\x00\x00\x03\x00\x00\x00\x64\x00\x04\x00\x10\x00\x00",  # HTTP/2 SETTINGS
        b"\x00\x00\x0d\x00\x00\x00\x00\x00\x01\x00\x00\x00\x00\x08\x0a\x06orders",  # HTTP/2 DATA (gRPC message)
    ]
    for data in others:
        assert infer(data) is None, data
    good = produce(8)
    assert infer(good[:13]) is None  # not even the client id length yet
    assert infer(good[:14]) is MessageKind.REQUEST
    assert infer(good[:4] + b"\x00\x63" + good[6:]) is None  # API key 99
    assert infer(good[:6] + b"\x00\x30" + good[8:]) is None  # Produce v48
    assert infer(good[:14] + b"\x01\x02\x03" + good[17:]) is None  # unprintable client id


# --- bad input, big frames, fuzz --------------------------------------------------------------------


def test_garbage_is_counted_and_the_parser_resynchronises():
    junk = bytes(range(256)) * 3
    rows, st_ = replay([(1, "c", junk + produce(8, corr=1)), (2, "s", produce_resp(8, corr=1))])
    assert len(rows) == 1 and rows[0]["req_cmd"] == 0 and st_.parse_errors == 1 and st_.internal_errors == 0
    # A body that does not follow its layout: the pair is still recorded, the body is empty, one error.
    bad = bytearray(produce(8, corr=2))
    struct.pack_into(">i", bad, len(bad) - 4 - 74, 1 << 30)  # the record set's size: past the frame
    rows, st_ = replay([(1, "c", bytes(bad)), (2, "s", produce_resp(8, corr=2))])
    assert len(rows) == 1 and rows[0]["req_body"] == "" and rows[0]["resp"] != "" and st_.parse_errors == 1
    # A frame size past Kafka's limit is garbage, not a 2 GiB wait.
    stream = DataStream()
    stream.append(1, b"\x7f\xff\xff\xff" + bytes(64))
    parser = KafkaParser(is_request=True)
    assert parser.next_frame(stream) is None and parser.errors == 1 and len(stream) < 20


def test_an_oversized_frame_streams_through_with_bounded_buffering():
    """A 3 MiB produce (one partition): decoded from its prefix, the rest consumed as it arrives."""
    big = produce(8, corr=5, records=batch(b"x" * (3 << 20)))
    st_ = KafkaStitcher()
    egress, ingress = DataStream(), DataStream()
    rows = []
    for off in range(0, len(big), 16384):  # the socket tracer's chunk size
        egress.append(off, big[off : off + 16384])
        rows += st_.process(ROLE_CLIENT, egress, ingress)
        assert len(egress) <= PREFIX_MAX + 4 + 16384
    ingress.append(1 << 40, produce_resp(8, corr=5))
    rows += st_.process(ROLE_CLIENT, egress, ingress)
    assert len(rows) == 1 and st_.parse_errors == 0
    size = json.loads(rows[0]["req_body"])["topics"][0]["partitions"][0]["message_set"]["size"]
    assert size > 3 << 20 and size == len(big) - 4 - (len(produce(8, records=b"")) - 4)


JOIN = build(JoinGroupRequest, {"group_id": "g", "session_timeout_ms": 10000, "rebalance_timeout_ms": 300000,
                                "member_id": "m", "group_instance_id": None, "protocol_type": "consumer",
                                "protocols": [{"name": "range", "metadata": b"\0\1"}]})  # fmt: skip
JOINED = build(JoinGroupResponse, {"throttle_time_ms": 0, "error_code": 0, "generation_id": 1,
                                   "protocol_type": "consumer", "protocol_name": "range", "leader": "m",
                                   "member_id": "m",
                                   "members": [{"member_id": "m", "group_instance_id": None,
                                                "metadata": b"x"}]})  # fmt: skip
JOIN_RAW, JOINED_RAW = frame(JOIN, 7, corr=0), frame(JOINED, 7, corr=0)


def chunked(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts})
    return [data[a:b] for a, b in zip([0, *points], [*points, len(data)], strict=True) if b > a]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(st.sampled_from(["produce9", "produce3", "fetch12", "fetch4", "join", "junk"]), min_size=1, max_size=6),
    st.lists(st.tuples(st.integers(0, 4000), st.integers(0, 255)), max_size=8),
    st.lists(st.integers(0, 1 << 16), max_size=6),
    st.binary(max_size=64),
)
def test_fuzz_mutated_and_random_frames_never_raise_and_buffering_is_bounded(kinds, flips, cuts, noise):
    reqs, resps = [], []
    for i, k in enumerate(kinds):
        if k.startswith("produce"):
            v = int(k[7:])
            reqs.append(produce(v, corr=i))
            resps.append(produce_resp(v, corr=i))
        elif k.startswith("fetch"):
            rq, rp = fetch_pair(int(k[5:]), batch(b"v" * i))
            reqs.append(rq[:8] + struct.pack(">i", i) + rq[12:])
            resps.append(struct.pack(">i", struct.unpack_from(">i", rp)[0]) + struct.pack(">i", i) + rp[8:])
        elif k == "join":
            reqs.append(JOIN_RAW[:8] + struct.pack(">i", i) + JOIN_RAW[12:])
            resps.append(JOINED_RAW[:4] + struct.pack(">i", i) + JOINED_RAW[8:])
        else:
            reqs.append(noise)
            resps.append(noise[::-1])
    streams = [bytearray(b"".join(reqs)), bytearray(b"".join(resps))]
    for pos, val in flips:
        s = streams[pos & 1]
        if s:
            s[pos % len(s)] = val
    st_ = KafkaStitcher(max_pending=16)
    egress, ingress = DataStream(), DataStream()
    events = [(egress, c) for c in chunked(bytes(streams[0]), cuts)] + [(ingress, c) for c in
                                                                        chunked(bytes(streams[1]), cuts)]  # fmt: skip
    for i, (stream, data) in enumerate(events):
        stream.append(i, data)
        rows = st_.process(ROLE_CLIENT, egress, ingress)
        assert all(isinstance(r["req_body"], str) and r["latency"] >= 0 for r in rows)
        assert len(egress) <= FULL_FRAME_MAX + 4 + len(data) and len(ingress) <= FULL_FRAME_MAX + 4 + len(data)
        assert len(st_._pending) <= 16
    st_.on_close(ROLE_CLIENT, egress, ingress)
    assert st_.internal_errors == 0 and len(egress) == 0 and len(ingress) == 0


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=2048), st.lists(st.integers(0, 2048), max_size=5))
def test_fuzz_random_bytes_in_either_direction(data, cuts):
    st_ = KafkaStitcher()
    egress, ingress = DataStream(), DataStream()
    for i, piece in enumerate(chunked(data, cuts)):
        (egress if i % 2 else ingress).append(i, piece)
        st_.process(ROLE_CLIENT, egress, ingress)
        st_.process(ROLE_SERVER, egress, ingress)
    assert st_.internal_errors == 0
