"""Redis: RESP2/RESP3 framing, Pixie's renderings, FIFO stitching, pub/sub pushes, inference and
robustness. Byte streams are written by hand from the RESP specification (test data)."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from cluster.pem.data_stream import DataStream
from cluster.pem.protocols.http.infer import MessageKind
from cluster.pem.protocols.redis import RedisStitcher, infer
from cluster.schemas import ROLE_CLIENT, ROLE_SERVER


def cmd(*args: str) -> bytes:
    out = [f"*{len(args)}\r\n".encode()]
    for a in args:
        b = a.encode()
        out.append(b"$%d\r\n%s\r\n" % (len(b), b))
    return b"".join(out)


def run(events: list[tuple[int, str, bytes]], role: int = ROLE_CLIENT, st_: RedisStitcher | None = None):
    """Feed (ts, 'req'|'resp', bytes) in order, processing after each event like the tracker."""
    st_ = st_ or RedisStitcher()
    req, resp = DataStream(), DataStream()
    egress, ingress = (req, resp) if role == ROLE_CLIENT else (resp, req)
    out = []
    for ts, side, data in events:
        (req if side == "req" else resp).append(ts, data)
        out += st_.process(role, egress, ingress)
    return out, st_


def test_get_set_and_pixie_argument_formats():
    recs, st_ = run([
        (10, "req", cmd("SET", "k", "v", "EX", "10")), (25, "resp", b"+OK\r\n"),
        (30, "req", cmd("get", "k")), (31, "resp", b"$1\r\nv\r\n"),
        (40, "req", cmd("LPUSH", "l", "a", "b")), (41, "resp", b":2\r\n"),
        (50, "req", cmd("HSET", "h", "f", "1")), (51, "resp", b":1\r\n"),
        (60, "req", cmd("GET", "missing")), (61, "resp", b"$-1\r\n"),
        (70, "req", cmd("NOPE", "x")), (71, "resp", b"-ERR unknown command 'NOPE'\r\n"),
        (80, "req", cmd("PING")), (81, "resp", b"+PONG\r\n"),
        (90, "req", cmd("EVALSHA", "sha", "2", "k1", "v1")), (91, "resp", b"*0\r\n"),
    ])
    got = [(r["req_cmd"], r["req_args"], r["resp"], r["latency"]) for r in recs]
    assert got == [
        ("SET", '{"key":"k","value":"v","options":["EX 10"]}', "OK", 15),
        ("GET", '{"key":"k"}', "v", 1),
        ("LPUSH", '{"key":"l","element":["a","b"]}', "2", 1),
        ("HSET", '{"key":"h","field value":[{"field":"f"},{"value":"1"}]}', "1", 1),
        ("GET", '{"key":"missing"}', "<NULL>", 1),
        ("", '["NOPE","x"]', "ERR unknown command 'NOPE'", 1),
        ("PING", "{}", "PONG", 1),
        ("EVALSHA", '{"sha1":"sha","numkeys":"2","key":["k1"],"value":["v1"]}', "[]", 1),
    ]
    assert [r["time_"] for r in recs] == [25, 31, 41, 51, 61, 71, 81, 91]
    assert st_.parse_errors == 0 and st_.unmatched_responses == 0


def test_two_word_commands_and_array_fallbacks():
    recs, _ = run([
        (1, "req", cmd("client", "setname", "me")), (2, "resp", b"+OK\r\n"),
        (3, "req", cmd("ACL", "GETUSER", "bob")), (4, "resp", b"*-1\r\n"),
        (5, "req", cmd("CONFIG", "GET", "maxmemory")), (6, "resp", b"*2\r\n$9\r\nmaxmemory\r\n$1\r\n0\r\n"),
    ])
    assert [(r["req_cmd"], r["req_args"], r["resp"]) for r in recs] == [
        ("CLIENT SETNAME", '["me"]', "OK"),  # "connection-name" is not a simple name: array, as Pixie
        ("ACL GETUSER", '{"username":"bob"}', "[NULL]"),
        ("CONFIG GET", '{"parameter":"maxmemory"}', '["maxmemory","0"]'),
    ]


def test_pipeline_is_fifo():
    batch = cmd("INCR", "a") + cmd("INCR", "b") + cmd("GET", "a")
    recs, _ = run([(100, "req", batch), (150, "resp", b":1\r\n:1\r\n$1\r\n1\r\n")])
    assert [(r["req_cmd"], r["resp"]) for r in recs] == [("INCR", "1"), ("INCR", "1"), ("GET", "1")]
    assert all(r["latency"] == 50 for r in recs)


def test_pubsub_pushes_resp2_and_resp3():
    recs, st_ = run([
        (1, "req", cmd("SUBSCRIBE", "c1", "c2")),
        (2, "resp", b"*3\r\n$9\r\nsubscribe\r\n$2\r\nc1\r\n:1\r\n*3\r\n$9\r\nsubscribe\r\n$2\r\nc2\r\n:2\r\n"),
        (5, "resp", b"*3\r\n$7\r\nmessage\r\n$2\r\nc1\r\n$5\r\nhello\r\n"),
        (6, "resp", b">3\r\n$7\r\nmessage\r\n$2\r\nc2\r\n$2\r\nhi\r\n"),
        (7, "req", cmd("PING")), (8, "resp", b"*2\r\n$4\r\npong\r\n$0\r\n\r\n"),
    ])
    assert [(r["req_cmd"], r["req_args"], r["resp"], r["latency"]) for r in recs] == [
        ("SUBSCRIBE", '{"channel":["c1","c2"]}', '["subscribe","c1","1"]', 1),
        ("PUSH PUB", "", '["message","c1","hello"]', 0),
        ("PUSH PUB", "", '["message","c2","hi"]', 0),
        ("PING", "{}", '["pong",""]', 1),
    ]
    assert st_.unmatched_responses == 0


def test_lrange_reply_that_looks_like_a_message_is_not_a_push():
    recs, _ = run([(1, "req", cmd("LRANGE", "l", "0", "-1")),
                   (2, "resp", b"*3\r\n$7\r\nmessage\r\n$1\r\na\r\n$1\r\nb\r\n")])
    assert [r["req_cmd"] for r in recs] == ["LRANGE"]


def test_resp3_types():
    reply = b"%2\r\n+proto\r\n:3\r\n$4\r\nlist\r\n~2\r\n#t\r\n,1.5\r\n"
    recs, _ = run([
        (1, "req", cmd("HELLO", "3")), (2, "resp", reply),
        (3, "req", cmd("GET", "x")), (4, "resp", b"_\r\n"),
        (5, "req", cmd("INFO")), (6, "resp", b"=9\r\ntxt:hello\r\n"),
        (7, "req", cmd("GET", "y")), (8, "resp", b"|1\r\n+ttl\r\n:3\r\n$1\r\nz\r\n"),
        (9, "req", cmd("GET", "z")), (10, "resp", b">2\r\n$10\r\ninvalidate\r\n*0\r\n(12345678901234567890\r\n"),
    ])
    assert [r["resp"] for r in recs] == [
        '{"proto":"3","list":"[\\"true\\",\\"1.5\\"]"}', "<NULL>", "hello", "z", "12345678901234567890"]


def test_server_side_role():
    recs, _ = run([(1, "req", cmd("GET", "k")), (3, "resp", b"$1\r\nv\r\n")], role=ROLE_SERVER)
    assert recs[0]["req_cmd"] == "GET" and recs[0]["latency"] == 2


def test_every_split_point_gives_the_same_records():
    req = cmd("SET", "key", "value") + cmd("MGET", "a", "b")
    resp = b"+OK\r\n*2\r\n$1\r\n1\r\n$-1\r\n"
    whole, _ = run([(1, "req", req), (2, "resp", resp)])
    for i in range(len(req) + 1):
        for j in (0, len(resp) // 2, len(resp)):
            events = [(1, "req", req[:i]), (1, "req", req[i:]), (2, "resp", resp[:j]), (2, "resp", resp[j:])]
            recs, st_ = run(events)
            assert recs == whole, (i, j)
            assert st_.parse_errors == 0
    for j in range(len(resp) + 1):
        recs, _ = run([(1, "req", req), (2, "resp", resp[:j]), (2, "resp", resp[j:])])
        assert recs == whole, j


def test_garbage_is_counted_and_parsing_recovers():
    recs, st_ = run([(1, "req", b"hello garbage\r\n" + cmd("GET", "k")), (2, "resp", b"\x00\x01$1\r\nv\r\n")])
    assert [(r["req_cmd"], r["resp"]) for r in recs] == [("GET", "v")]
    assert st_.parse_errors == 2


def test_close_counts_truncated_and_dropped():
    st_ = RedisStitcher()
    req, resp = DataStream(), DataStream()
    req.append(1, cmd("GET", "k") + b"*2\r\n$3\r\nGE")
    st_.process(ROLE_CLIENT, req, resp)
    assert st_.on_close(ROLE_CLIENT, req, resp) == []
    assert st_.dropped_requests == 1 and st_.parse_errors == 1


def test_infer_is_conservative():
    assert infer(cmd("GET", "k")) is MessageKind.REQUEST
    assert infer(cmd("hello", "3")) is MessageKind.REQUEST
    assert infer(memoryview(cmd("CLIENT", "SETNAME", "x"))) is MessageKind.REQUEST
    not_redis = (b"+OK\r\n", b":1\r\n", cmd("NOTACOMMAND"), b"*1\r\n", b"*x\r\n$3\r\nGET\r\n", b"GET / HTTP/1.1", b"")
    for data in not_redis:
        assert infer(data) is None, data


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.booleans(), st.binary(max_size=64)), max_size=12))
def test_noise_never_raises(chunks):
    events = [(i, "req" if is_req else "resp", data) for i, (is_req, data) in enumerate(chunks)]
    events.insert(len(events) // 2, (100, "req", cmd("GET", "k")))
    recs, st_ = run(events)
    st_.on_close(ROLE_CLIENT, DataStream(), DataStream())
    assert st_.internal_errors == 0
    assert all(isinstance(r["resp"], str) for r in recs)


# ---- through the connection tracker: inference from the first bytes, one table per protocol ----

def _tracker_run(events, protocols=None):
    import os
    import socket

    from cluster.pem.conn_tracker import ConnTracker
    from cluster.pem.process_info import ProcessCache
    from cluster.pem.sources.socket_events import DataEvent, Direction, SockAddr
    from cluster.store.table_store import TableStore

    pid = os.getpid()
    t = ConnTracker(TableStore(), ProcessCache(asid=1), protocols=protocols,
                    addr_lookup=lambda p, fd: (SockAddr(socket.AF_INET, "127.0.0.1", 40000),
                                               SockAddr(socket.AF_INET, "127.0.0.1", 6379)))
    evs = [DataEvent(ts, pid, pid, fd, fd, Direction.EGRESS if side == "out" else Direction.INGRESS, len(d), 0,
                     socket.AF_INET, 1, 0, None, d) for ts, fd, side, d in events]
    t.handle(evs)
    t.flush()
    return t


def test_tracker_routes_each_protocol_to_its_table():
    from tests.unit.test_mysql_protocol import HANDSHAKE, RESULT, greeting, login, ok, query
    from tests.unit.test_pgsql_protocol import READY, complete, msg, startup
    from tests.util import as_rows

    pg_q = msg(b"Q", b"select 1\x00")
    t = _tracker_run([
        (1, 3, "out", cmd("GET", "k")), (2, 3, "in", b"$1\r\nv\r\n"),
        (1, 4, "out", startup()), (2, 4, "in", READY), (3, 4, "out", pg_q), (4, 4, "in", complete("SELECT 1") + READY),
        (1, 5, "in", greeting()), (2, 5, "out", login()), (3, 5, "in", ok(2)),
        (4, 5, "out", query("select a, b from t")), (6, 5, "in", RESULT),
    ])  # fmt: skip
    assert HANDSHAKE  # (shared test data)
    redis = as_rows(t.store.scan("redis_events", None, None))
    pg = as_rows(t.store.scan("pgsql_events", None, None))
    my = as_rows(t.store.scan("mysql_events", None, None))
    assert [(r["req_cmd"], r["resp"], r["trace_role"]) for r in redis] == [("GET", "v", 1)]
    assert [(r["req_cmd"], r["req"], r["trace_role"]) for r in pg] == [("Query", "select 1", 1)]
    assert [(r["req_cmd"], r["resp_body"], r["trace_role"], r["latency"]) for r in my] == [
        (3, "Resultset rows = 2", 1, 2)]
    assert {c.protocol for c in t._conns.values()} == {7, 5, 3}
    assert t.stats.parse_errors == 0


def test_tracker_protocol_can_be_disabled():
    import pytest

    from cluster.pem.protocols.registry import PROTOCOLS, enabled_protocols
    from tests.util import as_rows

    off = {p.env_var: "0" for p in PROTOCOLS if p.name not in ("HTTP", "PGSQL")}
    only_http = enabled_protocols({**off, "PXTUI_ENABLE_PGSQL_TRACING": "false"})
    assert [p.name for p in only_http] == ["HTTP"]
    t = _tracker_run([(1, 3, "out", cmd("GET", "k")), (2, 3, "in", b"$1\r\nv\r\n")], protocols=only_http)
    assert as_rows(t.store.scan("redis_events", None, None)) == []  # the table exists, empty
    with pytest.raises(ValueError, match="PXTUI_ENABLE_REDIS_TRACING"):
        enabled_protocols({"PXTUI_ENABLE_REDIS_TRACING": "maybe"})
