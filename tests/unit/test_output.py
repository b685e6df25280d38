import csv
import io
import json

import pyarrow as pa

from cluster.pem.process_info import make_upid
from cluster.schemas import TIME64NS, UINT128, col
from pxtui.output import json_document, render_table_text, write_csv, write_jsonl

SCHEMA = pa.schema([
    col("time_", TIME64NS), col("upid", UINT128, "ST_UPID"), col("latency", pa.int64(), "ST_DURATION_NS"),
    col("status", pa.string()), col("body", pa.string()),
])
TABLE = pa.Table.from_pylist([
    {"time_": 1_700_000_000_123_456_789, "upid": make_upid(1, 42, 7), "latency": 1_500_000, "status": "200",
     "body": '[bold]x[/], "quoted"'},
], schema=SCHEMA)


def test_json_document_carries_types_and_semantic_types():
    doc = json_document("px/x", {"a": "1"}, [("out", TABLE)], ["w"])
    out = doc["tables"]["out"]
    assert out["columns"][2] == {"name": "latency", "type": "INT64", "semantic_type": "ST_DURATION_NS"}
    row = out["rows"][0]
    assert row["time_"] == "2023-11-14T22:13:20.123456789Z"
    assert row["upid"] == "00000001-0000-002a-0000-000000000007"
    assert row["status"] == "200" and doc["warnings"] == ["w"]
    json.dumps(doc)


def test_jsonl_is_pixies_format():
    buf = io.StringIO()
    write_jsonl(buf, [("out", TABLE)])
    row = json.loads(buf.getvalue())
    assert next(iter(row)) == "_tableName_" and row["_tableName_"] == "out"
    assert row["status"] == 200  # Pixie prints numeric-looking strings as numbers


def test_csv_quotes_and_prefixes_the_table():
    buf = io.StringIO()
    write_csv(buf, [("out", TABLE)])
    rows = list(csv.reader(io.StringIO(buf.getvalue())))
    assert rows[0] == ["table_id", "time_", "upid", "latency", "status", "body"]
    assert rows[1][0] == "out" and rows[1][-1] == '[bold]x[/], "quoted"'


def test_table_text_formats_and_keeps_markup_as_data():
    text = render_table_text([("out", TABLE)])
    assert text.startswith("Table ID: out")
    assert "1.5 ms" in text and "[bold]x[/]" in text
