"""Cassandra CQL and MongoDB end to end: the REAL cassandra-driver (protocol v4 and v5) and the REAL
pymongo (plain and zlib-compressed) over real TCP -> eBPF -> the CQL and MongoDB parsers -> table store
-> PxL over gRPC and the bundled px/cql_data and px/mongodb_data scripts.

No Cassandra or MongoDB server can be installed on these machines, so the peers are
tests/cql_spec_server.py and tests/mongo_spec_server.py: processes started here whose replies are
built from the native protocol (v4/v5) and MongoDB wire protocol specifications. Every byte the
clients send is their own; both ends are traced, so each test checks the client's rows (trace_role
1) and the server's (trace_role 2). Each test finds exactly its own (marked) statements.
"""

from __future__ import annotations

import subprocess
import sys
import uuid
from collections.abc import Iterator

import pytest

from tests.conftest import ROOT, Vizier, free_port
from tests.integration.protocol_harness import cli_json, poll_rows, table_script

pytestmark = pytest.mark.ebpf

CQL_CLIENT = """
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
s.execute(f"CREATE TABLE IF NOT EXISTS items_{m} (id int, name text, PRIMARY KEY (id))")
s.execute(f"INSERT INTO items_{m} (id, name) VALUES (%s, %s)", (7, "widget-" + m))
ins = s.prepare(f"INSERT INTO items_{m} (id, name) VALUES (?, ?)")
batch = BatchStatement()
batch.add(ins, (8, "gadget-" + m))
s.execute(batch)
sel = s.prepare(f"SELECT id, name FROM items_{m} WHERE id = ?")
assert [r.name for r in s.execute(sel, (8,))] == ["gadget-" + m]
try:
    s.execute(f"SELECT * FROM nope_{m}")
    raise SystemExit("expected an error")
except InvalidRequest:
    pass
cluster.shutdown()
"""

MONGO_CLIENT = """
import sys
from pymongo import MongoClient
from pymongo.cursor import CursorType
from pymongo.errors import OperationFailure
port, m, comp = int(sys.argv[1]), sys.argv[2], sys.argv[3]
kw = {"compressors": "zlib"} if comp == "zlib" else {}
c = MongoClient("127.0.0.1", port, serverSelectionTimeoutMS=10000, directConnection=True, **kw)
items = c.shop["items_" + m]
items.insert_one({"sku": "sku-" + m, "qty": 2})
items.insert_many([{"sku": f"bulk-{m}-{i}", "qty": i} for i in range(5)])
assert items.find_one({"sku": "sku-" + m})["qty"] == 2
items.update_one({"sku": "sku-" + m}, {"$set": {"qty": 3}})
assert len(list(items.find({}, batch_size=2, cursor_type=CursorType.EXHAUST))) == 6
items.delete_one({"sku": "sku-" + m})
try:
    c.shop.command("nosuchcmd_" + m)
    raise SystemExit("expected an error")
except OperationFailure:
    pass
c.close()
"""


def spec_server(module: str) -> Iterator[int]:
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", module, "--port", str(port)], cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)  # fmt: skip
    try:
        line = proc.stdout.readline() if proc.stdout else ""
        if not line.startswith("listening"):
            pytest.fail(f"{module} did not start: {line}{proc.stderr.read() if proc.stderr else ''}")
        yield port
    finally:
        proc.terminate()
        proc.wait(timeout=10)


@pytest.fixture
def cql_port() -> Iterator[int]:
    yield from spec_server("tests.cql_spec_server")


@pytest.fixture
def mongo_port() -> Iterator[int]:
    yield from spec_server("tests.mongo_spec_server")


def run(*argv: str) -> None:
    out = subprocess.run(argv, capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert out.returncode == 0, f"{argv[:2]}: {out.stderr[-3000:]}"


def query_rows(v: Vizier, table: str, marker: str, want, timeout: float = 30) -> list[dict]:
    """Poll PxL until ``want(rows)`` holds for the rows of ``table`` whose req_body contains marker."""
    script = table_script(table, [f"px.contains(df.req_body, '{marker}')"])
    return poll_rows(v, script, want, f"{table} rows for {marker}", timeout)


def cli(v: Vizier, *args: str) -> dict:
    return cli_json(v, *args)


@pytest.mark.parametrize("version", [4, 5])
def test_cql_driver_queries_prepared_batch_and_errors(vizier: Vizier, cql_port: int, version: int):
    m = f"v{version}{uuid.uuid4().hex[:10]}"
    run(sys.executable, "-c", CQL_CLIENT, str(cql_port), str(version), m)
    ops = {7, 9, 10, 13}  # QUERY, PREPARE, EXECUTE, BATCH (the batch is found by its statement's id, below)

    def complete(rows: list[dict]) -> bool:
        got = {(r["req_op"], r["trace_role"]) for r in rows}
        return {(op, role) for op in (7, 9, 10) for role in (1, 2)} <= got

    rows = query_rows(vizier, "cql_events", m, complete)
    assert {r["req_op"] for r in rows} <= ops
    for role in (1, 2):
        mine = {(r["req_op"], r["req_body"], r["resp_op"], r["resp_body"]) for r in rows if r["trace_role"] == role}
        assert mine >= {
            (7, f"CREATE TABLE IF NOT EXISTS items_{m} (id int, name text, PRIMARY KEY (id))", 8,
             "Response type = SCHEMA_CHANGE"),
            (7, f"INSERT INTO items_{m} (id, name) VALUES (7, 'widget-{m}')", 8, "Response type = VOID"),
            (9, f"INSERT INTO items_{m} (id, name) VALUES (?, ?)", 8, "Response type = PREPARED"),
            (9, f"SELECT id, name FROM items_{m} WHERE id = ?", 8, "Response type = PREPARED"),
            (10, f'SELECT id, name FROM items_{m} WHERE id = ?\n["00000008"]', 8,
             'Response type = ROWS\nNumber of columns = 2\n["id","name"]\nNumber of rows = 1'),
            (7, f"SELECT * FROM nope_{m}", 0, f"[8704] unconfigured table nope_{m}"),
        }, (role, mine)  # fmt: skip
    client = [r for r in rows if r["trace_role"] == 1]
    assert all(r["remote_port"] == cql_port and r["latency"] > 0 for r in client), client
    assert all(r["local_port"] == cql_port for r in rows if r["trace_role"] == 2)

    doc = cli(vizier, "run", "px/cql_data", "-o", "json", "--", f"--body_filter={m}")
    shown = doc["tables"]["cql_data"]["rows"]
    assert {(r["req_op_name"], r["resp_op_name"]) for r in shown} >= {
        ("Query", "Result"),
        ("Prepare", "Result"),
        ("Execute", "Result"),
        ("Query", "Error"),
    }
    assert any(r["failed"] and f"nope_{m}" in r["req_body"] for r in shown)
    assert all(r["source"] and r["destination"] for r in shown)


@pytest.mark.parametrize("comp", ["none", "zlib"])
def test_mongodb_driver_crud_exhaust_and_errors(vizier: Vizier, mongo_port: int, comp: str):
    m = f"{comp}{uuid.uuid4().hex[:10]}"
    run(sys.executable, "-c", MONGO_CLIENT, str(mongo_port), m, comp)
    want = {"insert", "find", "update", "delete", "getMore"}

    def complete(rows: list[dict]) -> bool:
        return all({r["req_cmd"] for r in rows if r["trace_role"] == role} >= want for role in (1, 2))

    rows = query_rows(vizier, "mongodb_events", f"items_{m}", complete)
    errors = query_rows(vizier, "mongodb_events", f"nosuchcmd_{m}", lambda rs: len(rs) >= 2)
    for role in (1, 2):
        mine = {r["req_cmd"]: r for r in rows if r["trace_role"] == role}
        ok = "ok: {$numberDouble: 1.0}"
        assert [mine[c]["resp_status"] for c in ("insert", "update", "delete")] == [ok, ok, ok]
        assert mine["find"]["resp_status"] == "cursor" and mine["getMore"]["resp_status"] == "cursor"
        assert mine["insert"]["req_body"].startswith(f'{{ "insert" : "items_{m}", "ordered" : true, ')
        inserts = [r for r in rows if r["trace_role"] == role and r["req_cmd"] == "insert"]
        assert any(f'"sku" : "sku-{m}", "qty" : {{ "$numberInt" : "2" }} }} ' in r["req_body"] for r in inserts)
        # insert_many: one command with a five-document sequence (the body is capped at the agent's 512 chars)
        assert any(f'"sku" : "bulk-{m}-0"' in r["req_body"] and '"n" : { "$numberInt" : "5" }' in r["resp_body"]
                   for r in inserts)  # fmt: skip
        more = [r for r in rows if r["trace_role"] == role and r["req_cmd"] == "getMore"]
        assert any(r["resp_body"].count('"nextBatch"') == 2 for r in more)  # exhaust: 2 moreToCome replies, 1 row
        [err] = [r for r in errors if r["trace_role"] == role]
        assert (
            err["resp_status"] == "ok: {$numberDouble: 0.0}" and '"code" : { "$numberInt" : "59" }' in err["resp_body"]
        )
    assert not any(r["req_cmd"] in ("hello", "isMaster", "ismaster") for r in rows)  # handshakes are not rows
    client = [r for r in rows if r["trace_role"] == 1]
    assert all(r["remote_port"] == mongo_port and r["latency"] > 0 for r in client), client

    doc = cli(vizier, "run", "px/mongodb_data", "-o", "json", "--", f"--body_filter=items_{m}")
    shown = doc["tables"]["mongodb_data"]["rows"]
    assert {r["req_cmd"] for r in shown} >= {"insert", "find", "update", "delete", "getMore"}
    assert all(r["source"] and r["destination"] for r in shown)
