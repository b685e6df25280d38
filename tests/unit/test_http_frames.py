"""HTTP/1 framing: start lines, headers, every body delimitation, partial input and garbage."""

from __future__ import annotations

import gzip
import zlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cluster.pem.data_stream import DataStream
from cluster.pem.protocols.http import HttpMessage, HttpParser, MessageKind, infer, role_for
from cluster.pem.protocols.http.frames import MAX_HEADER_BYTES, decode_body
from cluster.schemas import ROLE_CLIENT, ROLE_SERVER

REQ = MessageKind.REQUEST
RESP = MessageKind.RESPONSE

GET = b"GET /api/items?id=7&x=y HTTP/1.1\r\nHost: example.com\r\nX-Trace-ID: abc\r\nACCEPT: */*\r\n\r\n"
POST = b"POST /submit HTTP/1.1\r\nHost: h\r\nContent-Length: 11\r\n\r\nhello world"
OK = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 5\r\n\r\nhello"
CHUNKED = (
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Type: application/json\r\n\r\n"
    b'5;name=value;other\r\n{"a":\r\n'
    b"A\r\n 123456789\r\n"
    b"1 \r\n}\r\n"
    b"0\r\nExpires: never\r\nX-Checksum: 42\r\n\r\n"
)


def parse_all(
    kind: MessageKind, *chunks: bytes, body_cap: int = 512, head: bool = False
) -> tuple[list[HttpMessage], HttpParser, DataStream]:
    """Feed chunks one by one (timestamps 1, 2, ...) and collect every complete message."""
    stream = DataStream()
    parser = HttpParser(kind, body_cap)
    out: list[HttpMessage] = []
    for ts, chunk in enumerate(chunks, start=1):
        stream.append(ts, chunk)
        while (msg := parser.next_message(stream, head)) is not None:
            out.append(msg)
    return out, parser, stream


def summary(msgs: list[HttpMessage]) -> list[tuple[object, ...]]:
    return [
        (m.kind, m.minor_version, m.method, m.path, m.status, m.reason, m.headers, m.body, m.body_size) for m in msgs
    ]


# -- infer -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "kind"),
    [
        (b"GET / HTTP/1.1\r\n", REQ),
        (b"OPTIONS * HTTP/1.1", REQ),
        (b"PATCH /x", REQ),
        (b"HTTP/1.1 200 OK", RESP),
        (b"HTTP/1.0 404", RESP),
        (b"HTTP/2 200", None),
        (b"PRI * HTTP/2.0", None),
        (b"get / HTTP/1.1", None),
        (b"GET/ HTTP/1.1", None),
        (b"\x16\x03\x01\x02\x00", None),
        (b"", None),
        (b"GE", None),
    ],
)
def test_infer(data: bytes, kind: MessageKind | None) -> None:
    assert infer(data) is kind


def test_role_for() -> None:
    assert role_for(REQ, egress=True) == ROLE_CLIENT
    assert role_for(RESP, egress=False) == ROLE_CLIENT
    assert role_for(REQ, egress=False) == ROLE_SERVER
    assert role_for(RESP, egress=True) == ROLE_SERVER


# -- start lines and headers --------------------------------------------------------------------


def test_request_line_and_headers_case_preserved() -> None:
    (msg,), parser, stream = parse_all(REQ, GET)
    assert (msg.kind, msg.method, msg.path, msg.minor_version) == (REQ, "GET", "/api/items?id=7&x=y", 1)
    assert msg.headers == [("Host", "example.com"), ("X-Trace-ID", "abc"), ("ACCEPT", "*/*")]
    assert msg.header("x-trace-id") == "abc" and msg.header("accept") == "*/*"
    assert msg.header("missing") is None
    assert msg.body == b"" and msg.body_size == 0
    assert msg.ts_ns == 1 and parser.errors == 0 and len(stream) == 0


def test_status_line_variants() -> None:
    msgs, parser, _ = parse_all(
        RESP,
        b"HTTP/1.0 404 Not Found\r\nContent-Length: 0\r\n\r\n",
        b"HTTP/1.1 200\r\nContent-Length: 0\r\n\r\n",
        b"HTTP/1.1 500 Internal Server Error: db down\r\nContent-Length: 0\r\n\r\n",
    )
    assert [(m.minor_version, m.status, m.reason) for m in msgs] == [
        (0, 404, "Not Found"),
        (1, 200, ""),
        (1, 500, "Internal Server Error: db down"),
    ]
    assert parser.errors == 0


def test_header_values_trimmed_and_folded_and_bare_lf() -> None:
    (msg,), parser, _ = parse_all(REQ, b"GET / HTTP/1.0\nHost:   spaced \t\nX-Long: part one\n  part two\nEmpty:\n\n")
    assert msg.minor_version == 0
    assert msg.headers == [("Host", "spaced"), ("X-Long", "part one part two"), ("Empty", "")]
    assert parser.errors == 0


def test_utf8_and_invalid_bytes_in_headers_never_raise() -> None:
    (msg,), _, _ = parse_all(
        REQ, "GET /caf\u00e9 HTTP/1.1\r\nX-Name: J\u00fcrgen\r\n".encode() + b"X-Bin: \xff\xfe\r\n\r\n"
    )
    assert msg.path == "/caf\u00e9"
    assert msg.headers[0] == ("X-Name", "J\u00fcrgen")
    assert msg.headers[1] == ("X-Bin", "\ufffd\ufffd")


# -- bodies --------------------------------------------------------------------------------------


def test_content_length_bodies() -> None:
    msgs, _, stream = parse_all(REQ, POST + POST)
    assert [(m.method, m.body, m.body_size) for m in msgs] == [("POST", b"hello world", 11)] * 2
    assert len(stream) == 0


def test_body_cap_keeps_prefix_and_full_size() -> None:
    body = bytes(range(256)) * 40  # 10 KiB
    raw = b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)
    (msg,), _, _ = parse_all(RESP, raw)
    assert msg.body == body[:512] and msg.body_size == len(body)
    (small,), _, _ = parse_all(RESP, raw, body_cap=16)
    assert small.body == body[:16] and small.body_size == len(body)
    # arriving in pieces: bytes beyond the cap are counted, not kept
    pieces = [raw[i : i + 1000] for i in range(0, len(raw), 1000)]
    (split,), parser, stream = parse_all(RESP, *pieces)
    assert split.body == body[:512] and split.body_size == len(body)
    assert parser.errors == 0 and len(stream) == 0


def test_large_body_streams_through_without_buffering() -> None:
    """A 5 MiB body (more than the 1 MiB stream cap) is skipped as it arrives."""
    size = 5 << 20
    stream = DataStream()
    parser = HttpParser(RESP)
    stream.append(1, b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % size)
    assert parser.next_message(stream) is None and parser.busy
    block = b"z" * 65536
    for _ in range(size // len(block)):
        stream.append(2, block)
        assert parser.next_message(stream) is None or len(stream) == 0
        assert len(stream) == 0
    assert stream.overflows == 0


def test_large_body_completes() -> None:
    size = 300_000
    chunks = [b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % size] + [b"q" * 1000] * 300
    (msg,), parser, _ = parse_all(RESP, *chunks)
    assert msg.body_size == size and msg.body == b"q" * 512 and parser.errors == 0


def test_chunked_with_extensions_and_trailers() -> None:
    (msg, after), parser, _ = parse_all(RESP, CHUNKED + OK)
    assert after.body == b"hello"
    assert msg.body == b'{"a": 123456789}' and msg.body_size == 16
    assert msg.content_type == "application/json"
    assert ("Expires", "never") not in msg.headers  # trailers are skipped, like Pixie
    assert parser.errors == 0
    (msg2,), _, _ = parse_all(RESP, CHUNKED, body_cap=4)
    assert msg2.body == b'{"a"' and msg2.body_size == 16


def test_chunked_request_and_transfer_encoding_list() -> None:
    raw = b"PUT /u HTTP/1.1\r\nTransfer-Encoding: gzip, chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n"
    msgs, parser, _ = parse_all(REQ, raw + GET)
    assert [(m.method, m.body, m.body_size) for m in msgs] == [("PUT", b"abc", 3), ("GET", b"", 0)]
    assert parser.errors == 0


def test_chunked_bare_lf() -> None:
    raw = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\nab\n0\n\n"
    (msg,), parser, _ = parse_all(RESP, raw)
    assert msg.body == b"ab" and parser.errors == 0


@pytest.mark.parametrize("mode", ["length", "chunked"])
def test_gzip_body_decoded(mode: str) -> None:
    plain = b'{"items": [' + b",".join(b'{"n": %d}' % i for i in range(400)) + b"]}"
    comp = gzip.compress(plain)
    if mode == "length":
        raw = b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: %d\r\n\r\n%s" % (len(comp), comp)
    else:
        half = len(comp) // 2
        raw = (
            b"HTTP/1.1 200 OK\r\nContent-Encoding: GZIP\r\nTransfer-Encoding: chunked\r\n\r\n"
            + b"%x\r\n%s\r\n%x\r\n%s\r\n0\r\n\r\n" % (half, comp[:half], len(comp) - half, comp[half:])
        )
    (msg,), _, _ = parse_all(RESP, raw)
    assert msg.body == plain[:512]
    assert msg.body_size == len(comp)  # wire size, before decoding
    (small,), _, _ = parse_all(RESP, *[raw[i : i + 7] for i in range(0, len(raw), 7)], body_cap=40)
    assert small.body == plain[:40]


def test_deflate_zlib_and_raw_and_corrupt() -> None:
    plain = b"deflated text " * 20
    raw_deflate = zlib.compressobj(wbits=-15)
    raw_bytes = raw_deflate.compress(plain) + raw_deflate.flush()
    assert decode_body(zlib.compress(plain), "deflate", 512) == plain
    assert decode_body(raw_bytes, "deflate", 512) == plain
    assert decode_body(zlib.compress(plain), "gzip", 10) == plain[:10]  # mislabelled zlib
    assert decode_body(b"not gzip at all", "gzip", 512) == b"<Failed to gunzip body>"
    assert decode_body(b"abc", "br", 2) == b"ab"  # unknown coding: raw, capped
    assert decode_body(gzip.compress(plain), "gzip", 0) == b""


def test_head_response_has_no_body() -> None:
    head_resp = b"HTTP/1.1 200 OK\r\nContent-Length: 1234\r\nContent-Type: text/html\r\n\r\n"
    stream = DataStream()
    parser = HttpParser(RESP)
    stream.append(1, head_resp + OK)
    first = parser.next_message(stream, head_response=True)
    second = parser.next_message(stream, head_response=False)
    assert first is not None and first.body_size == 0 and first.body == b""
    assert second is not None and second.body == b"hello"


@pytest.mark.parametrize("status", [b"204 No Content", b"304 Not Modified", b"100 Continue", b"103 Early Hints"])
def test_statuses_without_body(status: bytes) -> None:
    raw = b"HTTP/1.1 " + status + b"\r\nContent-Length: 50\r\n\r\n"
    msgs, parser, _ = parse_all(RESP, raw + OK)
    assert [m.status for m in msgs] == [int(status[:3]), 200]
    assert msgs[0].body_size == 0 and parser.errors == 0


def test_close_delimited_body_completed_on_close() -> None:
    stream = DataStream()
    parser = HttpParser(RESP)
    stream.append(1, b"HTTP/1.0 200 OK\r\nContent-Type: text/html\r\n\r\n<html>")
    assert parser.next_message(stream) is None
    stream.append(2, b"</html>")
    assert parser.next_message(stream) is None and len(stream) == 0
    msg = parser.flush_on_close(stream)
    assert msg is not None and msg.body == b"<html></html>" and msg.body_size == 13
    assert msg.ts_ns == 1 and parser.errors == 0


def test_request_without_length_has_no_body() -> None:
    msgs, parser, _ = parse_all(REQ, b"POST /x HTTP/1.1\r\nHost: a\r\n\r\n" + GET)
    assert [(m.method, m.body_size) for m in msgs] == [("POST", 0), ("GET", 0)]
    assert parser.errors == 0


# -- partial input, pipelining -------------------------------------------------------------------


def test_partial_header_consumes_nothing() -> None:
    stream = DataStream()
    parser = HttpParser(REQ)
    for i in range(1, len(GET)):
        stream.append(i, GET[i - 1 : i])
        assert parser.next_message(stream) is None
        assert len(stream) == i  # nothing consumed while the header block is incomplete
    stream.append(999, GET[-1:])
    msg = parser.next_message(stream)
    assert msg is not None and msg.ts_ns == 1 and len(stream) == 0


@pytest.mark.parametrize("kind,raw", [(REQ, GET + POST + GET), (RESP, CHUNKED + OK + CHUNKED)])
def test_split_at_every_byte(kind: MessageKind, raw: bytes) -> None:
    whole = summary(parse_all(kind, raw)[0])
    assert len(whole) == 3
    for i in range(len(raw) + 1):
        msgs, parser, stream = parse_all(kind, raw[:i], raw[i:])
        assert summary(msgs) == whole, i
        assert parser.errors == 0 and len(stream) == 0


def test_pipelined_messages_in_one_buffer_keep_their_timestamps() -> None:
    stream = DataStream()
    parser = HttpParser(REQ)
    stream.append(100, GET + POST[:20])
    stream.append(200, POST[20:] + GET)
    msgs = []
    while (m := parser.next_message(stream)) is not None:
        msgs.append(m)
    assert [(m.method, m.ts_ns) for m in msgs] == [("GET", 100), ("POST", 100), ("GET", 200)]


# -- malformed input ------------------------------------------------------------------------------


def test_garbage_prefix_then_valid_request() -> None:
    msgs, parser, _ = parse_all(REQ, b"\x00\x01garbage PUT GET-ish\r\n\r\n" + GET)
    assert [m.path for m in msgs] == ["/api/items?id=7&x=y"]
    assert parser.errors == 1


def test_garbage_prefix_then_valid_response_across_calls() -> None:
    msgs, parser, _ = parse_all(RESP, b"\xde\xad\xbe\xef HTTP", b"/1.", b"1 200 OK\r\nContent-Length: 0\r\n\r\n")
    assert [m.status for m in msgs] == [200]
    assert parser.errors == 1


def test_bad_request_lines() -> None:
    for bad in (
        b"GET /x HTTP/2.0\r\n\r\n",
        b"GET  HTTP/1.1\r\n\r\n",
        b"FETCH / HTTP/1.1\r\n\r\n",
        b"GET /a b HTTP/1.1\r\n\r\n",
        b"GET / HTTP/1.x\r\n\r\n",
        b"GET / HTTP/1.1\r\nNoColonHere\r\n\r\n",
        b"GET / HTTP/1.1\r\nBad Name : v\r\n\r\n",
        b"GET / HTTP/1.1\r\nContent-Length: -1\r\n\r\n",
        b"GET / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
    ):
        msgs, parser, _ = parse_all(REQ, bad + GET)
        assert [m.method for m in msgs] == ["GET"], bad
        assert msgs[0].path == "/api/items?id=7&x=y"
        assert parser.errors == 1, bad


def test_bad_status_line_detected_before_headers_complete() -> None:
    stream = DataStream()
    parser = HttpParser(RESP)
    stream.append(1, b"HTTP/1.1 2x0 OK\r\nServer: partial")
    assert parser.next_message(stream) is None
    assert parser.errors == 1 and len(stream) == 0


def test_bad_chunk_size_counts_error_and_resyncs() -> None:
    raw = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n0\r\n\r\n"
    msgs, parser, _ = parse_all(RESP, raw + OK)
    assert [m.body for m in msgs] == [b"hello"]
    assert parser.errors == 1
    missing_crlf = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabcX\r\n"
    msgs, parser, _ = parse_all(RESP, missing_crlf + OK)
    assert [m.body for m in msgs] == [b"hello"] and parser.errors == 1


def test_oversized_header_block_is_an_error() -> None:
    stream = DataStream()
    parser = HttpParser(REQ)
    stream.append(1, b"GET / HTTP/1.1\r\nX-Big: " + b"a" * (MAX_HEADER_BYTES + 10))
    assert parser.next_message(stream) is None
    assert parser.errors == 1 and len(stream) < 100
    stream.append(2, b"\r\n\r\n" + GET)
    msg = parser.next_message(stream)
    assert msg is not None and msg.path == "/api/items?id=7&x=y"


def test_truncated_stream_at_close_is_an_error() -> None:
    stream = DataStream()
    parser = HttpParser(RESP)
    stream.append(1, OK[:-2])
    assert parser.next_message(stream) is None
    assert parser.flush_on_close(stream) is None
    assert parser.errors == 1 and len(stream) == 0


def test_overflow_resets_half_parsed_message() -> None:
    stream = DataStream(max_bytes=200)
    parser = HttpParser(RESP)
    stream.append(1, b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n" + b"x" * 10)
    assert parser.next_message(stream) is None and parser.busy
    stream.append(2, b"y" * 300)  # overflow: bytes lost
    stream.append(3, OK)
    msg = parser.next_message(stream)
    assert msg is not None and msg.body == b"hello"
    assert parser.errors == 1 and stream.overflows == 1


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=400), st.sampled_from([REQ, RESP]), st.integers(min_value=1, max_value=50))
def test_binary_noise_never_raises(noise: bytes, kind: MessageKind, step: int) -> None:
    chunks = [noise[i : i + step] for i in range(0, len(noise), step)]
    _, parser, stream = parse_all(kind, *chunks)
    parser.flush_on_close(stream)
    assert len(stream) == 0


@settings(max_examples=300, deadline=None)
@given(st.binary(min_size=1, max_size=300).filter(lambda b: b"HTTP" not in b), st.sampled_from([REQ, RESP]))
def test_valid_message_after_noise_is_found(noise: bytes, kind: MessageKind) -> None:
    valid = GET if kind == REQ else OK
    msgs, parser, _ = parse_all(kind, noise + valid)
    assert summary(msgs) == summary(parse_all(kind, valid)[0])
    assert parser.errors == 1


def test_header_edge_cases() -> None:
    raw = b"POST /e HTTP/1.1\r\nAccept-Charset: utf-8\r\nContent-Length: 3, 3\r\n\r\nabc"
    (msg,), parser, _ = parse_all(REQ, raw)
    assert msg.body == b"abc" and msg.header("accept-charset") == "utf-8" and parser.errors == 0


def test_response_with_non_chunked_transfer_encoding_is_close_delimited() -> None:
    stream = DataStream()
    parser = HttpParser(RESP)
    stream.append(1, b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\nContent-Length: 2\r\n\r\nabcdef")
    assert parser.next_message(stream) is None
    msg = parser.flush_on_close(stream)
    assert msg is not None and msg.body_size == 6


def test_noise_before_a_distant_blank_line() -> None:
    msgs, parser, _ = parse_all(REQ, b"x" * 3000 + b"\r\n\r\n" + GET)
    assert [m.method for m in msgs] == ["GET"] and parser.errors == 1


def test_response_resync_skips_false_candidates_and_waits_on_short_ones() -> None:
    msgs, parser, _ = parse_all(RESP, b"junk HTTP/1.x 200 HTTP/1.1 2", b"00 OK\r\nContent-Length: 0\r\n\r\n")
    assert [m.status for m in msgs] == [200] and parser.errors == 1
