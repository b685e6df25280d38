"""Bodies in the detail screen: SQL broken at clauses, Redis as a command, Kafka/HTTP JSON indented."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa

from cluster.schemas import col
from pxtui.screens.body_view import body_renderable, pretty_sql, redis_command
from pxtui.screens.row_detail import field_renderable
from tests.tui.test_live_app import text_of


def test_pretty_sql_breaks_clauses_and_keeps_literals() -> None:
    sql = "select id, name from users u join orders o on o.uid = u.id where u.age > 3 and u.name = 'a  where b' " \
          "order by id limit 10"
    assert pretty_sql(sql).splitlines() == [
        "select id, name",
        "from users u",
        "join orders o on o.uid = u.id",
        "where u.age > 3",
        "  and u.name = 'a  where b'",
        "order by id",
        "limit 10",
    ]
    assert pretty_sql("INSERT INTO t (a) VALUES (1)") == "INSERT INTO t (a)\nVALUES (1)"


def test_redis_command_lines() -> None:
    assert redis_command("SET", '{"key": "k", "value": "v 1"}') == 'SET k "v 1"'
    assert redis_command("MGET", '["a", "b"]') == "MGET a b"
    assert redis_command("PING", "") == "PING"
    assert redis_command("GET", "not json") == "GET not json"


def test_body_renderable_picks_the_form_by_row_shape() -> None:
    mysql_row = {"req_cmd": 3, "req_body": "SELECT * FROM t WHERE a = 1"}
    assert "FROM t\nWHERE a = 1" in text_of(body_renderable("req_body", mysql_row["req_body"], mysql_row))
    pg_row = {"req_cmd": "Query", "req": "select 1 from x"}
    assert "select 1\nfrom x" in text_of(body_renderable("req", pg_row["req"], pg_row))
    # an HTTP body that merely starts like SQL is left alone (no req_cmd in an http row)
    assert body_renderable("req_body", "select your plan", {"req_body": "select your plan"}) is None
    redis_row = {"req_cmd": "SET", "req_args": '{"key": "cart:1", "value": "3"}'}
    shown = text_of(body_renderable("req_args", redis_row["req_args"], redis_row))
    assert shown.splitlines()[0] == "SET cart:1 3" and '"key": "cart:1"' in shown
    kafka = json.dumps({"transactional_id": "", "acks": 1, "topics": [{"name": "orders", "partitions": [0]}]})
    shown = text_of(body_renderable("req_body", kafka, {"req_cmd": 0, "req_body": kafka}))
    assert '  "acks": 1,' in shown and '"name": "orders"' in shown


def test_detail_field_uses_the_row(tmp_path: Path) -> None:
    fld = col("req_body", pa.string())
    row = {"req_cmd": 3, "req_body": "select a from b where c = 1 or d = 2"}
    shown = text_of(field_renderable(fld, row["req_body"], row))
    assert "where c = 1\n  or d = 2" in shown
