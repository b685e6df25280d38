"""MongoDB: OP_MSG framing and sections, requestID/responseTo pairing, moreToCome (exhaust replies,
w:0 writes), OP_COMPRESSED (zlib), Pixie's renderings, inference and robustness.

No MongoDB server can be installed on these machines, so the byte streams come from the REAL pymongo
talking to tests/mongo_spec_server.py, whose replies follow the MongoDB wire protocol and OP_MSG
specifications (documents encoded with pymongo's bson); the server records every chunk both ways and
the tests replay them. Pixie's own parse_test frames are used where it has them.
"""

from __future__ import annotations

import struct
import subprocess
import sys
import threading
from collections.abc import Iterator

import bson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cluster.pem.data_stream import DataStream
from cluster.pem.protocols.http.infer import MessageKind
from cluster.pem.protocols.mongodb import MongoParser, MongoStitcher, infer
from cluster.pem.protocols.mongodb import frames as f
from cluster.schemas import ROLE_CLIENT, ROLE_SERVER
from tests.mongo_spec_server import Server, _compress, _msg

WORKLOAD = """
import sys
from pymongo import MongoClient
from pymongo.cursor import CursorType
from pymongo.errors import OperationFailure
from pymongo.write_concern import WriteConcern
port, m, comp = int(sys.argv[1]), sys.argv[2], sys.argv[3]
kw = {"compressors": "zlib"} if comp == "zlib" else {}
c = MongoClient("127.0.0.1", port, serverSelectionTimeoutMS=10000, directConnection=True, **kw)
items = c.shop["items_" + m]
items.insert_one({"sku": "sku-" + m, "qty": 2})
items.insert_many([{"sku": f"bulk-{m}-{i}", "qty": i} for i in range(5)])
assert items.find_one({"sku": "sku-" + m})["qty"] == 2
items.update_one({"sku": "sku-" + m}, {"$set": {"qty": 3}})
assert len(list(items.find({}, batch_size=2, cursor_type=CursorType.EXHAUST))) == 6
items.with_options(write_concern=WriteConcern(w=0)).insert_one({"sku": "fire-and-forget-" + m})
items.delete_one({"sku": "sku-" + m})
try:
    c.shop.command("nosuchcmd")
    raise SystemExit("expected an error")
except OperationFailure:
    pass
c.close()
"""


def replay(log, role: int = ROLE_CLIENT, split: bool = False, st_: MongoStitcher | None = None):
    """Feed a recorded session ("c" client-sent, "s" server-sent chunks) in order; with ``split``
    the client's bytes carry time 1 and the server's time 2."""
    st_ = st_ or MongoStitcher(body_cap=8192)
    client, server = DataStream(), DataStream()
    egress, ingress = (client, server) if role == ROLE_CLIENT else (server, client)
    out = []
    for ts, (side, data) in enumerate(log, 1):
        (client if side == "c" else server).append((1 if side == "c" else 2) if split else ts, data)
        out += st_.process(role, egress, ingress)
    return out, st_


@pytest.fixture(scope="module")
def sessions() -> Iterator[dict[str, list[tuple[str, bytes]]]]:
    """compressor -> the recorded session that ran the workload (not the monitor's)."""
    server = Server(0)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    out = {}
    try:
        for comp in ("none", "zlib"):
            before = len(server.store.sessions)
            subprocess.run([sys.executable, "-c", WORKLOAD, str(server.server_address[1]), comp, comp],
                           check=True, timeout=120, capture_output=True)  # fmt: skip
            out[comp] = max(server.store.sessions[before:], key=len)  # the monitor's only says hello
        yield out
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.parametrize("comp", ["none", "zlib"])
def test_real_driver_session_records(sessions, comp):
    log = sessions[comp]
    opcodes = {struct.unpack_from("<i", d, 12)[0] for side, d in log if side == "s"}
    assert (f.OP_COMPRESSED in opcodes) is (comp == "zlib")  # the zlib session really was compressed
    recs, st_ = replay(log)
    assert st_.parse_errors == 0 and st_.unmatched_responses == 0 and st_.internal_errors == 0
    got = [(r["req_cmd"], r["resp_status"]) for r in recs]
    ok = "ok: {$numberDouble: 1.0}"
    assert got == [("insert", ok), ("insert", ok), ("find", "cursor"), ("update", ok), ("find", "cursor"),
                   ("getMore", "cursor"), ("insert", ""), ("delete", ok), ("nosuchcmd", "ok: {$numberDouble: 0.0}"),
                   ("endSessions", ok)]  # fmt: skip
    by = {r["req_cmd"] + str(i): r for i, r in enumerate(recs)}
    first = by["insert0"]
    assert first["req_body"].startswith(f'{{ "insert" : "items_{comp}", "ordered" : true, "lsid" : {{ "id" : ')
    assert first["req_body"].endswith(f'"sku" : "sku-{comp}", "qty" : {{ "$numberInt" : "2" }} }} ')
    assert first["resp_body"] == '{ "n" : { "$numberInt" : "1" }, "ok" : { "$numberDouble" : "1.0" } } '
    assert by["insert1"]["req_body"].count('"sku" : "bulk-') == 5  # a document sequence of five
    assert '"filter" : { "sku" : "sku-' + comp + '" }' in by["find2"]["req_body"]
    assert by["find2"]["resp_body"].startswith('{ "cursor" : { "firstBatch" : [ { "_id" : { "$oid" : ')
    # The exhaust getMore: two streamed replies (moreToCome, then the last) in one record.
    more = by["getMore5"]["resp_body"]
    assert more.count('"nextBatch"') == 2 and more.count('"sku" : ') == 4
    w0 = by["insert6"]  # w:0 -> moreToCome on the request, no reply
    assert f"fire-and-forget-{comp}" in w0["req_body"] and w0["resp_body"] == "" and w0["latency"] == 0
    assert '"codeName" : "CommandNotFound"' in by["nosuchcmd8"]["resp_body"]
    assert all(r["time_"] > 0 for r in recs)


def test_server_side_gives_the_same_records(sessions):
    client_view, _ = replay(sessions["none"])
    server_view, st_ = replay(sessions["none"], ROLE_SERVER)
    assert [(r["req_cmd"], r["req_body"], r["resp_body"]) for r in server_view] == [
        (r["req_cmd"], r["req_body"], r["resp_body"]) for r in client_view
    ]
    assert st_.parse_errors == 0


def test_every_split_point_gives_the_same_records(sessions):
    for comp in ("none", "zlib"):
        client = b"".join(d for s, d in sessions[comp] if s == "c")
        server = b"".join(d for s, d in sessions[comp] if s == "s")
        whole, _ = replay([("c", client), ("s", server)], split=True)
        assert len(whole) == 10
        step = max(1, max(len(client), len(server)) // 400)
        for cut in range(1, max(len(client), len(server)), step):
            log = [("c", client[:cut]), ("c", client[cut:]), ("s", server[:cut]), ("s", server[cut:])]
            recs, st_ = replay(log, split=True)
            assert [(r["req_body"], r["resp_body"]) for r in recs] == [(r["req_body"], r["resp_body"]) for r in whole]
            assert st_.parse_errors == 0, (comp, cut)


def test_pixie_frames_and_handshakes_are_dropped():
    req = _msg(444, 0, 0, {"insert": "car", "ordered": True, "$db": "mydb1"})
    reply = _msg(917, 444, 0, {"n": 1, "ok": 1.0})
    recs, st_ = replay([("c", req), ("s", reply)])
    assert recs == [{
        "time_": 1, "req_cmd": "insert", "req_body": '{ "insert" : "car", "ordered" : true, "$db" : "mydb1" } ',
        "resp_status": "ok: {$numberDouble: 1.0}",
        "resp_body": '{ "n" : { "$numberInt" : "1" }, "ok" : { "$numberDouble" : "1.0" } } ', "latency": 1,
    }]  # fmt: skip
    hello = _msg(1, 0, 0, {"hello": 1, "$db": "admin"})
    hello_reply = _msg(2, 1, 0, {"helloOk": True, "isWritablePrimary": True, "ok": 1.0})
    recs, st_ = replay([("c", hello), ("s", hello_reply)])
    assert recs == [] and st_.parse_errors == 0 and st_.unmatched_responses == 0


def test_checksum_kind1_identifiers_empty_document_and_int_ok():
    doc = bson.encode({"delete": "t", "$db": "d"})
    seq = bson.encode({"q": {"a": 1}, "limit": 1})
    ident = b"deletes\x00"
    body = (
        struct.pack("<I", f.CHECKSUM_PRESENT) + b"\x00" + doc + b"\x01" + struct.pack("<i", 4 + len(ident) + len(seq))
    )
    body += ident + seq + b"\xde\xad\xbe\xef"
    req = struct.pack("<iiii", 16 + len(body), 5, 0, f.OP_MSG) + body
    empty = struct.pack("<iiii", 16 + 4 + 1 + 5, 6, 5, f.OP_MSG) + struct.pack("<I", 0) + b"\x00" + bson.encode({})
    recs, _ = replay([("c", req), ("s", empty)])
    assert recs[0]["req_body"] == (
        '{ "delete" : "t", "$db" : "d" } { "q" : { "a" : { "$numberInt" : "1" } }, "limit" : { "$numberInt" : "1" } } '
    )
    assert recs[0]["resp_status"] == "" and recs[0]["resp_body"] == " "
    int_ok = _msg(8, 7, 0, {"ok": 1})
    recs, _ = replay([("c", _msg(7, 0, 0, {"count": "t", "$db": "d"})), ("s", int_ok)])
    assert [(r["req_cmd"], r["resp_status"]) for r in recs] == [("count", "ok: {$numberInt: 1}")]


def test_invalid_flags_unknown_opcode_and_bad_bson_are_counted():
    bad_flags = bytearray(_msg(1, 0, 0, {"find": "t"}))
    bad_flags[16] = 0x04  # bit 2 must be clear
    unknown_op = struct.pack("<iiii", 18, 2, 0, 2010) + b"\x00\x00"
    bad_bson = bytearray(_msg(3, 0, 0, {"find": "t"}))
    bad_bson[-1] = 0x07  # the document's terminating NUL
    good = _msg(4, 0, 0, {"find": "t", "$db": "d"})
    for junk in (bytes(bad_flags), unknown_op, bytes(bad_bson)):
        recs, st_ = replay([("c", junk + good), ("s", _msg(9, 4, 0, {"cursor": {}, "ok": 1.0}))])
        assert [r["req_cmd"] for r in recs] == ["find"] and st_.parse_errors == 1, junk


def test_legacy_and_unsupported_compressors_are_skipped_not_errors():
    query = struct.pack("<iii", 0, 0, 1) + b"admin.$cmd\x00" + bson.encode({"isMaster": 1})
    op_query = struct.pack("<iiii", 16 + len(query) - 4, 1, 0, f.OP_QUERY) + query[4:]
    snappy = bytearray(_compress(_msg(2, 0, 0, {"find": "t", "$db": "d"})))
    snappy[16 + 8] = f.COMPRESSOR_SNAPPY
    zlib_find = _compress(_msg(3, 0, 0, {"find": "t", "$db": "d"}))
    recs, st_ = replay([("c", op_query + bytes(snappy) + zlib_find), ("s", _msg(4, 3, 0, {"cursor": {}, "ok": 1.0}))])
    assert [r["req_cmd"] for r in recs] == ["find"] and st_.parse_errors == 0


def test_unmatched_reply_and_close_counts():
    recs, st_ = replay([("c", _msg(1, 0, 0, {"find": "t"})), ("s", _msg(2, 99, 0, {"ok": 1.0}))])
    assert recs == [] and st_.unmatched_responses == 1
    st_.on_close(ROLE_CLIENT, DataStream(), DataStream())
    assert st_.dropped_requests == 1


def test_extended_json_types():
    import datetime

    from bson import Binary, Decimal128, MaxKey, ObjectId, Regex, Timestamp
    from bson.int64 import Int64

    doc = {"i": 1, "l": Int64(2), "d": 0.5, "n": None, "b": False, "a": [], "o": {}, "s": 'q"x',
           "oid": ObjectId("64dbd4678f0e655d4314d68a"), "t": Timestamp(5, 1), "dec": Decimal128("1.5"),
           "bin": Binary(b"\x01", 0), "re": Regex("^a", "i"), "max": MaxKey(),
           "dt": datetime.datetime(2024, 1, 2, tzinfo=datetime.UTC)}  # fmt: skip
    parser = MongoParser(False, body_cap=4096)
    stream = DataStream()
    stream.append(1, _msg(1, 0, 0, doc))
    msg = parser.next_message(stream)
    assert msg is not None and parser.errors == 0
    assert msg.body == (
        '{ "i" : { "$numberInt" : "1" }, "l" : { "$numberLong" : "2" }, "d" : { "$numberDouble" : "0.5" }, '
        '"n" : null, "b" : false, "a" : [ ], "o" : { }, "s" : "q\\"x", '
        '"oid" : { "$oid" : "64dbd4678f0e655d4314d68a" }, '
        '"t" : { "$timestamp" : { "t" : 5, "i" : 1 } }, "dec" : { "$numberDecimal" : "1.5" }, '
        '"bin" : { "$binary" : { "base64" : "AQ==", "subType" : "00" } }, '
        '"re" : { "$regularExpression" : { "pattern" : "^a", "options" : "i" } }, "max" : { "$maxKey" : 1 }, '
        '"dt" : { "$date" : { "$numberLong" : "1704153600000" } } } '
    )


def test_infer():
    assert infer(_msg(1, 0, 0, {"hello": 1})) is MessageKind.REQUEST
    assert infer(_msg(1, 0, 0, {"hello": 1})[:20]) is MessageKind.REQUEST  # split across reads
    assert infer(_msg(2, 1, 0, {"ok": 1.0})) is None  # replies are not used for inference
    assert infer(_msg(1, 0, 0, {"a": 1}) + b"\x00") is None  # the length does not frame the buffer
    assert infer(struct.pack("<iiii", 16, 1, 0, 2010)) is None
    assert infer(b"*1\r\n$4\r\nPING\r\n") is None
    from cluster.pem.protocols.registry import BY_CODE, PROTOCOL_MONGO, PROTOCOLS

    assert PROTOCOL_MONGO == 9 and BY_CODE[PROTOCOL_MONGO].table == "mongodb_events"
    first = next(p for p in PROTOCOLS if p.infer(_msg(1, 0, 0, {"find": "t"})) is not None)
    assert first.code == PROTOCOL_MONGO


def _bounded(chunks) -> None:
    st_ = MongoStitcher(max_pending=8)
    client, server = DataStream(max_bytes=4096), DataStream(max_bytes=4096)
    for ts, (is_client, data) in enumerate(chunks, 1):
        (client if is_client else server).append(ts, data)
        st_.process(ROLE_CLIENT, client, server)
        assert len(client) <= 4096 and len(server) <= 4096
        assert len(st_._pending) <= 8 and len(st_._chains) <= 8
    st_.on_close(ROLE_CLIENT, client, server)
    assert st_.internal_errors == 0


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.booleans(), st.binary(max_size=64)), max_size=16))
def test_noise_never_raises_and_stays_bounded(chunks):
    _bounded(chunks)


def _message(rid: int, rto: int, flags: int, doc: dict, op: int) -> bytes:
    return _msg(rid, rto, flags, doc) if op == f.OP_MSG else struct.pack("<iiii", 20, rid, rto, op) + b"\0" * 4


MESSAGES = st.builds(
    _message,
    st.integers(0, 5), st.integers(0, 5), st.sampled_from([0, f.MORE_TO_COME, f.EXHAUST_ALLOWED, 1]),
    st.dictionaries(st.sampled_from(["find", "ok", "cursor", "hello", "x"]), st.integers(-2, 2), max_size=3),
    st.sampled_from([f.OP_MSG, f.OP_MSG, f.OP_QUERY, f.OP_COMPRESSED, f.OP_REPLY]),
)  # fmt: skip


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.booleans(), MESSAGES), max_size=12), st.integers(0, 40))
def test_protocol_shaped_noise_never_raises(messages, cut):
    _bounded([(c, m[cut:] if i % 3 == 2 else m) for i, (c, m) in enumerate(messages)])


def test_mutating_and_truncating_a_real_session_never_raises(sessions):
    client = b"".join(d for s, d in sessions["zlib"] if s == "c")
    server = b"".join(d for s, d in sessions["zlib"] if s == "s")
    for i in range(0, len(server), 5):
        mutated = server[:i] + bytes([server[i] ^ 0xA5]) + server[i + 1 :]
        _, st_ = replay([("c", client), ("s", mutated)], split=True)
        st_.on_close(ROLE_CLIENT, DataStream(), DataStream())
        assert st_.internal_errors == 0
    for cut in range(0, len(client), 5):
        _, st_ = replay([("c", client[:cut]), ("s", server)], split=True)
        st_.on_close(ROLE_CLIENT, DataStream(), DataStream())
        assert st_.internal_errors == 0
