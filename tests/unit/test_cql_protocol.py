"""CQL: frames (v4 and v5 segments), stream-id pairing, Pixie's renderings, inference and robustness.

No Cassandra server can be installed on these machines, so the byte streams come from the REAL
cassandra-driver talking to tests/cql_spec_server.py, whose replies are built from the native protocol
specification (v4 and v5); the server records every chunk both ways and the tests replay them. A few
frames the driver never sends (bound values on QUERY, BATCH by id, TOPOLOGY_CHANGE, compressed and
traced frames) are written by hand from native_protocol_v4.spec.
"""

from __future__ import annotations

import hashlib
import struct
import subprocess
import sys
import threading
from collections.abc import Iterator

import pytest
from cassandra.segment import compute_crc24
from hypothesis import given, settings
from hypothesis import strategies as st

from cluster.pem.data_stream import DataStream
from cluster.pem.protocols.cql import CqlParser, CqlStitcher, infer
from cluster.pem.protocols.cql import frames as f
from cluster.pem.protocols.http.infer import MessageKind
from cluster.schemas import ROLE_CLIENT, ROLE_SERVER
from tests.cql_spec_server import Server, int_, short, string

WORKLOAD = """
import sys
from cassandra import InvalidRequest
from cassandra.cluster import Cluster
from cassandra.query import BatchStatement
port, version, m = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
cluster = Cluster(["127.0.0.1"], port=port, protocol_version=version, schema_metadata_enabled=False,
                  token_metadata_enabled=False, connect_timeout=10, control_connection_timeout=10)
s = cluster.connect()
s.execute("CREATE KEYSPACE IF NOT EXISTS shop WITH replication = {'class': 'SimpleStrategy', 'replication_factor': 1}")
s.set_keyspace("shop")
s.execute("CREATE TABLE IF NOT EXISTS items (id int, name text, PRIMARY KEY (id))")
s.execute("INSERT INTO items (id, name) VALUES (%s, %s)", (7, "widget-" + m))
ins = s.prepare("INSERT INTO items (id, name) VALUES (?, ?)")
batch = BatchStatement()
batch.add(ins, (8, "gadget-" + m))
s.execute(batch)
sel = s.prepare("SELECT id, name FROM items WHERE id = ?")
rows = list(s.execute(sel, (8,)))
assert [r.name for r in rows] == ["gadget-" + m], rows
try:
    s.execute("SELECT * FROM nope_" + m)
    raise SystemExit("expected an error")
except InvalidRequest:
    pass
cluster.shutdown()
"""


# The id the spec server gives a prepared statement is the md5 of its text; Pixie writes it in hex.
INSERT_ID = hashlib.md5(b"INSERT INTO items (id, name) VALUES (?, ?)").hexdigest().upper()


def replay(
    log: list[tuple[str, bytes]], role: int = ROLE_CLIENT, st_: CqlStitcher | None = None, split: bool = False
) -> tuple[list[dict], CqlStitcher]:
    """Feed a recorded session ("c" client-sent, "s" server-sent chunks) in order; with ``split``
    the client's bytes all carry time 1 and the server's time 2 (a session cut into pieces)."""
    st_ = st_ or CqlStitcher()
    client, server = DataStream(), DataStream()
    egress, ingress = (client, server) if role == ROLE_CLIENT else (server, client)
    out = []
    for ts, (side, data) in enumerate(log, 1):
        (client if side == "c" else server).append((1 if side == "c" else 2) if split else ts, data)
        out += st_.process(role, egress, ingress)
    return out, st_


@pytest.fixture(scope="module")
def sessions() -> Iterator[dict[int, list[list[tuple[str, bytes]]]]]:
    """version -> the recorded sessions of one real driver run against the spec server."""
    server = Server(0)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    out = {}
    try:
        for version in (4, 5):
            before = len(server.store.sessions)
            subprocess.run([sys.executable, "-c", WORKLOAD, str(server.server_address[1]), str(version), f"v{version}"],
                           check=True, timeout=120, capture_output=True)  # fmt: skip
            out[version] = server.store.sessions[before:]
        yield out
    finally:
        server.shutdown()
        server.server_close()


def pool_session(sessions: dict, version: int) -> list[tuple[str, bytes]]:
    """The session that ran the user's statements (not the control connection)."""
    [log] = [s for s in sessions[version] if any(b"INSERT INTO" in d for side, d in s if side == "c")]
    return log


@pytest.mark.parametrize("version", [4, 5])
def test_real_driver_session_records(sessions, version):
    log = pool_session(sessions, version)
    recs, st_ = replay(log)
    assert st_.parse_errors == 0 and st_.unmatched_responses == 0 and st_.internal_errors == 0
    got = [(r["req_op"], r["req_body"], r["resp_op"], r["resp_body"]) for r in recs]
    m = f"v{version}"
    assert got[0][:3] == (f.OPTIONS, "", f.SUPPORTED)
    assert got[0][3] == '{"COMPRESSION":[],"CQL_VERSION":["3.4.5"],"PROTOCOL_VERSIONS":["4/v4","5/v5"]}'
    assert got[1][0] == f.STARTUP and got[1][2] == f.READY and got[1][3] == ""
    assert got[1][1].startswith('{"CQL_VERSION":"3.4.5","DRIVER_NAME":"Apache Cassandra Python Driver"')
    user = [g for g in got if g[0] == f.BATCH or "items" in g[1] or "nope" in g[1]]
    assert user == [
        (f.QUERY, "CREATE TABLE IF NOT EXISTS items (id int, name text, PRIMARY KEY (id))", f.RESULT,
         "Response type = SCHEMA_CHANGE"),
        (f.QUERY, f"INSERT INTO items (id, name) VALUES (7, 'widget-{m}')", f.RESULT, "Response type = VOID"),
        (f.PREPARE, "INSERT INTO items (id, name) VALUES (?, ?)", f.RESULT, "Response type = PREPARED"),
        (f.BATCH, f'[{{"id":"{INSERT_ID}"}}]', f.RESULT, "Response type = VOID"),
        (f.PREPARE, "SELECT id, name FROM items WHERE id = ?", f.RESULT, "Response type = PREPARED"),
        (f.EXECUTE, 'SELECT id, name FROM items WHERE id = ?\n["00000008"]', f.RESULT,
         'Response type = ROWS\nNumber of columns = 2\n["id","name"]\nNumber of rows = 1'),
        (f.QUERY, f"SELECT * FROM nope_{m}", f.ERROR, f"[8704] unconfigured table nope_{m}"),
    ]  # fmt: skip
    assert all(r["latency"] >= 0 and r["time_"] > 0 for r in recs)
    # v5: everything after STARTUP/READY travels in segments, and the parser followed the switch.
    client = DataStream()
    for side, data in log:
        if side == "c":
            client.append(1, data)
    parser = CqlParser(True)
    while parser.next_frame(client) is not None:
        pass
    assert parser.segmented is (version == 5) and parser.errors == 0


@pytest.mark.parametrize("version", [4, 5])
def test_control_connection_events_and_server_side(sessions, version):
    [control] = [s for s in sessions[version] if any(b"TOPOLOGY_CHANGE" in d for side, d in s if side == "c")]
    recs, st_ = replay(control)
    events = [r for r in recs if r["resp_op"] == f.EVENT]
    assert [(e["req_op"], e["req_body"], e["resp_body"], e["latency"]) for e in events] == [
        (f.REGISTER, "-", "SCHEMA_CHANGE CREATED keyspace=shop name=", 0),
        (f.REGISTER, "-", "SCHEMA_CHANGE CREATED keyspace=shop name=items", 0),
    ]
    assert (f.REGISTER, '["TOPOLOGY_CHANGE","STATUS_CHANGE","SCHEMA_CHANGE"]') in {
        (r["req_op"], r["req_body"]) for r in recs
    }
    # The server's own view of the same session gives the same records.
    server_recs, st2 = replay(control, ROLE_SERVER)
    assert [(r["req_op"], r["req_body"], r["resp_body"]) for r in server_recs] == [
        (r["req_op"], r["req_body"], r["resp_body"]) for r in recs
    ]
    assert st_.parse_errors == st2.parse_errors == 0


def test_every_split_point_gives_the_same_records(sessions):
    for version in (4, 5):
        log = pool_session(sessions, version)
        client = b"".join(d for s, d in log if s == "c")
        server = b"".join(d for s, d in log if s == "s")
        whole, _ = replay([("c", client), ("s", server)], split=True)
        assert len(whole) >= 10
        step = max(1, max(len(client), len(server)) // 400)
        for cut in range(1, max(len(client), len(server)), step):
            recs, st_ = replay(
                [("c", client[:cut]), ("c", client[cut:]), ("s", server[:cut]), ("s", server[cut:])], split=True
            )
            assert [(r["req_body"], r["resp_body"]) for r in recs] == [(r["req_body"], r["resp_body"]) for r in whole]
            assert st_.parse_errors == 0, (version, cut)


def frame(opcode: int, body: bytes, stream: int = 1, version: int = 4, flags: int = 0, response: bool = False) -> bytes:
    return struct.pack(">BBhBi", version | (0x80 if response else 0), flags, stream, opcode, len(body)) + body


def query_body(text: str, values: list[bytes | None], names: list[str] | None = None) -> bytes:
    flags = 0x01 | (0x40 if names else 0)
    out = int_(len(text.encode())) + text.encode() + short(1) + bytes([flags]) + short(len(values))
    for i, v in enumerate(values):
        if names:
            out += string(names[i])
        out += int_(-1) if v is None else int_(len(v)) + v
    return out


def simple_query(text: str) -> bytes:
    """<long string><consistency ONE><flags 0>: a QUERY without values."""
    return int_(len(text.encode())) + text.encode() + short(1) + b"\x00"


def test_hand_built_frames_render_as_pixie():
    void = int_(1)
    log = [
        ("c", frame(f.QUERY, query_body("INSERT INTO t (a, b) VALUES (?, ?)", [b"\x00\x00\x00\x2a", None]), 3)),
        ("c", frame(f.QUERY, query_body("SELECT * FROM t WHERE a = :a", [b"\xab"], names=["a"]), 4)),
        ("c", frame(f.AUTH_RESPONSE, int_(14) + b"\x00cassandra\x00pwd", 5)),
        # Out of order: stream 4 answered before stream 3.
        ("s", frame(f.RESULT, void, 4, response=True)),
        ("s", frame(f.RESULT, void, 3, response=True)),
        ("s", frame(f.AUTH_SUCCESS, int_(-1), 5, response=True)),
        ("s", frame(f.EVENT, string("TOPOLOGY_CHANGE") + string("NEW_NODE") + b"\x04\x0a\x00\x00\x07" + int_(9042),
                    -1, response=True)),
        ("s", frame(f.EVENT, string("STATUS_CHANGE") + string("DOWN") + b"\x10" + bytes(15) + b"\x01" + int_(9042),
                    -1, response=True)),
    ]  # fmt: skip
    recs, st_ = replay(log)
    assert [(r["req_op"], r["req_body"], r["resp_op"], r["resp_body"]) for r in recs] == [
        (f.QUERY, 'SELECT * FROM t WHERE a = :a\n["AB"]', f.RESULT, "Response type = VOID"),
        (f.QUERY, 'INSERT INTO t (a, b) VALUES (?, ?)\n["0000002A",""]', f.RESULT, "Response type = VOID"),
        (f.AUTH_RESPONSE, "<14 bytes redacted>", f.AUTH_SUCCESS, ""),  # the password never reaches the table
        (f.REGISTER, "-", f.EVENT, "TOPOLOGY_CHANGE NEW_NODE 10.0.0.7"),
        (f.REGISTER, "-", f.EVENT, "STATUS_CHANGE DOWN ::1"),
    ]
    assert st_.parse_errors == 0 and st_.unmatched_responses == 0


def test_flags_tracing_warnings_custom_payload_and_compression():
    traced = bytes(range(16)) + short(1) + string("Aggregation query used without partition key")
    log = [
        ("c", frame(f.QUERY, short(1) + string("k") + int_(1) + b"v" + simple_query("SELECT 1"), 1,
                    flags=f.FLAG_CUSTOM_PAYLOAD)),
        ("s", frame(f.RESULT, traced + int_(1), 1, flags=f.FLAG_TRACING | f.FLAG_WARNING, response=True)),
        ("c", frame(f.QUERY, b"\x00\x01\x02garbled-by-lz4", 2, flags=f.FLAG_COMPRESSION)),
        ("s", frame(f.RESULT, b"\x09\x08lz4-bytes", 2, flags=f.FLAG_COMPRESSION, response=True)),
    ]  # fmt: skip
    recs, st_ = replay(log)
    assert [(r["req_body"], r["resp_body"]) for r in recs] == [("SELECT 1", "Response type = VOID"), ("", "")]
    assert st_.parse_errors == 0


def test_undecodable_body_and_unmatched_response_are_counted():
    log = [
        ("c", frame(f.QUERY, int_(999) + b"short", 1)),
        ("s", frame(f.RESULT, int_(1), 1, response=True)),
        ("s", frame(f.RESULT, int_(1), 9, response=True)),  # nothing was asked on stream 9
        ("s", frame(f.RESULT, int_(77), 9, response=True)),
    ]
    recs, st_ = replay(log)
    assert recs == [] and st_.parse_errors == 1 and st_.unmatched_responses == 2


def test_garbage_is_counted_and_parsing_recovers():
    good = frame(f.QUERY, simple_query("SELECT now() FROM system.local"))
    recs, st_ = replay([("c", b"\xff\xfe garbage \x00\x01" + good), ("s", frame(f.RESULT, int_(1), response=True))])
    assert [r["req_body"] for r in recs] == ["SELECT now() FROM system.local"]
    assert st_.parse_errors == 1


def test_crc24_matches_the_driver():
    for header in (0x0000_0D, 0x02_0000 | 300, 0x01_FFFF, 0):
        data = header.to_bytes(3, "little")
        assert f.crc24(data) == compute_crc24(header, 3)


def test_infer():
    assert infer(frame(f.OPTIONS, b"", 0)) is MessageKind.REQUEST
    startup = frame(f.STARTUP, short(1) + string("CQL_VERSION") + string("3.0.0"), 0, version=5)
    assert infer(startup) is MessageKind.REQUEST
    assert infer(startup + frame(f.OPTIONS, b"", 1)) is MessageKind.REQUEST
    assert infer(frame(f.READY, b"", 0, response=True)) is MessageKind.RESPONSE
    assert infer(startup[:12]) is MessageKind.REQUEST  # the rest comes with the next read
    assert infer(frame(f.READY, b"", 0)) is None  # a response opcode without the response bit
    assert infer(frame(f.OPTIONS, b"", 0, version=2)) is None
    assert infer(frame(f.OPTIONS, b"", 0) + b"trailing junk that is no header") is None
    assert infer(b"GET / HTTP/1.1\r\n\r\n") is None
    assert infer(b"*1\r\n$4\r\nPING\r\n") is None
    assert infer(b"\x04\x00") is None


def test_tracker_routes_cql_and_marks_the_connection():
    from cluster.pem.protocols.registry import BY_CODE, PROTOCOL_CQL

    spec = BY_CODE[PROTOCOL_CQL]
    assert spec.table == "cql_events" and spec.env_var == "PXTUI_ENABLE_CQL_TRACING" and PROTOCOL_CQL == 4
    from cluster.pem.protocols.registry import PROTOCOLS

    first = next(p for p in PROTOCOLS if p.infer(frame(f.OPTIONS, b"", 0)) is not None)
    assert first.code == PROTOCOL_CQL


NOISE = st.lists(st.tuples(st.booleans(), st.binary(max_size=64)), max_size=16)


def _bounded(chunks: list[tuple[bool, bytes]]) -> None:
    st_ = CqlStitcher(max_pending=8)
    client, server = DataStream(max_bytes=4096), DataStream(max_bytes=4096)
    for ts, (is_client, data) in enumerate(chunks, 1):
        (client if is_client else server).append(ts, data)
        st_.process(ROLE_CLIENT, client, server)
        assert len(client) <= 4096 and len(server) <= 4096 and st_._count <= 8
    st_.on_close(ROLE_CLIENT, client, server)
    assert st_.internal_errors == 0


@settings(max_examples=300, deadline=None)
@given(NOISE)
def test_noise_never_raises_and_stays_bounded(chunks):
    _bounded(chunks)


HEADERS = st.builds(
    lambda v, fl, s, op, body: struct.pack(">BBhBi", v, fl, s, op, len(body)) + body,
    st.sampled_from([3, 4, 5, 0x83, 0x84, 0x85]), st.integers(0, 0x1F), st.integers(-1, 5),
    st.sampled_from(sorted(f.REQUEST_OPS | f.RESPONSE_OPS)), st.binary(max_size=40),
)  # fmt: skip


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.booleans(), HEADERS), max_size=12))
def test_protocol_shaped_noise_never_raises(frames_):
    _bounded(frames_)


def test_mutating_and_truncating_a_real_session_never_raises(sessions):
    log = pool_session(sessions, 5)
    client = b"".join(d for s, d in log if s == "c")
    server = b"".join(d for s, d in log if s == "s")
    for i in range(0, len(client), 7):
        mutated = client[:i] + bytes([client[i] ^ 0x5A]) + client[i + 1 :]
        _, st_ = replay([("c", mutated), ("s", server)], split=True)
        st_.on_close(ROLE_CLIENT, DataStream(), DataStream())
        assert st_.internal_errors == 0
    for cut in range(0, len(server), 5):
        _, st_ = replay([("c", client), ("s", server[:cut])], split=True)
        st_.on_close(ROLE_CLIENT, DataStream(), DataStream())
        assert st_.internal_errors == 0
