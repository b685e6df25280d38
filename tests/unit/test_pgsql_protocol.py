"""PostgreSQL: start-up skipped, simple and extended query protocol, Pixie's renderings, inference
and robustness. Messages are built here from the v3 protocol specification (test data)."""

from __future__ import annotations

import struct

from hypothesis import given, settings
from hypothesis import strategies as st

from cluster.pem.data_stream import DataStream
from cluster.pem.protocols.http.infer import MessageKind
from cluster.pem.protocols.pgsql import PgsqlStitcher, infer
from cluster.schemas import ROLE_CLIENT


def msg(tag: bytes, payload: bytes = b"") -> bytes:
    return tag + struct.pack(">I", len(payload) + 4) + payload


def startup() -> bytes:
    body = struct.pack(">I", 196608) + b"user\x00postgres\x00database\x00test\x00\x00"
    return struct.pack(">I", len(body) + 4) + body


SSL_REQUEST = struct.pack(">II", 8, 80877103)


def row_desc(*names: str) -> bytes:
    body = struct.pack(">h", len(names))
    for n in names:
        body += n.encode() + b"\x00" + struct.pack(">ihihih", 0, 0, 23, 4, -1, 0)
    return msg(b"T", body)


def data_row(*cols: str | None) -> bytes:
    body = struct.pack(">h", len(cols))
    for c in cols:
        body += struct.pack(">i", -1) if c is None else struct.pack(">i", len(c)) + c.encode()
    return msg(b"D", body)


def complete(tag: str) -> bytes:
    return msg(b"C", tag.encode() + b"\x00")


READY = msg(b"Z", b"I")
AUTH_OK = msg(b"R", struct.pack(">I", 0)) + msg(b"S", b"server_version\x0015\x00") + msg(b"K", b"\x00" * 8) + READY


def error(code: str, text: str) -> bytes:
    return msg(b"E", b"SERROR\x00VERROR\x00C" + code.encode() + b"\x00M" + text.encode() + b"\x00\x00")


def run(events: list[tuple[int, str, bytes]], st_: PgsqlStitcher | None = None):
    st_ = st_ or PgsqlStitcher()
    req, resp = DataStream(), DataStream()
    out = []
    for ts, side, data in events:
        (req if side == "req" else resp).append(ts, data)
        out += st_.process(ROLE_CLIENT, req, resp)
    return out, st_


SIMPLE = [
    (1, "req", SSL_REQUEST), (2, "resp", b"N"), (3, "req", startup()), (4, "resp", AUTH_OK),
    (10, "req", msg(b"Q", b"select 1 as one, null as two\x00")),
    (15, "resp", row_desc("one", "two") + data_row("1", None) + complete("SELECT 1") + READY),
    (20, "req", msg(b"Q", b"select * from nope\x00")),
    (22, "resp", error("42P01", 'relation "nope" does not exist') + READY),
    (30, "req", msg(b"Q", b"create table t(a int)\x00")), (33, "resp", complete("CREATE TABLE") + READY),
]


def test_simple_query_rows_errors_and_tags():
    recs, st_ = run(SIMPLE)
    assert [(r["req_cmd"], r["req"], r["resp"], r["latency"]) for r in recs] == [
        ("Query", "select 1 as one, null as two", "one,two\n1,[NULL]\nSELECT 1", 5),
        ("Query", "select * from nope",
         'ERROR RESPONSE [Severity=ERROR InternalSeverity=ERROR Code=42P01 Message=relation "nope" does not exist]', 2),
        ("Query", "create table t(a int)", "CREATE TABLE", 3),
    ]
    assert st_.parse_errors == 0 and st_.unmatched_responses == 0


def test_extended_protocol_with_bound_parameters():
    parse = msg(b"P", b"\x00select $1::int + 1, $2::text\x00" + struct.pack(">hII", 2, 23, 25))
    bind = msg(b"B", b"\x00\x00" + struct.pack(">hh", 1, 1) + struct.pack(">h", 2)
               + struct.pack(">ii", 4, 41) + struct.pack(">i", 2) + b"hi" + struct.pack(">h", 0))
    # Per-parameter formats: int4 binary, text binary (one format code applies to all).
    batch = parse + bind + msg(b"D", b"P\x00") + msg(b"E", b"\x00" + struct.pack(">i", 0)) + msg(b"S")
    answer = msg(b"1") + msg(b"2") + row_desc("x", "y") + data_row("42", "hi") + complete("SELECT 1") + READY
    recs, st_ = run([(10, "req", batch), (19, "resp", answer)])
    assert [r["req_cmd"] for r in recs] == ["Parse", "Bind", "Describe", "Execute"]
    p, b, d, e = recs
    assert p["req"] == "select $1::int + 1, $2::text" and p["resp"] == "PARSE COMPLETE"
    assert b["req"] == ("portal= statement= parameters=[[format=kBinary value=41], [format=kBinary value=hi]] "
                        "result_format_codes=[]")
    assert b["resp"] == "BIND COMPLETE"
    assert d["req"] == "type=kPortal name=" and d["resp"].startswith("ROW DESCRIPTION [name=x table_oid=0")
    assert e["req"] == "query=[select $1::int + 1, $2::text] params=[41, hi]"
    assert e["resp"] == "x,y\n42,hi\nSELECT 1" and e["latency"] == 9
    assert st_.parse_errors == 0 and st_.unmatched_responses == 0 and not st_.records - 4


def test_extended_error_skips_to_sync():
    batch = (msg(b"P", b"\x00selec oops\x00\x00\x00") + msg(b"B", b"\x00\x00\x00\x00\x00\x00\x00\x00")
             + msg(b"E", b"\x00\x00\x00\x00\x00") + msg(b"S"))
    recs, st_ = run([(1, "req", batch), (2, "resp", error("42601", "syntax error") + READY),
                     (3, "req", msg(b"Q", b"select 1\x00")), (4, "resp", complete("SELECT 1") + READY)])
    assert [(r["req_cmd"], r["resp"][:14]) for r in recs] == [("Parse", "ERROR RESPONSE"), ("Query", "SELECT 1")]
    assert st_.parse_errors == 0


def test_every_split_point_gives_the_same_records():
    req = SIMPLE[0][2] + SIMPLE[2][2] + SIMPLE[4][2]
    resp = SIMPLE[1][2] + SIMPLE[3][2] + SIMPLE[5][2]
    whole, _ = run([(1, "req", req), (2, "resp", resp)])
    assert len(whole) == 1
    for i in range(len(req) + 1):
        recs, st_ = run([(1, "req", req[:i]), (1, "req", req[i:]), (2, "resp", resp)])
        assert recs == whole and st_.parse_errors == 0, i
    for j in range(len(resp) + 1):
        recs, st_ = run([(1, "req", req), (2, "resp", resp[:j]), (2, "resp", resp[j:])])
        assert recs == whole and st_.parse_errors == 0, j


def test_tls_accepted_stops_parsing():
    recs, st_ = run([(1, "req", SSL_REQUEST), (2, "resp", b"S"), (3, "req", b"\x16\x03\x01\x02\x00garbage"),
                     (4, "resp", b"\x16\x03\x03\x00\x10more")])
    assert recs == [] and st_.parse_errors == 0


def test_garbage_is_counted_and_parsing_recovers():
    recs, st_ = run([(1, "req", b"\xff\xfe junk" + msg(b"Q", b"select 2\x00")),
                     (2, "resp", complete("SELECT 1") + READY)])
    assert [r["req"] for r in recs] == ["select 2"] and st_.parse_errors == 1


def test_infer():
    assert infer(startup()) is MessageKind.REQUEST
    assert infer(SSL_REQUEST) is MessageKind.REQUEST
    assert infer(msg(b"Q", b"select 1\x00")) is MessageKind.REQUEST
    for data in (msg(b"Q", b"select 1"), READY, b"GET / HTTP/1.1\r\n\r\n", struct.pack(">II", 8, 1234), b"Q"):
        assert infer(data) is None, data


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.booleans(), st.binary(max_size=64)), max_size=12))
def test_noise_never_raises(chunks):
    events = [(i, "req" if is_req else "resp", data) for i, (is_req, data) in enumerate(chunks)]
    events.insert(len(events) // 2, (100, "req", msg(b"Q", b"select 1\x00")))
    _, st_ = run(events)
    assert st_.internal_errors == 0
