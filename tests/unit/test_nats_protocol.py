"""NATS: Pixie's renderings of every verb, HPUB/HMSG headers, record order across directions,
verbose +OK/-ERR pairing, inference, and robustness. Byte streams are written by hand from the NATS
client protocol specification (docs.nats.io, "Client Protocol")."""

from __future__ import annotations

import json
import os
import socket

from hypothesis import given, settings
from hypothesis import strategies as st

from cluster.pem.data_stream import DataStream
from cluster.pem.protocols.http.infer import MessageKind
from cluster.pem.protocols.nats import NatsParser, NatsStitcher, infer
from cluster.pem.protocols.nats.frames import MAX_LINE
from cluster.schemas import ROLE_CLIENT, ROLE_SERVER
from tests.util import as_rows

INFO = b'INFO {"server_id":"NXYZ","version":"2.9.10","headers":true,"max_payload":1048576} \r\n'


def run(events: list[tuple[int, str, bytes]], role: int = ROLE_CLIENT, st_: NatsStitcher | None = None):
    """Feed (ts, 'c'|'s', bytes) (client-sent / server-sent) in order, processing after each."""
    st_ = st_ or NatsStitcher()
    client, server = DataStream(), DataStream()
    egress, ingress = (client, server) if role == ROLE_CLIENT else (server, client)
    out = []
    for ts, side, data in events:
        (client if side == "c" else server).append(ts, data)
        out += st_.process(role, egress, ingress)
    return out, st_


def parse_one(data: bytes) -> tuple[str, str]:
    stream = DataStream()
    stream.append(1, data)
    parser = NatsParser()
    msg = parser.next_message(stream)
    assert msg is not None and parser.errors == 0 and len(stream) == 0, data
    return msg.cmd, msg.body


def test_pixie_renderings():
    # The cases of Pixie's nats parse_test, then the verbs it leaves out.
    assert parse_one(b'INFO {"server_name":"localhost"} \r\n') == ("INFO", '{"server_name":"localhost"}')
    assert parse_one(b'CONNECT {"server_name":"localhost"} \r\n') == ("CONNECT", '{"server_name":"localhost"}')
    assert parse_one(b"SUB foo queue-group-1 1\r\n") == (
        "SUB", '{"queue group":"queue-group-1","sid":"1","subject":"foo"}')  # fmt: skip
    assert parse_one(b"SUB foo 1\r\n") == ("SUB", '{"sid":"1","subject":"foo"}')
    assert parse_one(b"UNSUB 1 4\r\n") == ("UNSUB", '{"max_msgs":"4","sid":"1"}')
    assert parse_one(b"UNSUB 1 \r\n") == ("UNSUB", '{"sid":"1"}')
    assert parse_one(b"PUB subject-foo reply-to-bar 4\r\ntest\r\n") == (
        "PUB", '{"payload":"test","reply-to":"reply-to-bar","subject":"subject-foo"}')  # fmt: skip
    assert parse_one(b"PUB subject-foo 4\r\ntest\r\n") == ("PUB", '{"payload":"test","subject":"subject-foo"}')
    assert parse_one(b"MSG foo 1 4\r\ntest\r\n") == ("MSG", '{"payload":"test","sid":"1","subject":"foo"}')
    assert parse_one(b"MSG foo 1 bar 4\r\ntest\r\n") == (
        "MSG", '{"payload":"test","reply-to":"bar","sid":"1","subject":"foo"}')  # fmt: skip
    assert parse_one(b"PING\r\n") == ("PING", "")
    assert parse_one(b"PONG\r\n") == ("PONG", "")
    assert parse_one(b"+OK\r\n") == ("+OK", "")
    assert parse_one(b"-ERR 'Unknown Protocol Operation'\r\n") == ("-ERR", "'Unknown Protocol Operation'")
    assert parse_one(b"pub lower 2\r\nhi\r\n") == ("PUB", '{"payload":"hi","subject":"lower"}')  # case-insensitive
    assert parse_one(b"PUB\tfoo\t0\r\n\r\n") == ("PUB", '{"payload":"","subject":"foo"}')  # tabs, empty payload


def test_headers():
    hdr = b"NATS/1.0\r\nTrace: abc\r\nTrace: def\r\nX: 1\r\n\r\n"
    data = b"HPUB work reply %d %d\r\n%sjob\r\n" % (len(hdr), len(hdr) + 3, hdr)
    cmd, body = parse_one(data)
    assert cmd == "HPUB"
    assert json.loads(body) == {"headers": {"Trace": "abc,def", "X": "1"}, "payload": "job", "reply-to": "reply",
                                "subject": "work"}  # fmt: skip
    status = b"NATS/1.0 503\r\n\r\n"
    cmd, body = parse_one(b"HMSG _INBOX.x 2 %d %d\r\n%s\r\n" % (len(status), len(status), status))
    assert cmd == "HMSG" and body == '{"headers":{},"payload":"","sid":"2","status":"503","subject":"_INBOX.x"}'


def test_payload_is_capped_and_binary_safe():
    st_ = NatsStitcher(body_cap=4)
    recs, _ = run([(1, "c", b"PUB big 10\r\n\xff123456789\r\n")], st_=st_)
    assert json.loads(recs[0]["body"])["payload"] == "\ufffd123"


def test_order_across_directions_and_pings_skipped():
    recs, st_ = run([
        (1, "s", INFO),
        (2, "c", b'CONNECT {"verbose":false,"pedantic":false,"headers":true}\r\nPING\r\n'),
        (3, "s", b"PONG\r\n"),
        (4, "c", b"SUB svc 1\r\nPUB svc _INBOX.r 4\r\nping\r\n"),
        (5, "s", b"MSG svc 1 _INBOX.r 4\r\nping\r\n"),
        (6, "c", b"UNSUB 1\r\n"),
    ])  # fmt: skip
    assert [(r["time_"], r["cmd"], r["resp"]) for r in recs] == [
        (1, "INFO", ""), (2, "CONNECT", ""), (4, "SUB", ""), (4, "PUB", ""), (5, "MSG", ""), (6, "UNSUB", ""),
    ]  # fmt: skip
    assert recs[0]["body"] == INFO[5:].strip().decode()
    assert st_.parse_errors == 0 and st_.unmatched_responses == 0


def test_verbose_mode_pairs_acknowledgements():
    recs, st_ = run([
        (1, "s", INFO),
        (2, "c", b'CONNECT {"verbose":true}\r\n'),
        (3, "s", b"+OK\r\n"),
        (4, "c", b"PUB a 1\r\nx\r\nSUB b 1\r\nPING\r\n"),
        (5, "s", b"+OK\r\n-ERR 'Permissions Violation for Subscription to \"b\"'\r\nPONG\r\n"),
        (6, "c", b"PUB c 1\r\ny\r\n"),  # its +OK never comes: written at close
    ], role=ROLE_SERVER)  # fmt: skip
    assert [(r["cmd"], r["resp"]) for r in recs] == [("INFO", ""), ("CONNECT", "+OK"), ("PUB", "+OK"), ("SUB", "-ERR")]
    tail = st_.on_close(ROLE_SERVER, DataStream(), DataStream())
    assert [(r["cmd"], r["body"], r["resp"]) for r in tail] == [("PUB", '{"payload":"y","subject":"c"}', "")]


def test_unanswered_error_is_a_record_and_stray_ok_is_counted():
    recs, st_ = run([
        (1, "c", b'CONNECT {"verbose":false}\r\nPUB secret 1\r\nx\r\n'),
        (2, "s", b"-ERR 'Permissions Violation for Publish to \"secret\"'\r\n+OK\r\n"),
    ])  # fmt: skip
    assert [(r["cmd"], r["body"], r["resp"]) for r in recs][1:] == [
        ("PUB", '{"payload":"x","subject":"secret"}', ""),
        ("-ERR", '{"error":"Permissions Violation for Publish to \\"secret\\""}', ""),
    ]
    assert st_.unmatched_responses == 1


def test_close_writes_messages_still_awaiting_an_ack():
    st_ = NatsStitcher()
    client, server = DataStream(), DataStream()
    client.append(1, b'CONNECT {"verbose":true}\r\nPUB a 1\r\nx\r\n')
    assert st_.process(ROLE_CLIENT, client, server) == []
    assert [r["cmd"] for r in st_.on_close(ROLE_CLIENT, client, server)] == ["CONNECT", "PUB"]


def test_every_split_point_gives_the_same_records():
    client = b'CONNECT {"verbose":false}\r\nSUB s 1\r\nHPUB s 12 14\r\nNATS/1.0\r\n\r\nhi\r\nPUB s 3\r\nabc\r\n'
    server = INFO + b"HMSG s 1 12 14\r\nNATS/1.0\r\n\r\nhi\r\nMSG s 1 3\r\nabc\r\n"
    whole, _ = run([(1, "s", server), (2, "c", client)])
    assert len(whole) == 7
    for cut in range(1, max(len(client), len(server))):
        recs, st_ = run(
            [(1, "s", server[:cut]), (1, "s", server[cut:]), (2, "c", client[:cut]), (2, "c", client[cut:])]
        )
        assert [(r["cmd"], r["body"]) for r in recs] == [(r["cmd"], r["body"]) for r in whole], cut
        assert st_.parse_errors == 0


def test_garbage_is_counted_and_parsing_recovers():
    recs, st_ = run([
        (1, "c", b"\x16\x03\x01 not nats at all\r\nPUB ok 1\r\nx\r\n"),
        (2, "c", b"PUB bad notanumber\r\nSUB fine 1\r\n"),
        (3, "c", b"PUB toolong 2\r\nabc\r\nUNSUB 1\r\n"),  # the payload is not followed by CRLF
    ])  # fmt: skip
    assert [r["cmd"] for r in recs] == ["PUB", "SUB", "UNSUB"]
    assert st_.parse_errors == 3 and st_.internal_errors == 0


def test_infer():
    assert infer(INFO) is MessageKind.RESPONSE
    assert infer(b'CONNECT {"verbose":false}\r\n') is MessageKind.REQUEST
    assert infer(b"PUB foo bar 5\r\nhello\r\n") is MessageKind.REQUEST
    assert infer(b"HPUB foo 12 14\r\n") is MessageKind.REQUEST
    assert infer(memoryview(b"MSG foo 1 5\r\nhello\r\n")) is MessageKind.RESPONSE
    not_nats = (b"CONNECT example.com:443 HTTP/1.1\r\n\r\n", b"PING\r\n", b"+OK\r\n", b"PUB foo\r\n", b"PUB a b c\r\n",
                b"MSG foo 1 x\r\n", b"INFO", b"GET / HTTP/1.1\r\n", b"")  # fmt: skip
    for data in not_nats:
        assert infer(data) is None, data


def test_tracker_routes_nats_before_http():
    from cluster.pem.conn_tracker import ConnTracker
    from cluster.pem.process_info import ProcessCache
    from cluster.pem.sources.socket_events import DataEvent, Direction, SockAddr
    from cluster.store.table_store import TableStore

    addrs = (SockAddr(socket.AF_INET, "127.0.0.1", 50000), SockAddr(socket.AF_INET, "127.0.0.1", 4222))
    t = ConnTracker(TableStore(), ProcessCache(asid=1), addr_lookup=lambda pid, fd: addrs)
    pid = os.getpid()
    evs = [DataEvent(ts, pid, pid, 9, 1, d, len(b), 0, socket.AF_INET, socket.SOCK_STREAM, 0, None, b)
           for ts, d, b in ((1, Direction.EGRESS, b'CONNECT {"verbose":false}\r\nPING\r\n'),
                            (2, Direction.INGRESS, b"PONG\r\n"),
                            (3, Direction.EGRESS, b"PUB x 2\r\nhi\r\n"))]  # fmt: skip
    t.handle(evs)
    t.flush()
    rows = as_rows(t.store.scan("nats_events.beta", None, None))
    assert [(r["cmd"], r["trace_role"], r["remote_port"]) for r in rows] == [("CONNECT", 1, 4222), ("PUB", 1, 4222)]
    assert {c.protocol for c in t._conns.values()} == {8}


# ---- bad input: arbitrary bytes never raise, memory stays bounded ----


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.booleans(), st.binary(max_size=80)), max_size=16))
def test_noise_never_raises(chunks):
    events = [(i, "c" if c else "s", data) for i, (c, data) in enumerate(chunks)]
    events.insert(len(events) // 2, (100, "c", b"PUB k 1\r\nv\r\n"))
    recs, st_ = run(events)
    st_.on_close(ROLE_CLIENT, DataStream(), DataStream())
    assert st_.internal_errors == 0
    assert all(isinstance(r["body"], str) for r in recs)


VERB_SOUP = st.lists(
    st.sampled_from([b"PUB ", b"HPUB ", b"MSG ", b"HMSG ", b"SUB ", b"UNSUB ", b"INFO {", b"CONNECT {", b"+OK",
                     b"-ERR ", b"PING", b"\r\n", b" ", b"1", b"12", b"99999999999", b"NATS/1.0", b":", b"x"]),
    max_size=40,
)  # fmt: skip


@settings(max_examples=300, deadline=None)
@given(VERB_SOUP, VERB_SOUP)
def test_protocol_shaped_noise_never_raises(client, server):
    _, st_ = run([(1, "c", b"".join(client)), (2, "s", b"".join(server))])
    assert st_.internal_errors == 0


def test_memory_stays_bounded():
    st_ = NatsStitcher(max_pending=32)
    client, server = DataStream(max_bytes=128 * 1024), DataStream(max_bytes=128 * 1024)
    client.append(0, b'CONNECT {"verbose":true}\r\n')
    for i in range(2000):  # verbose, and the server never acknowledges
        client.append(i, b"PUB s 1\r\nx\r\n")
        server.append(i, b"PUB " + b"x" * 64)  # a line that never ends
        st_.process(ROLE_CLIENT, client, server)
        assert len(st_._awaiting) <= 32 and len(client) <= client.max_bytes and len(server) <= server.max_bytes
    server.append(1, b"y" * (MAX_LINE + 1))  # longer than any control line may be: garbage, dropped
    st_.process(ROLE_CLIENT, client, server)
    assert len(server) < MAX_LINE and st_.internal_errors == 0
