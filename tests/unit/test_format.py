"""Semantic cell formatting: Pixie's CLI values where it has tests, and the vectorised path
agreeing with the scalar one."""

from __future__ import annotations

import json
from datetime import UTC, timedelta, timezone

import pyarrow as pa
import pytest

from cluster.schemas import TIME64NS, UINT128, col
from pxtui.format import (
    column_styles,
    cut,
    format_bytes,
    format_column,
    format_duration,
    format_percent,
    format_quantiles,
    format_script_reference,
    format_table,
    format_throughput,
    format_throughput_bytes,
    format_time_full,
    format_time_short,
    format_upid,
    format_value,
    json_value,
)

NS = 1_700_000_000_123_456_789  # 2023-11-14T22:13:20.123456789Z


@pytest.mark.parametrize(
    ("ns", "text"),
    [
        (0, "0 ns"),
        (7, "7 ns"),
        (144, "144 ns"),
        (5144, "5.1 µs"),
        (5_000_000, "5.0 ms"),
        (23_409_234, "23.4 ms"),
        (13 * 10**9 + 1242, "13.0 s"),
        (59 * 10**9, "59.0 s"),
        (184 * 10**9, "3 min 4 s"),
        (5 * 60 * 10**9 + 1334, "5 min"),
        (12 * 3600 * 10**9 + 1335144, "12 hours"),
        (3600 * 10**9 + 120 * 10**9, "1 hour 2 min"),
        (51 * 3600 * 10**9, "2 days 3 hours"),
        (86400 * 10**9, "1 day"),
        (-12313, "-12.3 µs"),
        (12.6, "13 ns"),
    ],
)
def test_duration(ns: float, text: str) -> None:
    assert format_duration(ns) == text


@pytest.mark.parametrize(
    ("n", "text"),
    [
        (5, "5 B"),
        (144, "144 B"),
        (1023, "1023 B"),
        (5144, "5.0 KiB"),
        (1229, "1.2 KiB"),
        (5 * 1000 * 1000, "4.8 MiB"),
        (13 * 1000**3 + 1242, "12.1 GiB"),
        (12 * 60 * 60 * 1000**3 + 1335144, "39.3 TiB"),
        (-2048, "-2.0 KiB"),
    ],
)
def test_bytes(n: int, text: str) -> None:
    assert format_bytes(n) == text


def test_percent_and_throughput() -> None:
    assert format_percent(-0.2344) == "-23.44 %"
    assert format_percent(0.14) == "14.00 %"
    assert format_throughput(1.243924924) == "1.24392e+09 /s"
    assert format_throughput(2.5e-9) == "2.5 /s"
    assert format_throughput_bytes(1.243924924) == "1.2 GiB/s"
    assert format_throughput_bytes(-0.00023423424) == "-229 KiB/s"


def test_quantiles() -> None:
    assert format_quantiles(json.dumps({"p99": 0.000023423, "p50": -1231})) == "p50: -1231, p99: 2.3423e-05"
    d = json.dumps({"p50": 23409234, "p90": 1_200_000, "p99": 234092234234})
    assert format_quantiles(d, durations=True) == "p50: 23.4 ms, p90: 1.2 ms, p99: 3 min 54 s"
    assert format_quantiles("not json", durations=True) == "not json"
    assert format_quantiles("[1, 2]") == "[1, 2]"


def test_script_reference_shows_label() -> None:
    ref = json.dumps({"label": "frontend-0", "script": "px/pod", "args": {"pod": "default/frontend-0"}})
    assert format_script_reference(ref) == "frontend-0"
    assert format_script_reference("plain") == "plain"


def test_time_and_upid() -> None:
    assert format_time_short(NS, UTC) == "22:13:20.123"
    assert format_time_full(NS, UTC) == "2023-11-14T22:13:20.123456789Z"
    plus2 = timezone(timedelta(hours=2))
    assert format_time_short(NS, plus2) == "00:13:20.123"
    assert format_time_full(NS, plus2) == "2023-11-15T00:13:20.123456789+02:00"
    upid = ((1 << 32 | 4242) << 64 | 987654).to_bytes(16, "big")
    assert format_upid(upid) == "00000001-0000-1092-0000-0000000f1206"


def test_cut() -> None:
    assert cut("short") == "short"
    assert cut("a\nb\tc") == "a b c"
    long = "x" * 80
    assert cut(long) == "x" * 49 + "…" and len(cut(long)) == 50
    assert cut("y" * 50) == "y" * 50


def test_format_value_dispatch() -> None:
    assert format_value(1_500_000, col("latency", pa.int64(), "ST_DURATION_NS")) == "1.5 ms"
    assert format_value(2048, col("bytes", pa.int64(), "ST_BYTES")) == "2.0 KiB"
    assert format_value(NS, col("time_", TIME64NS), tz=UTC) == "22:13:20.123"
    assert format_value(NS, col("time_", pa.int64()), full=True, tz=UTC).endswith(".123456789Z")
    assert format_value(True, pa.field("ok", pa.bool_())) == "true"
    assert format_value(0.1234567891, pa.field("f", pa.float64())) == "0.123457"
    assert format_value("z" * 60, pa.field("s", pa.string())).endswith("…")
    assert format_value("z" * 60, pa.field("s", pa.string()), full=True) == "z" * 60
    assert format_value(None, pa.field("s", pa.string())) == ""
    assert format_value([1, 2], pa.field("l", pa.list_(pa.int64()))) == "[1, 2]"


def _check_column(values: list, fld: pa.Field) -> list[str]:
    """The vectorised column must equal the scalar formatter value by value."""
    arr = pa.array(values, fld.type)
    out = format_column(arr, fld, tz=UTC).to_pylist()
    assert out == [format_value(v, fld, tz=UTC) for v in values]
    return out


def test_column_matches_scalar() -> None:
    _check_column([0, 144, 5144, 5_000_000, 184 * 10**9], col("latency", pa.int64(), "ST_DURATION_NS"))
    _check_column([5, 1229, 2**40], col("size", pa.int64(), "ST_BYTES"))
    _check_column([0.5, 0.0014], col("cpu", pa.float64(), "ST_PERCENT"))
    _check_column([1.5, 1e-9, 123456789.0], pa.field("f", pa.float64()))
    _check_column([200, 404], col("status", pa.int64(), "ST_HTTP_RESP_STATUS"))
    _check_column([True, False], pa.field("b", pa.bool_()))
    _check_column(["a\nb", "q" * 70, "[bold]not markup[/]", ""], pa.field("s", pa.string()))
    _check_column([json.dumps({"p50": 1e6, "p99": 3e6})], col("lat", pa.string(), "ST_DURATION_NS_QUANTILES"))
    _check_column([json.dumps({"label": "L", "script": "px/pod"})], col("r", pa.string(), "ST_SCRIPT_REFERENCE"))
    _check_column([bytes(16), bytes(range(16))], col("upid", UINT128, "ST_UPID"))


def test_time_column_vectorised() -> None:
    arr = pa.array([NS, NS + 1_000_000_000, 0], TIME64NS)
    assert format_column(arr, col("time_", TIME64NS), tz=UTC).to_pylist() == [
        "22:13:20.123", "22:13:21.123", "00:00:00.000"]
    plus2 = timezone(timedelta(hours=2))
    assert format_column(arr, col("time_", TIME64NS), tz=plus2).to_pylist()[0] == "00:13:20.123"
    ints = pa.array([NS], pa.int64())
    assert format_column(ints, pa.field("time_", pa.int64()), tz=UTC).to_pylist() == ["22:13:20.123"]
    chunked = pa.chunked_array([[NS], [NS]], TIME64NS)
    assert format_column(chunked, col("time_", TIME64NS), tz=UTC).to_pylist() == ["22:13:20.123"] * 2
    assert format_column(pa.array([], TIME64NS), col("time_", TIME64NS)).to_pylist() == []


def test_unknown_types_never_raise() -> None:
    odd = [
        pa.array([{"a": 1}, None]),
        pa.array([[1], []]),
        pa.array(["x", "y"]).dictionary_encode(),
        pa.array([1, None], pa.decimal128(5, 2)),
        pa.array([1, 2], pa.timestamp("ns")),
        pa.array([b"\x00\xff", b""]),
        pa.array([None, None], pa.null()),
        pa.array([1, 2], pa.duration("ns")),
    ]
    for arr in odd:
        out = format_column(arr, pa.field("c", arr.type))
        assert len(out) == len(arr) and out.null_count == 0


def test_styles() -> None:
    status = column_styles(pa.array([101, 200, 302, 404, 503]), col("status", pa.int64(), "ST_HTTP_RESP_STATUS"))
    assert status is not None and status.to_pylist() == [None, "green", None, "red", "red"]
    lat = column_styles(pa.array([1, 250_000_000, 500_000_000]), col("latency_p99", pa.int64(), "ST_DURATION_NS"))
    assert lat is not None and lat.to_pylist() == ["green", "yellow", "red"]
    assert column_styles(pa.array([1]), col("elapsed", pa.int64(), "ST_DURATION_NS")) is None
    cpu = column_styles(pa.array([0.5, 0.75, 0.9]), col("cpu_usage", pa.float64(), "ST_PERCENT"))
    assert cpu is not None and cpu.to_pylist() == ["green", "yellow", "red"]


def test_format_table_and_json_values() -> None:
    schema = pa.schema([col("time_", TIME64NS), col("upid", UINT128, "ST_UPID"), pa.field("body", pa.string())])
    t = pa.table({"time_": pa.array([NS], TIME64NS), "upid": pa.array([bytes(16)], UINT128),
                  "body": ["é" * 60]}, schema=schema)
    ft = format_table("t", t, UTC)
    assert ft.columns == ["time_", "upid", "body"]
    assert ft.widths == [12, 36, 50]
    row = ft.row_values(0)
    assert row["time_"] == NS  # nanoseconds survive
    assert json_value(row["time_"], schema.field("time_")).endswith(".123456789Z")
    assert json_value(row["upid"], schema.field("upid")) == "00000000-0000-0000-0000-000000000000"
    empty = format_table("e", schema.empty_table())
    assert empty.num_rows == 0 and empty.widths == [0, 0, 0]


# ------------------------------------------------------------------------------ status gutter


def test_status_state_reads_pod_and_container_status_json() -> None:
    from pxtui.format import status_state

    assert status_state('{"phase": "Running", "ready": true}') == "ok"
    assert status_state('{"phase": "Running", "ready": false}') == "pending"
    assert status_state('{"phase": "Pending"}') == "pending"
    assert status_state('{"phase": "Failed", "reason": ""}') == "failed"
    assert status_state('{"state": "Waiting", "reason": "CrashLoopBackOff"}') == "failed"
    assert status_state('{"state": "CONTAINER_STATE_TERMINATED"}') == "stopped"
    assert status_state("Running") == "ok"
    assert status_state("") == "unknown" and status_state(None) == "unknown"
    assert status_state("{not json") == "unknown" and status_state("[1]") == "unknown"
