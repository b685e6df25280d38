"""MySQL: handshake skipped, COM_QUERY / prepared statements / no-response commands, result sets
with and without CLIENT_DEPRECATE_EOF, inference and robustness. Packets are built here from the
client/server protocol documentation (test data)."""

from __future__ import annotations

import struct

from hypothesis import given, settings
from hypothesis import strategies as st

from cluster.pem.data_stream import DataStream
from cluster.pem.protocols.http.infer import MessageKind
from cluster.pem.protocols.mysql import MysqlStitcher, infer
from cluster.schemas import ROLE_CLIENT

DEPRECATE_EOF = 0x01000000


def pkt(seq: int, payload: bytes) -> bytes:
    return struct.pack("<I", len(payload))[:3] + bytes([seq]) + payload


def greeting(caps: int = 0xF7FF) -> bytes:
    body = (b"\x0a10.11.19-MariaDB\x00" + struct.pack("<I", 7) + b"abcdefgh\x00"
            + struct.pack("<H", caps & 0xFFFF) + b"\x21" + struct.pack("<H", 2) + struct.pack("<H", caps >> 16)
            + b"\x15" + b"\x00" * 10 + b"ijklmnopqrst\x00")
    return pkt(0, body)


def login(caps: int = 0x000FA685) -> bytes:
    return pkt(1, struct.pack("<IIB", caps, 1 << 24, 33) + b"\x00" * 23 + b"root\x00\x00test\x00")


def ok(seq: int, header: int = 0, status: int = 2) -> bytes:
    return pkt(seq, bytes([header]) + b"\x00\x00" + struct.pack("<HH", status, 0))


def eof(seq: int, status: int = 2) -> bytes:
    return pkt(seq, b"\xfe\x00\x00" + struct.pack("<H", status))


def err(seq: int, code: int, state: str, text: str) -> bytes:
    return pkt(seq, b"\xff" + struct.pack("<H", code) + b"#" + state.encode() + text.encode())


def coldef(seq: int, name: str) -> bytes:
    n = name.encode()
    body = (b"\x03def\x00\x00\x00" + bytes([len(n)]) + n + b"\x00\x0c\x21\x00" + struct.pack("<I", 11)
            + b"\x08\x00\x00\x00\x00")
    return pkt(seq, body)


def text_row(seq: int, *cols: str | None) -> bytes:
    return pkt(seq, b"".join(b"\xfb" if c is None else bytes([len(c)]) + c.encode() for c in cols))


def query(sql: str) -> bytes:
    return pkt(0, b"\x03" + sql.encode())


HANDSHAKE = [(1, "resp", greeting()), (2, "req", login()), (3, "resp", ok(2))]
RESULT = (pkt(1, b"\x02") + coldef(2, "a") + coldef(3, "b") + eof(4) + text_row(5, "1", None)
          + text_row(6, "x", "y") + eof(7))


def run(events: list[tuple[int, str, bytes]], st_: MysqlStitcher | None = None):
    st_ = st_ or MysqlStitcher()
    req, resp = DataStream(), DataStream()
    out = []
    for ts, side, data in events:
        (req if side == "req" else resp).append(ts, data)
        out += st_.process(ROLE_CLIENT, req, resp)
    return out, st_


def test_queries_ok_err_and_result_sets():
    recs, st_ = run([*HANDSHAKE,
        (10, "req", query("select a, b from t")), (14, "resp", RESULT),
        (20, "req", query("select * from nope")),
        (21, "resp", err(1, 1146, "42S02", "Table 'test.nope' doesn't exist")),
        (30, "req", query("insert into t values (1)")), (35, "resp", ok(1)),
        (40, "req", pkt(0, b"\x0etest")), (41, "resp", ok(1)),
        (50, "req", pkt(0, b"\x02otherdb")), (51, "resp", ok(1)),
        (60, "req", pkt(0, b"\x01")),
    ])  # fmt: skip
    assert [(r["req_cmd"], r["req_body"], r["resp_status"], r["resp_body"], r["latency"]) for r in recs] == [
        (3, "select a, b from t", 2, "Resultset rows = 2", 4),
        (3, "select * from nope", 3, "Table 'test.nope' doesn't exist", 1),
        (3, "insert into t values (1)", 2, "", 5),
        (14, "", 2, "", 1),
        (2, "otherdb", 2, "", 1),
        (1, "", 1, "", 0),
    ]
    assert st_.deprecate_eof is False
    assert st_.parse_errors == 0 and st_.unmatched_responses == 0


def test_deprecate_eof_result_set_and_multi_results():
    caps = 0xF7FF | DEPRECATE_EOF
    recs, st_ = run([
        (1, "resp", greeting(caps)), (2, "req", login(0x000FA685 | DEPRECATE_EOF)), (3, "resp", ok(2)),
        (10, "req", query("select 1")),
        (12, "resp", pkt(1, b"\x01") + coldef(2, "1") + text_row(3, "1") + ok(4, 0xFE, 2 | 8)
         + pkt(5, b"\x01") + coldef(6, "2") + ok(7, 0xFE)),
    ])
    assert st_.deprecate_eof is True
    assert [(r["resp_status"], r["resp_body"]) for r in recs] == [(2, "Resultset rows = 1, Resultset rows = 0")]


def test_prepared_statement_execute_shows_bound_values():
    prepare_ok = pkt(1, b"\x00" + struct.pack("<IHHBH", 5, 1, 2, 0, 0))
    execute = pkt(0, b"\x17" + struct.pack("<IBI", 5, 0, 1) + b"\x00" + b"\x01" + struct.pack("<HH", 8, 253)
                  + struct.pack("<q", 41) + b"\x02hi")
    binary_rows = pkt(1, b"\x01") + coldef(2, "x") + eof(3) + pkt(4, b"\x00\x00" + struct.pack("<q", 42)) + eof(5)
    recs, st_ = run([*HANDSHAKE,
        (10, "req", pkt(0, b"\x16select ? + 1 from t where b = ?")),
        (11, "resp", prepare_ok + coldef(2, "?") + coldef(3, "?") + eof(4) + coldef(5, "x") + eof(6)),
        (20, "req", execute), (23, "resp", binary_rows),
        (30, "req", pkt(0, b"\x19" + struct.pack("<I", 5))),
    ])  # fmt: skip
    assert [(r["req_cmd"], r["req_body"], r["resp_status"], r["resp_body"]) for r in recs] == [
        (22, "select ? + 1 from t where b = ?", 2, ""),
        (23, "select 41 + 1 from t where b = hi", 2, "Resultset rows = 1"),
        (25, "", 1, ""),
    ]
    assert st_.parse_errors == 0


def test_mariadb_metadata_follows_byte():
    recs, _ = run([*HANDSHAKE, (10, "req", query("select 42")),
                   (11, "resp", pkt(1, b"\x01\x01") + coldef(2, "42") + eof(3) + text_row(4, "42") + eof(5))])
    assert [r["resp_body"] for r in recs] == ["Resultset rows = 1"]


def test_every_split_point_gives_the_same_records():
    req = login() + query("select a, b from t")
    resp = greeting() + ok(2)
    events = lambda r1, r2, s1, s2: [(1, "resp", s1), (1, "resp", s2), (2, "req", r1), (2, "req", r2),  # noqa: E731
                                      (3, "resp", RESULT[: len(RESULT) // 3]), (3, "resp", RESULT[len(RESULT) // 3 :])]
    whole, _ = run(events(req, b"", resp, b""))
    assert [r["resp_body"] for r in whole] == ["Resultset rows = 2"]
    for i in range(len(req) + 1):
        recs, st_ = run(events(req[:i], req[i:], resp, b""))
        assert recs == whole and st_.parse_errors == 0, i
    for j in range(len(RESULT) + 1):
        recs, st_ = run([*HANDSHAKE, (10, "req", query("select a, b from t")),
                         (12, "resp", RESULT[:j]), (12, "resp", RESULT[j:])])
        assert [r["resp_body"] for r in recs] == ["Resultset rows = 2"] and st_.parse_errors == 0, j


def test_lost_request_responses_are_dropped_and_garbage_counted():
    recs, st_ = run([*HANDSHAKE, (10, "req", query("select 1")), (11, "resp", pkt(1, b"\x05garbage")),
                     (20, "req", query("do 1")), (21, "resp", ok(1))])
    assert [r["req_body"] for r in recs] == ["do 1"]
    assert st_.parse_errors == 1


def test_tls_request_stops_parsing():
    ssl = pkt(1, struct.pack("<IIB", 0x000FA685 | 0x800, 1 << 24, 33) + b"\x00" * 23)
    recs, st_ = run([(1, "resp", greeting()), (2, "req", ssl), (3, "req", b"\x16\x03\x01\x00\x05hello"),
                     (4, "resp", b"\x16\x03\x03\x00\x02hi")])
    assert recs == [] and st_.parse_errors == 0


def test_infer_both_directions():
    assert infer(greeting()) is MessageKind.RESPONSE
    assert infer(query("select 1")) is MessageKind.REQUEST
    for data in (query("select 1")[:-1], pkt(1, b"\x03select 1"), pkt(0, b"\x0e"), pkt(0, b"\x03\x00\x01\x02"),
                 b"GET / HTTP/1.1\r\n\r\n", b"\x01\x00"):
        assert infer(data) is None, data


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.booleans(), st.binary(max_size=64)), max_size=12))
def test_noise_never_raises(chunks):
    events = [(i, "req" if is_req else "resp", data) for i, (is_req, data) in enumerate(chunks)]
    events.insert(len(events) // 2, (100, "req", query("select 1")))
    _, st_ = run(events)
    assert st_.internal_errors == 0
