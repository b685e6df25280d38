"""HTTP/2 and gRPC: inference, framing, HPACK state across frames and blocks, CONTINUATION, stream
interleaving, RST_STREAM, trailers and gRPC status, gRPC bodies as protobuf text, connections seen
mid-stream (undecodable headers reported, never guessed), malformed input and fuzzing with bounded
buffering, and the connection tracker writing http_events with major_version 2.

The bytes are real HTTP/2: both peers are the `h2` library's connection state machines talking to
each other in memory (its HPACK encoder, its framing, its flow control); a few malformed frames are
built by hand from RFC 9113 with `hyperframe`, h2's own frame codec.
"""

from __future__ import annotations

import gzip
import json
import os
import socket
import struct

import h2.config
import h2.connection
import h2.events
import h2.settings
import pytest
from google.protobuf import descriptor_pb2, empty_pb2, text_format, wrappers_pb2
from hyperframe.frame import ContinuationFrame, DataFrame, HeadersFrame, PingFrame, RstStreamFrame
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cluster.pem.conn_tracker import ConnTracker
from cluster.pem.data_stream import DataStream
from cluster.pem.process_info import ProcessCache
from cluster.pem.protocols.http.infer import MessageKind
from cluster.pem.protocols.http2 import PREFACE, UNDECODED_KEY, Http2Stitcher, infer
from cluster.pem.protocols.http2.frames import MAX_BUFFERED_FRAME, H2Parser
from cluster.pem.protocols.http2.grpc import FAILED, body_text, message_text
from cluster.pem.protocols.registry import PROTOCOLS
from cluster.pem.sources.socket_events import ConnEvent, ConnKind, DataEvent, Direction, SockAddr
from cluster.schemas import CONTENT_GRPC, CONTENT_UNKNOWN, PROTOCOL_HTTP2, ROLE_CLIENT, ROLE_SERVER
from cluster.store.table_store import TableStore
from tests.util import as_rows

GRPC_CT = ("content-type", "application/grpc")


def grpc_msg(payload: bytes, compressed: bool = False) -> bytes:
    return bytes([1 if compressed else 0]) + struct.pack(">I", len(payload)) + payload


def string_value(s: str) -> bytes:
    return wrappers_pb2.StringValue(value=s).SerializeToString()


def send_chunked(conn: h2.connection.H2Connection, sid: int, body: bytes, end: bool) -> None:
    """DATA frames no larger than the peer allows (the window is 64 KiB by default: enough here)."""
    size = conn.max_outbound_frame_size
    for i in range(0, len(body), size):
        conn.send_data(sid, body[i : i + size], end_stream=end and i + size >= len(body))


class Pair:
    """A client and a server h2 connection wired together; every write is recorded with a
    timestamp so the test can replay the client's egress and ingress into DataStreams."""

    def __init__(self, client_settings: dict | None = None, server_settings: dict | None = None) -> None:
        self.client = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True, header_encoding=None))
        self.server = h2.connection.H2Connection(h2.config.H2Configuration(client_side=False, header_encoding=None))
        self.writes: list[tuple[int, bool, bytes]] = []  # (ts, from client, bytes)
        self.ts = 1_000
        self.client.initiate_connection()
        if client_settings:
            self.client.update_settings(client_settings)
        self.server.initiate_connection()
        if server_settings:
            self.server.update_settings(server_settings)
        self.flush()

    def flush(self) -> None:
        """Deliver what each side wrote until both are quiet."""
        while True:
            up, down = self.client.data_to_send(), self.server.data_to_send()
            if not up and not down:
                return
            if up:
                self._write(True, up)
                self.server.receive_data(up)
            if down:
                self._write(False, down)
                self.client.receive_data(down)

    def _write(self, from_client: bool, data: bytes) -> None:
        self.ts += 1_000
        self.writes.append((self.ts, from_client, data))

    def request(self, path: str, extra=(), body: bytes = b"", end: bool = True, method: str = "POST") -> int:
        sid = self.client.get_next_available_stream_id()
        headers = [(":method", method), (":scheme", "http"), (":authority", "svc:50051"), (":path", path), *extra]
        self.client.send_headers(sid, headers, end_stream=not body and end)
        send_chunked(self.client, sid, body, end)
        self.flush()
        return sid

    def respond(self, sid: int, headers=(), body: bytes = b"", trailers=None, status: str = "200") -> None:
        self.server.send_headers(sid, [(":status", status), *headers], end_stream=not body and trailers is None)
        send_chunked(self.server, sid, body, trailers is None)
        if trailers is not None:
            self.server.send_headers(sid, trailers, end_stream=True)
        self.flush()

    def client_streams(self, skip: int = 0) -> tuple[DataStream, DataStream]:
        """(egress, ingress) as the client process's socket saw them, from write ``skip`` on."""
        egress, ingress = DataStream(), DataStream()
        for ts, up, data in self.writes[skip:]:
            (egress if up else ingress).append(ts, data)
        return egress, ingress


def stitch_client(pair: Pair, skip: int = 0, st_: Http2Stitcher | None = None) -> tuple[list[dict], Http2Stitcher]:
    st_ = st_ or Http2Stitcher()
    egress, ingress = pair.client_streams(skip)
    return st_.process(ROLE_CLIENT, egress, ingress), st_


def replay(pair: Pair, role: int, chunk: int | None = None) -> tuple[list[dict], Http2Stitcher]:
    """Feed the recorded writes one by one (optionally split into ``chunk``-byte pieces), calling
    the stitcher after every piece as the tracker does."""
    st_ = Http2Stitcher()
    egress, ingress = DataStream(), DataStream()
    rows: list[dict] = []
    for ts, up, data in pair.writes:
        sent = up if role == ROLE_CLIENT else not up
        stream = egress if sent else ingress
        step = chunk or len(data)
        for i in range(0, len(data), step):
            stream.append(ts, data[i : i + step])
            rows += st_.process(role, egress, ingress)
    return rows, st_


# -- inference ----------------------------------------------------------------------------------


def test_infer_preface_server_settings_and_mid_stream_headers():
    pair = Pair()
    up = pair.writes[0][2]
    down = next(d for _, c, d in pair.writes if not c)
    assert up.startswith(PREFACE)
    assert infer(up) is MessageKind.REQUEST
    assert infer(up[:14]) is MessageKind.REQUEST  # a preface split across reads
    assert infer(down) is MessageKind.RESPONSE  # the server's first SETTINGS frame
    n = len(pair.writes)
    sid = pair.request("/a", body=b"x")
    pair.respond(sid, body=b"y")
    req_headers = next(d for _, c, d in pair.writes[n:] if c)
    resp_headers = next(d for _, c, d in pair.writes[n:] if not c)
    assert req_headers[3] == 1 and infer(req_headers) is MessageKind.REQUEST
    assert resp_headers[3] == 1 and infer(resp_headers) is MessageKind.RESPONSE


@pytest.mark.parametrize(
    "data",
    [
        b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
        b"HTTP/1.1 200 OK\r\n\r\n",
        b"\x4a\x00\x00\x00\x0a5.5.5-10.11.6-MariaDB\x00",  # MySQL greeting
        b"\x00\x00\x00\x54\x00\x03\x00\x00user\x00postgres\x00",  # PostgreSQL startup
        b"*1\r\n$4\r\nPING\r\n",
        b"AMQP\x00\x00\x09\x01",
        b"\x10\x0c\x00\x04MQTT\x04\x02\x00\x3c",
        b"\x00\x00\x04\x01\x00\x00\x00\x00\x00",  # SETTINGS-like but with ACK/odd bits
        b"\x00\x00\x06\x04\x00\x00\x00\x00\x00\x00\x02\x00\x00\x00\x07",  # ENABLE_PUSH=7 is illegal
        b"\x00\x00\x05\x01\x04\x00\x00\x00\x01\x40\x01a\x01b",  # HEADERS starting with a non-pseudo literal
        b"\x00\x00\x03\x01\x04\x00\x00\x00\x02\x82\x84\x86",  # a request on an even (server) stream
        b"PRI * HTTP/1.1\r\n",
    ],
)
def test_infer_rejects_other_protocols(data: bytes):
    assert infer(data) is None


def test_registry_gives_http2_bytes_to_http2_only():
    pair = Pair()
    sid = pair.request("/a")
    pair.respond(sid)
    for _, _, data in pair.writes[:3]:
        owner = next((p for p in PROTOCOLS if p.infer(data) is not None), None)
        if infer(data) is not None:
            assert owner is not None and owner.code == PROTOCOL_HTTP2 and owner.table == "http_events"


# -- requests and responses ---------------------------------------------------------------------


def test_plain_h2_request_response_row():
    pair = Pair()
    sid = pair.request("/items?x=1", extra=[("user-agent", "curl/7.88")], method="GET")
    pair.respond(sid, headers=[("content-type", "text/plain")], body=b"hello over h2")
    [row], st_ = stitch_client(pair)
    assert row["major_version"] == 2 and row["minor_version"] == 0 and row["content_type"] == CONTENT_UNKNOWN
    assert row["req_method"] == "GET" and row["req_path"] == "/items?x=1"
    assert row["req_headers"] == (
        '{":authority":"svc:50051",":method":"GET",":path":"/items?x=1",":scheme":"http","user-agent":"curl/7.88"}'
    )
    assert row["resp_status"] == 200 and row["resp_message"] == "OK"
    assert row["resp_headers"] == '{":status":"200","content-type":"text/plain"}'
    assert row["resp_body"] == "hello over h2" and row["resp_body_size"] == 13
    assert row["req_body"] == "" and row["req_body_size"] == 0
    assert row["latency"] > 0 and row["time_"] > row["latency"]
    assert st_.parse_errors == 0 and st_.internal_errors == 0 and not st_.mid_stream


def test_server_side_view_pairs_the_same_way():
    pair = Pair()
    sid = pair.request("/srv", body=b"ping")
    pair.respond(sid, body=b"pong")
    [row], st_ = replay(pair, ROLE_SERVER)
    assert (row["req_path"], row["req_body"], row["resp_body"]) == ("/srv", "ping", "pong")
    assert st_.parse_errors == 0


def test_hpack_dynamic_table_carries_across_requests():
    pair = Pair()
    n0 = len(pair.writes)
    extra = [("x-tenant", "acme-corporation"), ("authorization", "Bearer t0ken")]
    s1 = pair.request("/first", extra=extra)
    first_block = len(pair.writes[n0][2])
    pair.respond(s1)
    n1 = len(pair.writes)
    s2 = pair.request("/second", extra=extra)
    second_block = len(pair.writes[n1][2])
    pair.respond(s2)
    assert second_block < first_block - 20  # the repeat is sent as dynamic-table indices
    rows, st_ = stitch_client(pair)
    assert [r["req_path"] for r in rows] == ["/first", "/second"]
    assert all('"x-tenant":"acme-corporation"' in r["req_headers"] for r in rows)
    assert st_.parse_errors == 0


def test_header_table_size_setting_lets_the_encoder_grow_its_table():
    pair = Pair(client_settings={h2.settings.SettingCodes.HEADER_TABLE_SIZE: 200_000})
    pair.client.decoder.max_header_list_size = 1 << 20  # h2's own guard is 64 KiB
    extra = [(f"x-h{i}", "v" * 3000) for i in range(30)]  # ~90 KB: does not fit a 64 KiB table
    sid = pair.request("/big-table")
    pair.respond(sid, headers=extra)
    sid = pair.request("/again")
    pair.respond(sid, headers=extra)  # indexed from the server's 200 KB table
    rows, st_ = stitch_client(pair)
    assert [r["req_path"] for r in rows] == ["/big-table", "/again"]
    assert rows[1]["resp_headers"] == rows[0]["resp_headers"] and '"x-h29":"vvv' in rows[1]["resp_headers"]
    assert st_.parse_errors == 0


def test_continuation_frames_from_h2_and_by_hand():
    pair = Pair()
    big = [("x-big", "b" * 40_000)]  # larger than the 16 KiB max frame: HEADERS + CONTINUATION
    sid = pair.request("/cont", extra=big)
    pair.respond(sid)
    [row], st_ = stitch_client(pair)
    assert row["req_path"] == "/cont" and '"x-big":"' + "b" * 40_000 + '"' in row["req_headers"]
    assert st_.parse_errors == 0

    # By hand: one block split over HEADERS and two CONTINUATION frames, a PING between blocks.
    enc = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True)).encoder
    block = enc.encode([(":method", "GET"), (":scheme", "http"), (":path", "/hand"), (":authority", "a")])
    frames = [
        HeadersFrame(1, block[:3], flags=[]).serialize(),
        ContinuationFrame(1, block[3:6]).serialize(),
        ContinuationFrame(1, block[6:], flags=["END_HEADERS"]).serialize(),
    ]
    resp_block = h2.connection.H2Connection(h2.config.H2Configuration(client_side=False)).encoder.encode(
        [(":status", "204")]
    )
    egress, ingress = DataStream(), DataStream()
    egress.append(1, PREFACE + b"".join(frames[:2]))
    st_ = Http2Stitcher()
    assert st_.process(ROLE_CLIENT, egress, ingress) == []  # the block is not complete yet
    assert isinstance(egress.state, H2Parser) and len(egress) == 0  # fragments held by the parser
    egress.append(3, frames[2] + PingFrame(0, b"12345678").serialize())
    ingress.append(4, HeadersFrame(1, resp_block, flags=["END_HEADERS", "END_STREAM"]).serialize())
    [row] = st_.process(ROLE_CLIENT, egress, ingress)
    assert row["req_path"] == "/hand" and row["resp_status"] == 204 and row["latency"] == 3
    assert st_.parse_errors == 0


def test_interleaved_streams_pair_by_stream_id():
    pair = Pair()
    ids = {}
    for name in ("alpha", "beta", "gamma"):
        sid = pair.client.get_next_available_stream_id()
        pair.client.send_headers(sid, [(":method", "POST"), (":scheme", "http"), (":authority", "a"),
                                       (":path", f"/{name}")])  # fmt: skip
        ids[name] = sid
    for name, sid in ids.items():
        pair.client.send_data(sid, f"req-{name}".encode(), end_stream=True)
    pair.flush()
    for sid in ids.values():  # headers for all, then DATA interleaved in reverse order
        pair.server.send_headers(sid, [(":status", "200")])
    for name, sid in reversed(ids.items()):
        pair.server.send_data(sid, f"resp-{name}-part1|".encode())
    for name, sid in ids.items():
        pair.server.send_data(sid, f"resp-{name}-part2".encode(), end_stream=True)
    pair.flush()
    rows, st_ = stitch_client(pair)
    by_path = {r["req_path"]: r for r in rows}
    assert set(by_path) == {"/alpha", "/beta", "/gamma"}
    for name in ids:
        assert by_path[f"/{name}"]["req_body"] == f"req-{name}"
        assert by_path[f"/{name}"]["resp_body"] == f"resp-{name}-part1|resp-{name}-part2"
    assert [r["req_path"] for r in rows] == ["/alpha", "/beta", "/gamma"]  # ended in this order
    assert st_.parse_errors == 0


def test_rst_stream_after_response_began_and_before_it():
    pair = Pair()
    s1 = pair.request("/cancelled-late")
    pair.server.send_headers(s1, [(":status", "200")])
    pair.server.send_data(s1, b"partial")
    pair.flush()
    pair.client.reset_stream(s1)
    s2 = pair.request("/cancelled-early", end=False)
    pair.client.reset_stream(s2)
    pair.flush()
    rows, st_ = stitch_client(pair)
    [row] = rows
    assert row["req_path"] == "/cancelled-late" and row["resp_body"] == "partial" and row["resp_status"] == 200
    assert st_.dropped_requests == 1 and not st_.streams


def test_goaway_drops_streams_the_server_will_not_process():
    pair = Pair()
    s1 = pair.request("/kept")
    pair.request("/refused")
    pair.server.close_connection(last_stream_id=s1)
    pair.flush()
    rows, st_ = stitch_client(pair)
    assert rows == [] and st_.dropped_requests == 1 and list(st_.streams) == [s1]


def test_push_promise_becomes_a_row_of_the_pushed_stream():
    pair = Pair()
    sid = pair.request("/index", method="GET")
    pushed = 2
    pair.server.push_stream(sid, pushed, [(":method", "GET"), (":scheme", "http"), (":authority", "a"),
                                          (":path", "/style.css")])  # fmt: skip
    pair.respond(sid, body=b"<html>")
    pair.respond(pushed, body=b"body{}")
    rows, _ = stitch_client(pair)
    assert {r["req_path"]: r["resp_body"] for r in rows} == {"/index": "<html>", "/style.css": "body{}"}


def test_gzip_body_and_informational_response():
    pair = Pair()
    sid = pair.request("/gz", method="GET")
    pair.server.send_headers(sid, [(":status", "103"), ("link", "</s.css>")])
    pair.respond(sid, headers=[("content-encoding", "gzip")], body=gzip.compress(b"unzipped text"))
    [row], _ = stitch_client(pair)
    assert row["resp_status"] == 200 and row["resp_body"] == "unzipped text" and '"link"' not in row["resp_headers"]


def test_body_cap_and_truncation_marker():
    pair = Pair()
    sid = pair.request("/big", body=b"q" * 3000)
    pair.respond(sid, body=b"r" * 60_000)
    [row], _ = stitch_client(pair)
    assert row["req_body"] == "q" * 512 + "... [TRUNCATED]" and row["req_body_size"] == 3000
    assert row["resp_body"] == "r" * 512 + "... [TRUNCATED]" and row["resp_body_size"] == 60_000


# -- gRPC ---------------------------------------------------------------------------------------


def test_grpc_unary_ok_error_and_trailers_only():
    pair = Pair()
    s1 = pair.request("/demo.Greeter/SayHello", extra=[GRPC_CT, ("te", "trailers")],
                      body=grpc_msg(string_value("pixie")))  # fmt: skip
    pair.respond(s1, headers=[GRPC_CT], body=grpc_msg(string_value("Hello pixie")),
                 trailers=[("grpc-status", "0"), ("grpc-message", "")])  # fmt: skip
    s2 = pair.request("/demo.Greeter/SayHello", extra=[GRPC_CT], body=grpc_msg(string_value("nobody")))
    pair.respond(s2, headers=[GRPC_CT, ("grpc-status", "5"), ("grpc-message", "no%20such%20user: nobody")])
    rows, st_ = stitch_client(pair)
    ok, err = rows
    assert ok["content_type"] == CONTENT_GRPC and ok["req_path"] == "/demo.Greeter/SayHello"
    assert ok["req_body"] == '1: "pixie"' and ok["resp_body"] == '1: "Hello pixie"'
    assert ok["resp_status"] == 200 and ok["resp_message"] == "OK"
    assert '"grpc-status":"0"' in ok["resp_headers"]  # trailers merged into the response headers
    assert err["resp_status"] == 200 and err["resp_message"] == "NOT_FOUND: no such user: nobody"
    assert err["resp_body"] == "" and err["resp_body_size"] == 0 and err["req_body"] == '1: "nobody"'
    assert '"grpc-status":"5"' in err["resp_headers"]
    assert st_.parse_errors == 0


def test_grpc_server_streaming_is_one_row_when_the_stream_ends():
    pair = Pair()
    sid = pair.request("/demo.Feed/Watch", extra=[GRPC_CT], body=grpc_msg(string_value("topic")))
    pair.server.send_headers(sid, [(":status", "200"), GRPC_CT])
    pair.flush()
    rows, _ = stitch_client(pair)
    assert rows == []
    for i in range(3):
        pair.server.send_data(sid, grpc_msg(string_value(f"event-{i}")))
        pair.flush()
    pair.server.send_headers(sid, [("grpc-status", "0")], end_stream=True)
    pair.flush()
    [row], _ = stitch_client(pair)
    assert row["resp_body"] == '1: "event-0"\n1: "event-1"\n1: "event-2"'
    assert row["resp_body_size"] == 3 * len(grpc_msg(string_value("event-0")))


def test_grpc_gzip_messages_are_inflated():
    pair = Pair()
    payload = grpc_msg(gzip.compress(string_value("squeezed")), compressed=True)
    sid = pair.request("/demo.Z/Get", extra=[GRPC_CT, ("grpc-encoding", "gzip")], body=payload)
    pair.respond(sid, headers=[GRPC_CT, ("grpc-encoding", "snappy")], body=grpc_msg(b"??", compressed=True),
                 trailers=[("grpc-status", "0")])  # fmt: skip
    [row], _ = stitch_client(pair)
    assert row["req_body"] == '1: "squeezed"'
    assert row["resp_body"] == "<Non-gzip decompression not supported>"


def test_protobuf_text_matches_pixie_and_protobuf():
    # Pixie's grpc_test.cc: a string that also parses as a message is printed as one.
    assert body_text(grpc_msg(b"\x0a\x09pixielabs"), "", 512) == "1 {\n  14: 105\n  15: 105\n  12: 0x7362616c\n}"
    hello = grpc_msg(b"\x0a\x0bHello world")
    assert body_text(hello * 3, "", 512) == '1: "Hello world"\n1: "Hello world"\n1: "Hello world"'
    assert body_text(grpc_msg(b"\x09" + bytes(range(8))), "", 512) == "1: 0x0706050403020100"
    assert body_text(b"\x00\x00\x00", "", 512) == FAILED  # shorter than a message header
    assert body_text(grpc_msg(b"\x0a\x05ab"), "", 512) == FAILED  # nothing whole to print
    assert body_text(grpc_msg(b"\x08\x01\x12\x05abcdefg")[:12], "", 512) == "1: 1"  # cut by the cap
    # Messages without fixed-width fields print exactly as protobuf's own text printer prints them.
    fd = descriptor_pb2.FileDescriptorProto(name="a.proto", package="demo", dependency=["b.proto", "c.proto"])
    fd.message_type.add(name="Msg").field.add(name="id", number=1, type=5, label=1)
    fd.options.java_package = 'x\ny"z\x01\xff'.encode("latin-1").decode("latin-1")
    raw = fd.SerializeToString()
    parsed = empty_pb2.Empty()
    parsed.ParseFromString(raw)
    expected = text_format.MessageToString(parsed, print_unknown_fields=True)
    text, ok = message_text(raw)
    assert ok and text == expected


# -- connections seen mid-stream ----------------------------------------------------------------


def test_mid_stream_connection_reports_undecodable_fields_and_stays_exact():
    pair = Pair()
    s1 = pair.request("/before", extra=[("x-session", "s-1")])  # inserts :authority, x-session, ...
    pair.respond(s1, headers=[("x-served-by", "node-a")], body=b"one")
    start = len(pair.writes)  # the agent starts here: the preface and the first exchange are unseen
    s2 = pair.request("/during", extra=[("x-session", "s-1"), ("x-new", "n-2")])
    pair.respond(s2, headers=[("x-served-by", "node-a"), ("x-trace", "t-2")], body=b"two")
    s3 = pair.request("/after", extra=[("x-new", "n-2")])  # x-new: inserted while we watched
    pair.respond(s3, headers=[("x-trace", "t-2")], body=b"three")
    first_seen = pair.writes[start][2]
    assert infer(first_seen) is MessageKind.REQUEST  # the tracker recognises a mid-stream HEADERS
    rows, st_ = stitch_client(pair, skip=start)
    assert st_.mid_stream and [r["resp_body"] for r in rows] == ["two", "three"]
    during, after = rows
    # Static-table and literal fields decode; fields naming entries sent before the capture are
    # reported, never filled in.
    assert (during["req_method"], during["req_path"], during["resp_status"]) == ("POST", "/during", 200)
    assert '"x-new":"n-2"' in during["req_headers"] and '"x-session"' not in during["req_headers"]
    assert ":authority" not in during["req_headers"]
    marker = json.loads(during["req_headers"])[UNDECODED_KEY]
    assert marker.startswith("HPACK: 2 header field(s) not decoded") and "mid-stream" in marker
    assert '"x-served-by"' not in during["resp_headers"] and '"x-trace":"t-2"' in during["resp_headers"]
    # An entry inserted while we watched resolves exactly through the dynamic table.
    assert after["req_path"] == "/after" and '"x-new":"n-2"' in after["req_headers"]
    assert json.loads(after["resp_headers"]) == {":status": "200", "x-trace": "t-2"}  # fully known
    assert st_.undecoded_headers == 3 and st_.parse_errors == 3


def test_table_size_update_to_zero_makes_the_table_known_again():
    pair = Pair()
    s1 = pair.request("/before")
    pair.respond(s1)
    start = len(pair.writes)
    pair.client.encoder.header_table_size = 0  # the next block starts with "size 0": the table is empty
    pair.client.encoder.header_table_size = 4096
    s2 = pair.request("/reset", extra=[("x-a", "1")])
    pair.respond(s2)
    s3 = pair.request("/known", extra=[("x-a", "1")])
    pair.respond(s3)
    rows, st_ = stitch_client(pair, skip=start)
    assert [r["req_path"] for r in rows] == ["/reset", "/known"]
    assert all(UNDECODED_KEY not in r["req_headers"] and '":authority":"svc:50051"' in r["req_headers"] for r in rows)
    assert st_.undecoded_headers == 0 and st_._req_parser is not None and st_._req_parser.table_known


# -- malformed input ----------------------------------------------------------------------------


def test_malformed_frames_are_counted_and_parsing_resumes():
    enc = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True)).encoder
    dec_side = h2.connection.H2Connection(h2.config.H2Configuration(client_side=False)).encoder
    get = [(":method", "GET"), (":scheme", "http"), (":authority", "a")]

    def request(sid: int, path: str) -> bytes:
        return HeadersFrame(sid, enc.encode([*get, (":path", path)]), flags=["END_HEADERS", "END_STREAM"]).serialize()

    def response(sid: int) -> bytes:
        return HeadersFrame(sid, dec_side.encode([(":status", "200")]), flags=["END_HEADERS"]).serialize() + (
            DataFrame(sid, b"ok", flags=["END_STREAM"]).serialize()
        )

    bad_ping = b"\x00\x00\x07\x06\x00\x00\x00\x00\x00" + b"1234567"  # PING must be 8 bytes
    stray_continuation = ContinuationFrame(7, b"\x82", flags=["END_HEADERS"]).serialize()
    rst_on_zero = b"\x00\x00\x04\x03\x00\x00\x00\x00\x00\x00\x00\x00\x08"
    egress, ingress = DataStream(), DataStream()
    egress.append(1, PREFACE + request(1, "/one") + bad_ping + b"garbage!" * 5 + request(3, "/two") + request(5, "/3"))
    egress.append(2, stray_continuation + rst_on_zero + request(7, "/four") + request(9, "/five"))
    ingress.append(3, b"".join(response(sid) for sid in (1, 3, 5, 7, 9)))
    st_ = Http2Stitcher()
    rows = st_.process(ROLE_CLIENT, egress, ingress)
    assert st_.internal_errors == 0 and len(egress) == 0
    assert [r["req_path"] for r in rows] == ["/one", "/two", "/3", "/four", "/five"]
    # After each framing error the HPACK table is forgotten: ":authority" (indexed since /one) is
    # then reported as undecoded, while the literal paths still decode.
    assert UNDECODED_KEY not in rows[0]["req_headers"]
    assert all(UNDECODED_KEY in r["req_headers"] and '":authority"' not in r["req_headers"] for r in rows[1:])
    assert st_.parse_errors == 2 + st_.undecoded_headers and st_.undecoded_headers == 4


def test_padding_longer_than_payload_and_data_padding():
    enc = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True)).encoder
    block = enc.encode([(":method", "POST"), (":scheme", "http"), (":authority", "a"), (":path", "/p")])
    padded_headers = HeadersFrame(1, block, flags=["END_HEADERS", "PADDED", "PRIORITY"], pad_length=7,
                                  depends_on=0, stream_weight=15).serialize()  # fmt: skip
    padded_data = DataFrame(1, b"body!", flags=["PADDED", "END_STREAM"], pad_length=9).serialize()
    resp = h2.connection.H2Connection(h2.config.H2Configuration(client_side=False)).encoder.encode([(":status", "200")])
    egress, ingress = DataStream(), DataStream()
    egress.append(1, PREFACE + padded_headers + padded_data)
    ingress.append(2, HeadersFrame(1, resp, flags=["END_HEADERS", "END_STREAM"]).serialize())
    st_ = Http2Stitcher()
    [row] = st_.process(ROLE_CLIENT, egress, ingress)
    assert row["req_path"] == "/p" and row["req_body"] == "body!" and row["req_body_size"] == 5
    bad = bytearray(padded_data)
    bad[9] = 200  # pad length beyond the frame
    egress.append(3, bytes(bad))
    st_.process(ROLE_CLIENT, egress, ingress)
    assert st_.parse_errors == 1 and st_.internal_errors == 0


def test_rst_frame_parses_for_unknown_stream():
    egress, ingress = DataStream(), DataStream()
    egress.append(1, PREFACE + RstStreamFrame(9, error_code=8).serialize())
    st_ = Http2Stitcher()
    assert st_.process(ROLE_CLIENT, egress, ingress) == [] and st_.parse_errors == 0


def test_split_at_every_byte_gives_the_same_rows():
    pair = Pair()
    for i in range(3):
        sid = pair.request(f"/r{i}", extra=[GRPC_CT, ("x-i", str(i))], body=grpc_msg(string_value(f"in-{i}")))
        pair.respond(sid, headers=[GRPC_CT], body=grpc_msg(string_value(f"out-{i}")), trailers=[("grpc-status", "0")])
    whole, _ = replay(pair, ROLE_CLIENT)
    bytewise, st_ = replay(pair, ROLE_CLIENT, chunk=1)
    assert len(whole) == 3 and bytewise == whole and st_.parse_errors == 0


def test_large_data_frames_are_never_buffered():
    pair = Pair(client_settings={h2.settings.SettingCodes.MAX_FRAME_SIZE: 1 << 22})
    sid = pair.request("/download", method="GET")
    pair.server.send_headers(sid, [(":status", "200")])
    pair.server.increment_flow_control_window(1 << 24)
    pair.client.increment_flow_control_window(1 << 24)
    pair.client.increment_flow_control_window(1 << 24, stream_id=sid)
    pair.flush()
    pair.server.send_data(sid, b"z" * 3_000_000, end_stream=True)  # one 3 MB DATA frame
    pair.flush()
    st_ = Http2Stitcher()
    egress, ingress = DataStream(max_bytes=1 << 20), DataStream(max_bytes=1 << 20)
    rows = []
    peak = 0
    for ts, up, data in pair.writes:
        stream = egress if up else ingress
        for i in range(0, len(data), 65536):
            stream.append(ts, data[i : i + 65536])
            rows += st_.process(ROLE_CLIENT, egress, ingress)
            peak = max(peak, len(egress), len(ingress))
    [row] = rows
    assert row["resp_body_size"] == 3_000_000 and peak < 65536 + 64
    assert egress.overflows == ingress.overflows == 0


def test_overflow_resyncs_and_counts():
    pair = Pair()
    for i in range(6):
        sid = pair.request(f"/o{i}", body=b"x" * 2000)
        pair.respond(sid, body=b"y")
    st_ = Http2Stitcher()
    egress, ingress = DataStream(max_bytes=1500), DataStream(max_bytes=1500)
    for ts, up, data in pair.writes:
        (egress if up else ingress).append(ts, data)
        st_.process(ROLE_CLIENT, egress, ingress)
    assert egress.overflows > 0 and st_.parse_errors > 0 and st_.internal_errors == 0


# -- fuzzing ------------------------------------------------------------------------------------


def _conversation() -> Pair:
    pair = Pair()
    for i in range(3):
        sid = pair.request(f"/f{i}", extra=[GRPC_CT, ("x-k", f"v{i}")], body=grpc_msg(string_value("q" * i)))
        pair.respond(sid, headers=[GRPC_CT], body=grpc_msg(string_value("a" * i)), trailers=[("grpc-status", "0")])
    return pair


_CONV = _conversation()
_UP = b"".join(d for _, c, d in _CONV.writes if c)
_DOWN = b"".join(d for _, c, d in _CONV.writes if not c)
_BOUND = MAX_BUFFERED_FRAME + 64 * 1024 + 64  # one buffered frame, plus a resync window


def _run_bounded(up: bytes, down: bytes, chunk: int) -> Http2Stitcher:
    st_ = Http2Stitcher()
    egress, ingress = DataStream(), DataStream()
    for i in range(0, max(len(up), len(down)), chunk):
        egress.append(i + 1, up[i : i + chunk])
        ingress.append(i + 2, down[i : i + chunk])
        st_.process(ROLE_CLIENT, egress, ingress)
        assert len(egress) <= _BOUND and len(ingress) <= _BOUND
    st_.on_close(ROLE_CLIENT, egress, ingress)
    assert st_.internal_errors == 0
    return st_


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=2048), st.integers(1, 64))
def test_fuzz_random_bytes_after_the_preface(noise: bytes, chunk: int):
    _run_bounded(PREFACE + noise, noise[::-1], chunk)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(st.integers(0, len(_UP) - 1), st.integers(0, 255)), max_size=8),
       st.lists(st.tuples(st.integers(0, len(_DOWN) - 1), st.integers(0, 255)), max_size=8),
       st.integers(1, 200))  # fmt: skip
def test_fuzz_mutated_real_conversation(up_mut, down_mut, chunk: int):
    up, down = bytearray(_UP), bytearray(_DOWN)
    for pos, value in up_mut:
        up[pos] = value
    for pos, value in down_mut:
        down[pos] = value
    _run_bounded(bytes(up), bytes(down), chunk)


def test_truncation_at_every_byte():
    for cut in range(len(_UP)):
        _run_bounded(_UP[:cut], _DOWN[: cut * len(_DOWN) // len(_UP)], 4096)


def test_huge_declared_lengths_are_skipped_not_buffered():
    headers_16m = b"\xff\xff\xff\x01\x04\x00\x00\x00\x01"  # a HEADERS frame claiming 16 MiB
    st_ = _run_bounded(PREFACE + b"\x00\x00\x00\x04\x00\x00\x00\x00\x00" + headers_16m + b"\x00" * 300_000, b"", 4096)
    assert st_.parse_errors >= 1


def test_parser_state_lives_in_the_stream():
    egress = DataStream()
    egress.append(1, PREFACE)
    Http2Stitcher().process(ROLE_CLIENT, egress, DataStream())
    assert isinstance(egress.state, H2Parser) and egress.state.started and not egress.state.mid_stream


# -- the connection tracker ---------------------------------------------------------------------

PID = os.getpid()
CLIENT = SockAddr(socket.AF_INET, "127.0.0.1", 40000)
SERVER = SockAddr(socket.AF_INET, "127.0.0.1", 50051)


def test_tracker_writes_http2_rows_and_conn_stats():
    pair = Pair()
    sid = pair.request("/demo.Greeter/SayHello", extra=[GRPC_CT], body=grpc_msg(string_value("tracker")))
    pair.respond(sid, headers=[GRPC_CT], body=grpc_msg(string_value("hi!")), trailers=[("grpc-status", "0")])
    tracker = ConnTracker(TableStore(), ProcessCache(asid=1), conn_stats_period_s=0,
                          addr_lookup=lambda pid, fd: (None, None))  # fmt: skip
    events: list = [ConnEvent(ConnKind.CONNECT, 1, PID, 9, 0, None, SERVER)]
    for ts, up, data in pair.writes:
        direction = Direction.EGRESS if up else Direction.INGRESS
        events.append(DataEvent(ts, PID, PID, 9, 5, direction, len(data), 0, socket.AF_INET, 1, 0, None, data))
    events.append(ConnEvent(ConnKind.CLOSE, pair.ts + 1, PID, 9, 0, None, None))
    tracker.handle(events)
    tracker.tick()
    [row] = as_rows(tracker.store.scan("http_events", None, None))
    assert row["major_version"] == 2 and row["trace_role"] == 1 and row["content_type"] == CONTENT_GRPC
    assert row["req_body"] == '1: "tracker"' and row["resp_body"] == '1: "hi!"' and row["remote_port"] == 50051
    stats = as_rows(tracker.store.scan("conn_stats", None, None))
    [h2_stats] = [r for r in stats if r["protocol"] == PROTOCOL_HTTP2]
    assert (h2_stats["conn_open"], h2_stats["conn_close"]) == (1, 1)
    assert all(r["conn_open"] == 0 for r in stats if r["protocol"] != PROTOCOL_HTTP2)
    assert tracker.stats.parse_errors == 0


def test_tracker_resynchronises_after_a_syscall_captured_short():
    """grpc's C core writes one iovec per HPACK literal; the kernel side copies 16, so a request can
    arrive short (pos/msg_size show it). The tracker clears the stream, the parser resyncs at the
    next syscall, and the following request is still paired, its unknown fields marked."""
    pair = Pair()
    s1 = pair.request("/first", extra=[("x-a", "1")], body=b"one")
    pair.respond(s1, body=b"r1")
    s2 = pair.request("/second", extra=[("x-a", "1")], body=b"two")
    pair.respond(s2, body=b"r2")
    tracker = ConnTracker(TableStore(), ProcessCache(asid=1), conn_stats_period_s=0,
                          addr_lookup=lambda pid, fd: (None, None))  # fmt: skip
    events: list = [ConnEvent(ConnKind.CONNECT, 1, PID, 9, 0, None, SERVER)]
    first_request = next(i for i, (_, up, data) in enumerate(pair.writes) if up and data[3] == 1)
    for i, (ts, up, data) in enumerate(pair.writes):
        direction = Direction.EGRESS if up else Direction.INGRESS
        captured = data[:12] if i == first_request else data  # the rest of the syscall was not copied
        events.append(DataEvent(ts, PID, PID, 9, 5, direction, len(data), 0, socket.AF_INET, 1, 0, None, captured))
    tracker.handle(events)
    tracker.flush()
    [row] = as_rows(tracker.store.scan("http_events", None, None))
    assert (row["req_path"], row["req_body"], row["resp_body"]) == ("/second", "two", "r2")
    assert UNDECODED_KEY in row["req_headers"] and '"x-a"' not in row["req_headers"]
    assert tracker.stats.parse_errors >= 1


def test_open_streams_are_held_within_a_byte_budget():
    from cluster.pem.protocols.http2.stitch import MAX_HELD_BYTES

    enc = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True)).encoder
    egress = DataStream()
    egress.append(1, PREFACE)
    st_ = Http2Stitcher()
    for i in range(100):  # 100 requests that never get an answer, 60 KB of headers each
        block = enc.encode([(":method", "GET"), (":path", f"/{i}"), ("x-big", "v" * 60_000)], huffman=False)
        frames = HeadersFrame(2 * i + 1, block[:16000], flags=[]).serialize()
        for j in range(16000, len(block), 16000):
            last = j + 16000 >= len(block)
            frames += ContinuationFrame(
                2 * i + 1, block[j : j + 16000], flags=["END_HEADERS"] if last else []
            ).serialize()
        egress.append(2 + i, frames)
        st_.process(ROLE_CLIENT, egress, DataStream())
        assert st_._held <= MAX_HELD_BYTES + 70_000
    assert 0 < len(st_.streams) < 100 and st_.dropped_requests == 100 - len(st_.streams)
    assert st_.parse_errors == 0
