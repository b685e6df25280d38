"""Parse cost of the MySQL and PostgreSQL protocols on one core, with a baseline measured in the same run.

* MySQL: COM_QUERY of a SELECT and its text result set (3 column definitions, 1 row, EOF packets as
  MariaDB sends them), and an INSERT answered by OK, after a handshake (greeting, login, OK).
* PostgreSQL: a simple query (Q) and its RowDescription, DataRow, CommandComplete, ReadyForQuery; and
  the extended protocol as drivers send it (Parse, Bind with 2 parameters, Describe, Execute, Sync in
  one write; 4 records per exchange).
* Baseline: the Redis stitcher on a SET exchange (an existing protocol), as in the other protocol
  benchmarks, so figures compare across protocols and machines.

Packets come from the unit tests' builders (tests/unit/test_mysql_protocol.py, test_pgsql_protocol.py),
written from the protocol documentation. One stitcher call per exchange, best of 5 runs (the machine
is shared). Prints µs per record, records/s and the ratio to Redis.

    .venv/bin/python -m tests.bench.bench_protocols_mysql_pgsql
"""

from __future__ import annotations

import struct

from cluster.pem.protocols.mysql import MysqlStitcher
from cluster.pem.protocols.pgsql import PgsqlStitcher
from cluster.pem.protocols.redis import RedisStitcher
from tests.bench.bench_protocols_dns_nats import best, redis_exchange, report, stitch_run
from tests.unit.test_mysql_protocol import coldef, eof, greeting, login, ok, pkt, query, text_row
from tests.unit.test_pgsql_protocol import READY, complete, data_row, msg, row_desc

N = 5000
MYSQL_PROLOGUE = (login(), greeting() + ok(2))  # (client's bytes, server's bytes)


def mysql_select(i: int) -> tuple[bytes, bytes]:
    rows = (pkt(1, b"\x03") + coldef(2, "id") + coldef(3, "name") + coldef(4, "price") + eof(5)
            + text_row(6, str(i), f"item-{i}", "19.99") + eof(7))  # fmt: skip
    return query(f"SELECT id, name, price FROM shop.items WHERE id = {i}"), rows


def mysql_insert(i: int) -> tuple[bytes, bytes]:
    return query(f"INSERT INTO shop.orders (item_id, qty) VALUES ({i}, 2)"), ok(1, status=2)


def pgsql_simple(i: int) -> tuple[bytes, bytes]:
    q = msg(b"Q", f"SELECT id, name, price FROM items WHERE id = {i}\x00".encode())
    return q, row_desc("id", "name", "price") + data_row(str(i), f"item-{i}", "19.99") + complete("SELECT 1") + READY


def pgsql_extended(i: int) -> tuple[bytes, bytes]:
    parse = msg(b"P", b"\x00SELECT id, name FROM items WHERE id = $1 AND qty > $2\x00" + struct.pack(">hII", 2, 23, 23))
    params = struct.pack(">h", 2) + struct.pack(">i", len(str(i))) + str(i).encode() + struct.pack(">i", 1) + b"1"
    bind = msg(b"B", b"\x00\x00" + struct.pack(">hh", 1, 0) + params + struct.pack(">h", 0))  # text formats
    req = parse + bind + msg(b"D", b"P\x00") + msg(b"E", b"\x00" + struct.pack(">i", 0)) + msg(b"S")
    resp = msg(b"1") + msg(b"2") + row_desc("id", "name") + data_row(str(i), f"item-{i}") + complete("SELECT 1")
    return req, resp + READY  # fmt: skip


def measure() -> list[tuple[str, str, float, int]]:
    """(protocol, workload, seconds, records) per workload, best of 5: one core's parse throughput, for
    tests/bench/bench_protocol_parsers.py."""
    selects = [mysql_select(i) for i in range(N)]
    inserts = [mysql_insert(i) for i in range(N)]
    simple = [pgsql_simple(i) for i in range(N)]
    extended = [pgsql_extended(i) for i in range(N)]
    stitch_run(MysqlStitcher, selects[:500], MYSQL_PROLOGUE)  # warm-up
    return [
        ("MySQL", "COM_QUERY SELECT + result set", *best(lambda: stitch_run(MysqlStitcher, selects, MYSQL_PROLOGUE))),
        ("MySQL", "COM_QUERY INSERT + OK", *best(lambda: stitch_run(MysqlStitcher, inserts, MYSQL_PROLOGUE))),
        ("PostgreSQL", "simple query + 1 row", *best(lambda: stitch_run(PgsqlStitcher, simple))),
        ("PostgreSQL", "extended P/B/D/E/S, 4 records", *best(lambda: stitch_run(PgsqlStitcher, extended))),
    ]


def main() -> None:
    expected = {"COM_QUERY SELECT + result set": N, "COM_QUERY INSERT + OK": N, "simple query + 1 row": N,
                "extended P/B/D/E/S, 4 records": 4 * N}  # fmt: skip
    redis_el, redis_n = best(lambda: stitch_run(RedisStitcher, [redis_exchange(i) for i in range(N)]))
    print(f"{N} exchanges per workload, one stitcher call per exchange, best of 5")
    redis_us = report("baseline: Redis SET exchange (RedisStitcher)", redis_el, redis_n)
    for protocol, workload, el, n in measure():
        assert n == expected[workload], (workload, n)
        report(f"{protocol} {workload}", el, n, redis_us, "Redis")


if __name__ == "__main__":
    main()
