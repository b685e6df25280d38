"""End to end, all real: client libraries and command-line clients in child processes -> the real
PostgreSQL, MariaDB and Redis servers on loopback -> eBPF -> protocol parsers -> table store -> PxL
over gRPC. Each test finds exactly its own (marked) queries, client side (trace_role 1), with the
right command, a recognisable result and a positive latency.

The servers must run; scripts/ensure_services.sh starts any that is down.
"""

from __future__ import annotations

import os
import socket
import subprocess
import uuid

import pytest

from tests.conftest import Vizier
from tests.integration.protocol_harness import child, poll_rows, table_script

pytestmark = pytest.mark.ebpf

SERVERS = {
    "PostgreSQL": (5432, "pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start"),
    "MariaDB": (3306, "start-stop-daemon --start --oknodo --background --exec /usr/sbin/mariadbd"),
    "Redis": (6379, 'redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no '
                    "--dir /var/lib/redis --logfile /var/log/redis/ci.log"),
}  # fmt: skip


def require(server: str) -> None:
    port, start = SERVERS[server]
    try:
        socket.create_connection(("127.0.0.1", port), timeout=2).close()
    except OSError:
        pytest.fail(f"{server} is not listening on 127.0.0.1:{port}; start it with scripts/ensure_services.sh "
                    f"or: {start}")


def cli(*argv: str, env: dict | None = None) -> str:
    out = subprocess.run(argv, capture_output=True, text=True, timeout=60, env={**os.environ, **(env or {})})
    assert out.returncode == 0, out.stderr
    return out.stdout


def rows(v: Vizier, table: str, column: str, marker: str, want: int) -> list[dict]:
    script = table_script(table, [f"px.contains(df.{column}, '{marker}')"], role=1)
    return poll_rows(v, script, want, f"{want} {table} rows for {marker}")


def test_redis_client_and_cli(vizier: Vizier):
    require("Redis")
    m = uuid.uuid4().hex
    child(
        "import redis\n"
        "r = redis.Redis(host='127.0.0.1', port=6379)\n"
        f"r.set('pxtui:{m}', 'v-{m}')\n"
        f"assert r.get('pxtui:{m}') == b'v-{m}'\n"
        f"p = r.pipeline(transaction=False); p.rpush('pxtui:l:{m}', 'a', 'b'); p.lrange('pxtui:l:{m}', 0, -1)\n"
        "p.execute()\n"
        f"r.delete('pxtui:{m}', 'pxtui:l:{m}')\n"
    )
    assert cli("redis-cli", "-h", "127.0.0.1", "-p", "6379", "SET", f"pxtui:cli:{m}", "from-cli").strip() == "OK"
    found = rows(vizier, "redis_events", "req_args", m, 6)
    by_cmd = {r["req_cmd"]: r for r in found}
    assert set(by_cmd) == {"SET", "GET", "RPUSH", "LRANGE", "DEL"}, found
    assert len(found) == 6  # two SETs
    assert by_cmd["GET"]["resp"] == f"v-{m}" and by_cmd["GET"]["req_args"] == f'{{"key":"pxtui:{m}"}}'
    assert by_cmd["LRANGE"]["resp"] == '["a","b"]'
    assert {r["resp"] for r in found if r["req_cmd"] == "SET"} == {"OK"}
    assert any('"value":"from-cli"' in r["req_args"] for r in found)
    assert all(r["latency"] > 0 and r["remote_port"] == 6379 for r in found)


def test_postgres_client_and_psql(vizier: Vizier):
    require("PostgreSQL")
    m = uuid.uuid4().hex
    child(
        "import psycopg\n"
        "with psycopg.connect('host=127.0.0.1 port=5432 dbname=test user=postgres sslmode=disable') as c:\n"
        f"    assert c.execute(\"select 'simple-{m}' as tag\").fetchone() == ('simple-{m}',)\n"
        f"    assert c.execute('select %s::text as tag, %s::int + 1 as n', ('ext-{m}', 41)).fetchone() == "
        f"('ext-{m}', 42)\n"
        "    try:\n"
        f"        c.execute('select * from no_such_table_{m}')\n"
        "    except psycopg.errors.UndefinedTable:\n"
        "        pass\n"
    )
    out = cli("psql", "-h", "127.0.0.1", "-U", "postgres", "-d", "test", "-At", "-c", f"select 'psql-{m}'",
              env={"PGSSLMODE": "disable"})
    assert out.strip() == f"psql-{m}"
    found = rows(vizier, "pgsql_events", "req", m, 5)
    assert sorted(r["req_cmd"] for r in found) == ["Bind", "Execute", "Query", "Query", "Query"], found
    queries = {r["req"]: r for r in found if r["req_cmd"] == "Query"}
    assert queries[f"select 'simple-{m}' as tag"]["resp"] == f"tag\nsimple-{m}\nSELECT 1"
    assert queries[f"select 'psql-{m}'"]["resp"].endswith(f"psql-{m}\nSELECT 1")
    err = queries[f"select * from no_such_table_{m}"]["resp"]
    assert err.startswith("ERROR RESPONSE [Severity=ERROR") and "Code=42P01" in err
    [execute] = [r for r in found if r["req_cmd"] == "Execute"]
    assert execute["req"] == "query=[select $1::text as tag, $2::int + 1 as n] params=[ext-" + m + ", 41]"
    assert execute["resp"] == f"tag,n\next-{m},42\nSELECT 1"
    [bind] = [r for r in found if r["req_cmd"] == "Bind"]
    assert f"value=ext-{m}" in bind["req"] and bind["resp"] == "BIND COMPLETE"
    assert all(r["latency"] > 0 and r["remote_port"] == 5432 for r in found)


def test_mysql_client_prepared_statements_and_cli(vizier: Vizier):
    require("MariaDB")
    m = uuid.uuid4().hex
    child(
        "import pymysql, mysql.connector\n"
        "c = pymysql.connect(host='127.0.0.1', port=3306, user='root', password='', database='test')\n"
        "cur = c.cursor()\n"
        f"cur.execute(\"select 'py-{m}'\"); assert cur.fetchall() == (('py-{m}',),)\n"
        "try:\n"
        f"    cur.execute('select * from no_such_table_{m}')\n"
        "except pymysql.err.ProgrammingError:\n"
        "    pass\n"
        "c.close()\n"
        "x = mysql.connector.connect(host='127.0.0.1', port=3306, user='root', password='', database='test',"
        " ssl_disabled=True)\n"
        "cu = x.cursor(prepared=True)\n"
        f"cu.execute(\"select ? + 1, 'prep-{m}'\", (41,)); assert cu.fetchall()[0][0] == 42\n"
        "cu.close(); x.close()\n"
    )
    out = cli("mariadb", "-h", "127.0.0.1", "-P", "3306", "-u", "root", "--skip-ssl", "-N", "test",
              "-e", f"select 'cli-{m}'")
    assert out.strip() == f"cli-{m}"
    found = rows(vizier, "mysql_events", "req_body", m, 5)
    by_body = {(r["req_cmd"], r["req_body"]): r for r in found}
    assert by_body[(3, f"select 'py-{m}'")]["resp_body"] == "Resultset rows = 1"
    assert by_body[(3, f"select 'cli-{m}'")]["resp_status"] == 2
    failed = by_body[(3, f"select * from no_such_table_{m}")]
    assert failed["resp_status"] == 3 and failed["resp_body"] == f"Table 'test.no_such_table_{m}' doesn't exist"
    assert by_body[(22, f"select ? + 1, 'prep-{m}'")]["resp_status"] == 2
    executed = by_body[(23, f"select 41 + 1, 'prep-{m}'")]
    assert executed["resp_status"] == 2 and executed["resp_body"] == "Resultset rows = 1"
    assert len(found) == 5
    assert all(r["latency"] > 0 and r["remote_port"] == 3306 for r in found)
