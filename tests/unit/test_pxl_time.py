"""Time and duration forms of §6, all resolved at compile time against the injected now."""

from __future__ import annotations

import pytest

from cluster.pxl import PxlCompileError, compile_pxl
from cluster.pxl.compiler.timeparse import format_duration, parse_absolute_ns, parse_duration_ns
from tests.unit.test_pxl_support import NOW, SCHEMAS

S = 10**9


def source_range(args: str) -> tuple[int | None, int | None]:
    q = compile_pxl(f"import px\ndf = px.DataFrame('small', {args})\npx.display(df)\n",
                    now_ns=NOW, schemas=SCHEMAS)
    node = q.sinks[0].node
    return node.start_ns, node.end_ns  # type: ignore[attr-defined]


def const(expr: str):
    q = compile_pxl(f"import px\ndf = px.DataFrame('small')\ndf.v = {expr}\npx.display(df)\n",
                    now_ns=NOW, schemas=SCHEMAS)
    return q.sinks[0].node.exprs[-1].value  # type: ignore[attr-defined]


@pytest.mark.parametrize(("text", "offset"), [
    ("-5m", -300 * S), ("-300s", -300 * S), ("-24h", -86400 * S), ("-30s", -30 * S), ("-1d", -86400 * S),
    ("-100ms", -S // 10), ("5m", 300 * S), ("-1h30m", -3600 * S), ("start -2m ago", -120 * S),
])
def test_relative_start_times(text: str, offset: int) -> None:
    assert source_range(f"start_time='{text}'") == (NOW + offset, None)


def test_absolute_times_int_and_none() -> None:
    start, end = source_range("start_time='2020-07-13 18:02:5.00 -0700', end_time='2020-07-14 01:02:05 +0000'")
    assert start == 1594688525 * S and end == start
    assert source_range("start_time='2020-07-13 18:02:05.5 +0000'")[0] == 1594663325 * S + S // 2
    assert source_range("start_time=1234, end_time=None") == (1234, None)
    assert source_range("start_time=px.now() + px.parse_duration('-5m')") == (NOW - 300 * S, None)
    assert source_range("start_time=px.parse_time('-1m'), end_time=px.now()") == (NOW - 60 * S, NOW)
    assert source_range("") == (None, None)


def test_bad_time_is_a_located_error() -> None:
    with pytest.raises(PxlCompileError, match="start_time") as info:
        source_range("start_time='yesterday'")
    assert info.value.errors[0].line == 2


def test_compile_time_functions() -> None:
    assert const("px.now()") == NOW
    assert const("px.parse_duration('-5m')") == -300 * S
    assert const("px.seconds(10)") == 10 * S
    assert const("px.minutes(2)") == 120 * S
    assert const("px.hours(1)") == 3600 * S
    assert const("px.days(1)") == 86400 * S
    assert const("px.milliseconds(3)") == 3_000_000
    assert const("px.microseconds(3)") == 3_000
    assert const("px.format_duration(-300 * 1000 * 1000 * 1000)") == "-5m"
    assert const("px.format_duration(2 * px.parse_duration('-5m'))") == "-10m"
    assert const("px.parse_time('-1m')") == NOW - 60 * S
    assert const("px.now() - px.parse_time('-1m')") == 60 * S
    with pytest.raises(PxlCompileError, match="parse_duration"):
        const("px.parse_duration('soon')")


def test_helpers_directly() -> None:
    assert parse_duration_ns("-5m") == -300 * S
    assert parse_absolute_ns("not a time") is None
    assert format_duration(90 * S) == "1m"
    assert format_duration(1500 * 10**6) == "1s"
    assert format_duration(500 * 10**6) == "500ms"
    assert format_duration(-2 * 86400 * S) == "-2d"
    assert format_duration(0) == "0ms"
