"""HTTP/1 stitching: FIFO matching, both roles, splits anywhere, close handling and bad input."""

from __future__ import annotations

import gzip
import json
import random
from typing import Any

import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cluster.pem.data_stream import DataStream
from cluster.pem.protocols.http import HttpParser, HttpStitcher, headers_json
from cluster.schemas import CONTENT_JSON, CONTENT_UNKNOWN, HTTP_EVENTS, ROLE_CLIENT, ROLE_SERVER, ROLE_UNKNOWN

COLUMNS = [
    "time_", "major_version", "minor_version", "content_type", "req_headers", "req_method", "req_path",
    "req_body", "req_body_size", "resp_headers", "resp_status", "resp_message", "resp_body",
    "resp_body_size", "latency",
]  # fmt: skip

JSON_BODY = b'{"id": 1, "name": "widget"}'
GZ_PLAIN = b'{"numbers": [' + b", ".join(b"%d" % i for i in range(300)) + b"]}"
GZ = gzip.compress(GZ_PLAIN)

# One keep-alive conversation exercising every framing rule; the last response is close-delimited.
EXCHANGES: list[tuple[bytes, bytes]] = [
    (
        b"GET /api/items/1 HTTP/1.1\r\nHost: shop\r\nAccept: application/json\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s"
        % (len(JSON_BODY), JSON_BODY),
    ),
    (
        b"POST /api/items HTTP/1.1\r\nHost: shop\r\nContent-Type: application/json\r\n"
        b'Content-Length: 15\r\n\r\n{"name": "new"}',
        b"HTTP/1.1 201 Created\r\nTransfer-Encoding: chunked\r\nContent-Type: text/plain\r\n\r\n"
        b"4;ext=1\r\nmade\r\n3\r\n it\r\n0\r\nX-Trailer: t\r\n\r\n",
    ),
    (
        b"GET /big.json HTTP/1.1\r\nHost: shop\r\nAccept-Encoding: gzip\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Encoding: gzip\r\n"
        b"Content-Length: %d\r\n\r\n%s" % (len(GZ), GZ),
    ),
    (
        b"HEAD /big.json HTTP/1.1\r\nHost: shop\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: 9999\r\nContent-Type: application/json\r\n\r\n",
    ),
    (
        b"PUT /upload HTTP/1.1\r\nHost: shop\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\nabc",
        b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 204 No Content\r\nServer: x\r\n\r\n",
    ),
    (
        b'GET /cached HTTP/1.1\r\nHost: shop\r\nIf-None-Match: "v1"\r\n\r\n',
        b'HTTP/1.1 304 Not Modified\r\nETag: "v1"\r\nContent-Length: 77\r\n\r\n',
    ),
    (
        b"DELETE /api/items/1 HTTP/1.1\r\nHost: shop\r\nConnection: close\r\n\r\n",
        b"HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\ndeleted until close",
    ),
]
REQS = b"".join(req for req, _ in EXCHANGES)
RESPS = b"".join(resp for _, resp in EXCHANGES)
REQ_TS, RESP_TS = 1_000, 5_000


def streams(role: int) -> tuple[DataStream, DataStream, DataStream, DataStream]:
    """(egress, ingress, request stream, response stream) for a role."""
    egress, ingress = DataStream(), DataStream()
    if role == ROLE_CLIENT:
        return egress, ingress, egress, ingress
    return egress, ingress, ingress, egress


def run(
    role: int, req_chunks: list[bytes], resp_chunks: list[bytes], stitcher: HttpStitcher | None = None
) -> tuple[list[dict[str, Any]], HttpStitcher]:
    """All request chunks, then all response chunks (process after each), then close."""
    st_ = stitcher or HttpStitcher()
    egress, ingress, req_s, resp_s = streams(role)
    out: list[dict[str, Any]] = []
    for chunk in req_chunks:
        req_s.append(REQ_TS, chunk)
        out += st_.process(role, egress, ingress)
    for chunk in resp_chunks:
        resp_s.append(RESP_TS, chunk)
        out += st_.process(role, egress, ingress)
    out += st_.on_close(role, egress, ingress)
    assert st_.internal_errors == 0
    return out, st_


@pytest.fixture(scope="module")
def reference() -> list[dict[str, Any]]:
    records, stitcher = run(ROLE_CLIENT, [REQS], [RESPS])
    assert stitcher.parse_errors == 0 and stitcher.unmatched_responses == 0
    assert stitcher.dropped_requests == 0 and stitcher.records == len(EXCHANGES)
    return records


def test_reference_conversation(reference: list[dict[str, Any]]) -> None:
    assert all(list(r) == COLUMNS for r in reference)
    assert [(r["req_method"], r["req_path"], r["resp_status"]) for r in reference] == [
        ("GET", "/api/items/1", 200),
        ("POST", "/api/items", 201),
        ("GET", "/big.json", 200),
        ("HEAD", "/big.json", 200),
        ("PUT", "/upload", 204),
        ("GET", "/cached", 304),
        ("DELETE", "/api/items/1", 200),
    ]
    get, post, gz, head, put, cached, delete = reference
    assert get["resp_body"] == JSON_BODY.decode() and get["content_type"] == CONTENT_JSON
    assert get["resp_body_size"] == len(JSON_BODY) and get["resp_message"] == "OK"
    assert get["time_"] == RESP_TS and get["latency"] == RESP_TS - REQ_TS
    assert get["major_version"] == 1 and get["minor_version"] == 1
    assert json.loads(get["req_headers"]) == {"Accept": "application/json", "Host": "shop"}
    assert post["req_body"] == '{"name": "new"}' and post["req_body_size"] == 15
    assert post["resp_body"] == "made it" and post["resp_body_size"] == 7
    assert post["content_type"] == CONTENT_UNKNOWN and post["resp_message"] == "Created"
    assert gz["resp_body"] == GZ_PLAIN[:512].decode() and gz["resp_body_size"] == len(GZ)
    assert head["resp_body"] == "" and head["resp_body_size"] == 0
    assert put["req_body"] == "abc" and put["resp_body_size"] == 0  # 100 Continue skipped
    assert cached["resp_body_size"] == 0
    assert delete["minor_version"] == 0 and delete["resp_body"] == "deleted until close"


def test_records_fit_the_arrow_schema(reference: list[dict[str, Any]]) -> None:
    schema = pa.schema([HTTP_EVENTS.field(name) for name in COLUMNS])
    table = pa.Table.from_pylist(reference, schema=schema)
    assert table.num_rows == len(EXCHANGES)
    assert table.column("time_")[0].value == RESP_TS


def test_server_role_same_records(reference: list[dict[str, Any]]) -> None:
    records, _ = run(ROLE_SERVER, [REQS], [RESPS])
    assert records == reference


def test_split_at_every_byte_matches_unsplit(reference: list[dict[str, Any]]) -> None:
    for i in range(max(len(REQS), len(RESPS)) + 1):
        records, stitcher = run(ROLE_CLIENT, [REQS[:i], REQS[i:]], [RESPS[:i], RESPS[i:]])
        assert records == reference, i
        assert stitcher.parse_errors == 0, i


@settings(max_examples=60, deadline=None)
@given(st.randoms(use_true_random=False), st.integers(min_value=1, max_value=40))
def test_random_chunks_interleaved_match_unsplit(rng: random.Random, max_chunk: int) -> None:
    """Random syscall sizes; a response byte only arrives after its request was fully sent."""
    req_ends, resp_starts, r_off, s_off = [], [], 0, 0
    for req, resp in EXCHANGES:
        r_off += len(req)
        req_ends.append(r_off)
        resp_starts.append(s_off)
        s_off += len(resp)

    def chunks(data: bytes) -> list[tuple[int, bytes]]:
        out, pos = [], 0
        while pos < len(data):
            n = rng.randint(1, max_chunk)
            out.append((pos, data[pos : pos + n]))
            pos += n
        return out

    req_chunks, resp_chunks = chunks(REQS), chunks(RESPS)
    stitcher = HttpStitcher()
    egress, ingress = DataStream(), DataStream()
    records: list[dict[str, Any]] = []
    sent = 0
    ri = 0
    for start, chunk in resp_chunks:
        needed = max(req_ends[i] for i, s in enumerate(resp_starts) if s < start + len(chunk))
        while sent < needed:
            egress.append(REQ_TS, req_chunks[ri][1])
            sent += len(req_chunks[ri][1])
            ri += 1
            records += stitcher.process(ROLE_CLIENT, egress, ingress)
        ingress.append(RESP_TS, chunk)
        records += stitcher.process(ROLE_CLIENT, egress, ingress)
    records += stitcher.on_close(ROLE_CLIENT, egress, ingress)
    expected, _ = run(ROLE_CLIENT, [REQS], [RESPS])
    assert records == expected
    assert stitcher.parse_errors == 0 and stitcher.internal_errors == 0


def test_keep_alive_exchanges_with_real_timestamps() -> None:
    stitcher = HttpStitcher()
    egress, ingress = DataStream(), DataStream()
    out = []
    for i in range(5):
        egress.append(1000 * i, b"GET /n/%d HTTP/1.1\r\nHost: h\r\n\r\n" % i)
        out += stitcher.process(ROLE_CLIENT, egress, ingress)
        ingress.append(1000 * i + 10 + i, b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\n%d" % i)
        out += stitcher.process(ROLE_CLIENT, egress, ingress)
    assert [(r["req_path"], r["resp_body"], r["time_"], r["latency"]) for r in out] == [
        (f"/n/{i}", str(i), 1000 * i + 10 + i, 10 + i) for i in range(5)
    ]
    assert stitcher.records == 5


def test_pipelining_three_requests_then_three_responses() -> None:
    stitcher = HttpStitcher()
    egress, ingress = DataStream(), DataStream()
    ingress.append(10, b"".join(b"GET /p%d HTTP/1.1\r\nHost: h\r\n\r\n" % i for i in range(3)))
    assert stitcher.process(ROLE_SERVER, egress, ingress) == []
    for i in range(3):
        egress.append(20 + i, b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nr%d" % i)
    out = stitcher.process(ROLE_SERVER, egress, ingress)
    assert [(r["req_path"], r["resp_body"], r["latency"]) for r in out] == [
        ("/p0", "r0", 10),
        ("/p1", "r1", 11),
        ("/p2", "r2", 12),
    ]


def test_body_cap_configurable_with_full_size() -> None:
    body = b"x" * 2000
    req = b"POST /p HTTP/1.1\r\nContent-Length: 2000\r\n\r\n" + body
    resp = b"HTTP/1.1 200 OK\r\nContent-Length: 2000\r\n\r\n" + body
    (rec,), _ = run(ROLE_CLIENT, [req], [resp])
    assert len(rec["req_body"]) == 512 and rec["req_body_size"] == 2000
    assert len(rec["resp_body"]) == 512 and rec["resp_body_size"] == 2000
    (small,), _ = run(ROLE_CLIENT, [req], [resp], HttpStitcher(body_cap=10))
    assert small["req_body"] == "x" * 10 and small["resp_body_size"] == 2000


def test_non_utf8_body_becomes_valid_text() -> None:
    req = b"GET / HTTP/1.1\r\n\r\n"
    resp = b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nab\xff\xfe"
    (rec,), _ = run(ROLE_CLIENT, [req], [resp])
    assert rec["resp_body"] == "ab\ufffd\ufffd"
    # a cap cutting a multi-byte character in half is also repaired
    resp = b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\n" + "\u20ac!".encode()
    (rec,), _ = run(ROLE_CLIENT, [req], [resp], HttpStitcher(body_cap=2))
    assert rec["resp_body"] == "\ufffd"


def test_headers_json_sorted_case_insensitively_with_duplicates() -> None:
    headers = [("b", "2"), ("Set-Cookie", "a=1"), ("A", 'q"uote'), ("set-cookie", "b=2"), ("C", "\u00e9")]
    text = headers_json(headers)
    assert text == '{"A":"q\\"uote","b":"2","C":"\u00e9","Set-Cookie":"a=1","set-cookie":"b=2"}'
    assert json.loads(text)["A"] == 'q"uote'
    assert headers_json([]) == "{}"


def test_unmatched_response_is_dropped_and_counted() -> None:
    stitcher = HttpStitcher()
    egress, ingress = DataStream(), DataStream()
    ingress.append(5, b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
    assert stitcher.process(ROLE_CLIENT, egress, ingress) == []
    assert stitcher.unmatched_responses == 1


def test_response_older_than_pending_request_is_not_its_answer() -> None:
    """The request of the first response was lost: FIFO must not shift every later pair."""
    stitcher = HttpStitcher()
    egress, ingress = DataStream(), DataStream()
    ingress.append(50, b"HTTP/1.1 500 Lost\r\nContent-Length: 0\r\n\r\n")
    egress.append(100, b"GET /mine HTTP/1.1\r\n\r\n")
    ingress.append(150, b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
    out = stitcher.process(ROLE_CLIENT, egress, ingress)
    assert [(r["req_path"], r["resp_status"]) for r in out] == [("/mine", 200)]
    assert stitcher.unmatched_responses == 1


def test_pending_requests_capped_and_counted_at_close() -> None:
    stitcher = HttpStitcher(max_pending=4)
    egress, ingress = DataStream(), DataStream()
    egress.append(1, b"GET /x HTTP/1.1\r\n\r\n" * 10)
    assert stitcher.process(ROLE_CLIENT, egress, ingress) == []
    assert stitcher.dropped_requests == 6 and len(egress.frames) == 4
    stitcher.on_close(ROLE_CLIENT, egress, ingress)
    assert stitcher.dropped_requests == 10 and len(egress.frames) == 0


def test_upgrade_stops_parsing_without_errors() -> None:
    req = b"GET /ws HTTP/1.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n"
    resp = b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n"
    records, stitcher = run(ROLE_CLIENT, [req], [resp, b"\x81\x05hello\x81\x02hi"])
    assert [r["resp_status"] for r in records] == [101]
    assert stitcher.parse_errors == 0


def test_unknown_role_yields_nothing_and_consumes_nothing() -> None:
    stitcher = HttpStitcher()
    egress, ingress = DataStream(), DataStream()
    egress.append(1, b"GET / HTTP/1.1\r\n\r\n")
    assert stitcher.process(ROLE_UNKNOWN, egress, ingress) == []
    assert stitcher.on_close(ROLE_UNKNOWN, egress, ingress) == []
    assert len(egress) > 0


def test_garbage_prefix_then_valid_exchange() -> None:
    req = b"\x00\x17garbage\r\n\r\nGET /ok HTTP/1.1\r\nHost: a\r\n\r\n"
    resp = b"\xff\xfe HTTP/1.1 999\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
    (rec,), stitcher = run(ROLE_SERVER, [req], [resp])
    assert (rec["req_path"], rec["resp_body"]) == ("/ok", "ok")
    assert stitcher.parse_errors == 2


def test_bad_chunk_size_counted_and_next_exchange_parsed() -> None:
    reqs = [b"GET /1 HTTP/1.1\r\n\r\n", b"GET /2 HTTP/1.1\r\n\r\n"]
    resps = [
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nnothex\r\nxx\r\n0\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
    ]
    records, stitcher = run(ROLE_CLIENT, reqs, resps)
    # the broken response is lost; /1 then takes /2's response (FIFO cannot know better)
    assert [r["resp_body"] for r in records] == ["ok"]
    assert stitcher.parse_errors == 1 and stitcher.dropped_requests == 1


def test_truncated_stream_counted_at_close() -> None:
    records, stitcher = run(
        ROLE_CLIENT, [b"GET / HTTP/1.1\r\n\r\n"], [b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nshort"]
    )
    assert records == []
    assert stitcher.parse_errors == 1 and stitcher.dropped_requests == 1


def test_one_stitcher_serves_many_connections() -> None:
    stitcher = HttpStitcher()
    conns = [(DataStream(), DataStream()) for _ in range(3)]
    for i, (egress, _) in enumerate(conns):
        egress.append(1, b"GET /c%d HTTP/1.1\r\n\r\n" % i)
        stitcher.process(ROLE_CLIENT, *conns[i])
    out = []
    for i, (egress, ingress) in reversed(list(enumerate(conns))):
        ingress.append(2, b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\n%d" % i)
        out += stitcher.process(ROLE_CLIENT, egress, ingress)
    assert [(r["req_path"], r["resp_body"]) for r in out] == [("/c2", "2"), ("/c1", "1"), ("/c0", "0")]


@settings(max_examples=200, deadline=None)
@given(
    st.binary(max_size=300),
    st.binary(max_size=300),
    st.sampled_from([ROLE_CLIENT, ROLE_SERVER]),
    st.integers(min_value=1, max_value=64),
)
def test_binary_noise_never_raises(egress_noise: bytes, ingress_noise: bytes, role: int, step: int) -> None:
    stitcher = HttpStitcher()
    egress, ingress = DataStream(), DataStream()
    for i in range(0, max(len(egress_noise), len(ingress_noise)), step):
        egress.append(i, egress_noise[i : i + step])
        ingress.append(i, ingress_noise[i : i + step])
        stitcher.process(role, egress, ingress)
    stitcher.on_close(role, egress, ingress)
    assert stitcher.internal_errors == 0
    assert len(egress) == 0 and len(ingress) == 0


@settings(max_examples=200, deadline=None)
@given(st.binary(min_size=1, max_size=200).filter(lambda b: b"HTTP" not in b))
def test_exchange_after_noise_still_parsed(noise: bytes) -> None:
    req = EXCHANGES[0][0]
    resp = EXCHANGES[0][1]
    records, stitcher = run(ROLE_CLIENT, [noise + req], [noise + resp])
    assert [r["req_path"] for r in records] == ["/api/items/1"]
    assert stitcher.parse_errors == 2


def test_last_resort_guard_counts_and_resets(monkeypatch: pytest.MonkeyPatch) -> None:
    """A parser bug must cost one connection's buffered bytes, not the agent."""

    def boom(*_args: object, **_kwargs: object) -> None:
        raise RuntimeError("bug")

    stitcher = HttpStitcher()
    egress, ingress = DataStream(), DataStream()
    egress.append(1, b"GET / HTTP/1.1\r\n\r\n")
    monkeypatch.setattr(HttpParser, "next_message", boom)
    monkeypatch.setattr(HttpParser, "flush_on_close", boom)
    assert stitcher.process(ROLE_CLIENT, egress, ingress) == []
    assert stitcher.internal_errors == 1 and len(egress) == 0
    assert stitcher.on_close(ROLE_CLIENT, egress, ingress) == []
    assert stitcher.internal_errors == 3
