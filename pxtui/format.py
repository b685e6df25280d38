"""Semantic formatting of result cells, the way Pixie's `px` CLI formats them (pxl_surface §13.3).

Why here and not in the widgets: the same rules serve the live table, the detail screen and (later)
`-o table`, and they must be testable without a terminal. Two layers:

* scalar functions (`format_bytes`, `format_duration`, `format_value`, ...) that take one Python
  value; used by the detail screen and as the reference the vectorised path is tested against;
* `format_column` / `format_table`, which format a whole Arrow column at once. A live table gets up
  to 1000 rows every 2 s, so plain types go through pyarrow.compute and only semantic types that
  need per-value logic fall back to a Python loop (with a small memo, since bytes and durations
  repeat a lot).

Numbers follow Pixie's own formatter (src/pixie_cli/pkg/vizier/data_formatter.go): one decimal
below 100 units ("5.1 µs", "4.8 MiB"), none above ("234 s"), values below 10 of the base unit as
integers. Two deliberate differences: durations of a minute or more read "3 min 4 s" /
"2 hours 3 min" / "2 days 3 hours" instead of "43200 s", and tiny durations keep their unit
("5 ns", Pixie prints "5 s"), and whole base units carry no fraction ("13 B", not "13.0 B").
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, tzinfo
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from cluster.schemas import semantic_type

MAX_CELL_CHARS = 50
"""Cells longer than this are cut with an ellipsis in tables, as `px live` does."""

ELLIPSIS = "…"

LATENCY_YELLOW_NS = 200_000_000
LATENCY_RED_NS = 400_000_000
CPU_YELLOW_PCT = 70.0
CPU_RED_PCT = 80.0

_CONTROL_RE = r"[\r\n\t\x0b\x0c]"

# --------------------------------------------------------------------------------------------
# scalar formatters


def _humanate(value: float, base: float, sizes: list[str]) -> tuple[str, str]:
    """Pixie's humanate(): pick the largest unit the value reaches, one decimal under 100 units."""
    if value < base:
        # Pixie prints "13.0 B" here; whole units never have a fraction, so we print "13 B".
        return f"{round(value)}", sizes[0]
    e = min(math.floor(math.log(value) / math.log(base)), len(sizes) - 1)
    val = math.floor(value / base**e * 10 + 0.5) / 10
    return (f"{val:.1f}" if val < base / 10 else f"{val:.0f}"), sizes[e]


_BYTE_UNITS = ["B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"]


def format_bytes(n: float) -> str:
    """144 -> "144 B", 5144 -> "5.0 KiB"; negative values keep their sign (deltas)."""
    if n is None or (isinstance(n, float) and not math.isfinite(n)):
        return "" if n is None else str(n)
    s, unit = _humanate(abs(float(n)), 1024, _BYTE_UNITS)
    return f"{'-' if n < 0 else ''}{s} {unit}"


_NS_PER = {"ns": 1, "µs": 1_000, "ms": 1_000_000, "s": 1_000_000_000}
_MIN_NS = 60 * 1_000_000_000
_HOUR_NS = 60 * _MIN_NS
_DAY_NS = 24 * _HOUR_NS


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def format_duration(ns: float) -> str:
    """Nanoseconds as people read them: "144 ns", "5.1 µs", "23.4 ms", "13.0 s", "3 min 4 s"."""
    if ns is None:
        return ""
    if isinstance(ns, float) and not math.isfinite(ns):
        return str(ns)
    sign = "-" if ns < 0 else ""
    v = abs(round(float(ns)))
    if v < _MIN_NS:
        s, unit = _humanate(v, 1000, ["ns", "µs", "ms", "s"])
        return f"{sign}{s} {unit}"
    secs = int(v // 1_000_000_000)
    if v < _HOUR_NS:
        m, s = divmod(secs, 60)
        return f"{sign}{m} min {s} s" if s else f"{sign}{m} min"
    if v < _DAY_NS:
        h, rem = divmod(secs, 3600)
        m = rem // 60
        return f"{sign}{_plural(h, 'hour')} {m} min" if m else f"{sign}{_plural(h, 'hour')}"
    d, rem = divmod(secs, 86400)
    h = rem // 3600
    return f"{sign}{_plural(d, 'day')} {_plural(h, 'hour')}" if h else f"{sign}{_plural(d, 'day')}"


def format_float(v: float) -> str:
    """Six significant digits, like Go's strconv.FormatFloat(v, 'g', 6, 64)."""
    if v is None:
        return ""
    return format(float(v), ".6g")


def format_percent(v: float) -> str:
    """Pixie stores percent as a fraction: 0.14 -> "14.00 %"."""
    if v is None:
        return ""
    return f"{float(v) * 100:.2f} %"


def format_throughput(per_ns: float) -> str:
    """ST_THROUGHPUT_PER_NS is events per nanosecond; people read events per second."""
    if per_ns is None:
        return ""
    return f"{format_float(float(per_ns) * 1e9)} /s"


def format_throughput_bytes(per_ns: float) -> str:
    """ST_THROUGHPUT_BYTES_PER_NS: bytes per nanosecond shown as "1.2 GiB/s"."""
    if per_ns is None:
        return ""
    return f"{format_bytes(float(per_ns) * 1e9)}/s"


def format_quantiles(text: str, durations: bool = False) -> str:
    """'{"p50": 1.2e6, "p99": 4e6}' -> "p50: 1.2 ms, p99: 4.0 ms" (keys sorted, as px does).

    Anything that is not a JSON object comes back unchanged: a broken cell must not hide the row.
    """
    try:
        doc = json.loads(text)
    except (TypeError, ValueError):
        return str(text)
    if not isinstance(doc, dict):
        return str(text)
    parts = []
    for k in sorted(doc):
        v = doc[k]
        if isinstance(v, int | float) and not isinstance(v, bool):
            parts.append(f"{k}: {format_duration(v) if durations else format_float(v)}")
        else:
            parts.append(f"{k}: {v}")
    return ", ".join(parts)


def format_script_reference(text: str) -> str:
    """px.script_reference() cells are JSON {"label", "script", "args"}; tables show the label."""
    try:
        doc = json.loads(text)
    except (TypeError, ValueError):
        return str(text)
    if isinstance(doc, dict) and "label" in doc:
        return str(doc["label"])
    return str(text)


def format_upid(b: bytes) -> str:
    """A UINT128 (16 bytes, high word first) as canonical UUID text, as the px CLI prints upids."""
    if b is None:
        return ""
    h = bytes(b).hex()
    if len(h) != 32:
        return h
    return f"{h[0:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:32]}"


def _local_tz() -> tzinfo:
    tz = datetime.now().astimezone().tzinfo
    return tz if tz is not None else UTC


def format_time_short(ns: int, tz: tzinfo | None = None) -> str:
    """"HH:MM:SS.mmm" in local time: what a live table has room for (the date is in the window)."""
    if ns is None:
        return ""
    dt = datetime.fromtimestamp(ns // 1_000_000_000, tz or _local_tz())
    return f"{dt:%H:%M:%S}.{(ns % 1_000_000_000) // 1_000_000:03d}"


def format_time_full(ns: int, tz: tzinfo | None = None) -> str:
    """RFC3339 with nanoseconds and the local offset, as `px run -o json` writes times."""
    if ns is None:
        return ""
    dt = datetime.fromtimestamp(ns // 1_000_000_000, tz or _local_tz())
    off = dt.strftime("%z")
    off = "Z" if off in ("+0000", "") else f"{off[:3]}:{off[3:]}"
    return f"{dt:%Y-%m-%dT%H:%M:%S}.{ns % 1_000_000_000:09d}{off}"


def cut(text: str, limit: int = MAX_CELL_CHARS) -> str:
    """One line, at most `limit` characters, ending in "…" when something was cut."""
    one_line = re.sub(_CONTROL_RE, " ", text)
    return one_line if len(one_line) <= limit else one_line[: limit - 1] + ELLIPSIS


def _time_ns(value: Any) -> int | None:
    """Nanoseconds since the epoch from what Arrow hands back for a timestamp or int column."""
    if value is None:
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return int(value.timestamp()) * 1_000_000_000 + value.microsecond * 1000
    nanos = getattr(value, "value", None)  # pandas.Timestamp
    return int(nanos) if nanos is not None else None


def is_time_column(name: str, typ: pa.DataType) -> bool:
    """TIME64NS, or any INT64 column literally named time_ (Pixie's CLI treats both as times)."""
    return pa.types.is_timestamp(typ) or (name == "time_" and pa.types.is_integer(typ))


def format_value(value: Any, fld: pa.Field, full: bool = False, tz: tzinfo | None = None) -> str:
    """One cell as text, by the field's semantic type first and its Arrow type second.

    `full=True` is for the detail screen: complete times and no cutting of long strings.
    Never raises: an unknown type falls back to str().
    """
    if value is None:
        return ""
    st = semantic_type(fld)
    typ = fld.type
    try:
        if is_time_column(fld.name, typ) or st == "ST_TIME_NS":
            ns = _time_ns(value)
            if ns is not None:
                return format_time_full(ns, tz) if full else format_time_short(ns, tz)
        if st == "ST_BYTES":
            return format_bytes(value)
        if st == "ST_DURATION_NS":
            return format_duration(value)
        if st == "ST_PERCENT":
            return format_percent(value)
        if st == "ST_THROUGHPUT_PER_NS":
            return format_throughput(value)
        if st == "ST_THROUGHPUT_BYTES_PER_NS":
            return format_throughput_bytes(value)
        if st in ("ST_QUANTILES", "ST_DURATION_NS_QUANTILES"):
            return format_quantiles(value, durations=st == "ST_DURATION_NS_QUANTILES")
        if st == "ST_SCRIPT_REFERENCE":
            return format_script_reference(value)
        if isinstance(value, bytes | bytearray):
            return format_upid(value) if len(value) == 16 else bytes(value).hex()
        if isinstance(value, bool):
            return "true" if value else "false"
        if isinstance(value, float):
            return format_float(value)
        text = value if isinstance(value, str) else str(value)
    except (TypeError, ValueError, OverflowError):
        text = str(value)
    return text if full else cut(text)


# --------------------------------------------------------------------------------------------
# vectorised column formatting


def _loop(arr: pa.Array, fn: Callable[[Any], str]) -> pa.Array:
    """Per-value formatting with a memo: status-like and size-like columns repeat heavily."""
    memo: dict[Any, str] = {}
    out = []
    for v in arr.to_pylist():
        if v is None:
            out.append("")
            continue
        try:
            s = memo.get(v)
        except TypeError:  # unhashable (lists, dicts from nested types)
            out.append(fn(v))
            continue
        if s is None:
            s = fn(v)
            memo[v] = s
        out.append(s)
    return pa.array(out, pa.string())


def _cut_array(arr: pa.Array, limit: int) -> pa.Array:
    """Vectorised `cut`: control characters to spaces, then at most `limit` characters."""
    one_line = pc.replace_substring_regex(arr, _CONTROL_RE, " ")
    too_long = pc.greater(pc.utf8_length(one_line), limit)
    if not pc.any(too_long).as_py():
        return one_line
    shortened = pc.binary_join_element_wise(pc.utf8_slice_codeunits(one_line, 0, limit - 1), ELLIPSIS, "")
    return pc.if_else(too_long, shortened, one_line)


def _format_times(arr: pa.Array, tz: tzinfo | None) -> pa.Array:
    """HH:MM:SS.mmm for a whole column with pyarrow's strftime (no tz database needed).

    One UTC offset for the column, taken at its newest value: a table spanning a DST change
    shows an hour's skew on one side of it, which is acceptable for a live view of minutes.
    """
    ns = arr.cast(pa.int64())
    if len(ns) == 0 or ns.null_count == len(ns):
        return pa.array([""] * len(ns), pa.string())
    newest = pc.max(ns).as_py()
    off = datetime.fromtimestamp(newest // 1_000_000_000, tz or _local_tz()).utcoffset() or timedelta(0)
    shifted = pc.add(ns, int(off.total_seconds()) * 1_000_000_000)
    # %S on a millisecond timestamp prints "SS.mmm"; floor first so pre-1970 values stay right.
    ms = pc.subtract(shifted, pc.if_else(pc.less(shifted, 0), 999_999, 0))
    ms = pc.divide(ms, 1_000_000).cast(pa.timestamp("ms"))
    return pc.strftime(ms, format="%H:%M:%S")


def format_column(
    arr: pa.Array | pa.ChunkedArray, fld: pa.Field, tz: tzinfo | None = None, limit: int = MAX_CELL_CHARS
) -> pa.Array:
    """A whole column as display text (a non-null StringArray, same length), never raising."""
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks() if arr.num_chunks != 1 else arr.chunk(0)
    if pa.types.is_dictionary(arr.type):
        arr = arr.dictionary_decode()
        fld = fld.with_type(arr.type)
    try:
        out = _format_column(arr, fld, tz, limit)
    except (pa.ArrowException, TypeError, ValueError, OverflowError):
        out = _fallback(arr, limit)
    return pc.fill_null(out, "")


def _fallback(arr: pa.Array, limit: int) -> pa.Array:
    """Last resort for types nothing above knows: Arrow's own cast, then str(), then "?"."""
    try:
        return _cut_array(arr.cast(pa.string()), limit)
    except (pa.ArrowException, TypeError, ValueError):
        pass
    try:
        return _loop(arr, lambda v: cut(str(v), limit))
    except (pa.ArrowException, TypeError, ValueError, OverflowError):
        return pa.array(["?"] * len(arr), pa.string())


def _format_column(arr: pa.Array, fld: pa.Field, tz: tzinfo | None, limit: int) -> pa.Array:
    st = semantic_type(fld)
    typ = arr.type
    if is_time_column(fld.name, typ) or (st == "ST_TIME_NS" and pa.types.is_integer(typ)):
        return _format_times(arr, tz)
    numeric = pa.types.is_integer(typ) or pa.types.is_floating(typ)
    if numeric:
        per_value: dict[str, Callable[[Any], str]] = {
            "ST_BYTES": format_bytes,
            "ST_DURATION_NS": format_duration,
            "ST_PERCENT": format_percent,
            "ST_THROUGHPUT_PER_NS": format_throughput,
            "ST_THROUGHPUT_BYTES_PER_NS": format_throughput_bytes,
        }
        if st in per_value:
            return _loop(arr, per_value[st])
        if pa.types.is_floating(typ):
            return _loop(arr, format_float)
        return arr.cast(pa.string())
    if pa.types.is_boolean(typ):
        return arr.cast(pa.string())
    if pa.types.is_string(typ) or pa.types.is_large_string(typ):
        if st in ("ST_QUANTILES", "ST_DURATION_NS_QUANTILES"):
            durations = st == "ST_DURATION_NS_QUANTILES"
            return _cut_array(_loop(arr, lambda v: format_quantiles(v, durations)), limit)
        if st == "ST_SCRIPT_REFERENCE":
            return _cut_array(_loop(arr, format_script_reference), limit)
        return _cut_array(arr.cast(pa.string()), limit)
    if pa.types.is_fixed_size_binary(typ) and typ.byte_width == 16:
        return _loop(arr, format_upid)
    if pa.types.is_binary(typ) or pa.types.is_fixed_size_binary(typ) or pa.types.is_large_binary(typ):
        return _cut_array(_loop(arr, lambda v: bytes(v).hex()), limit)
    return _cut_array(_loop(arr, str), limit)


# --------------------------------------------------------------------------------------------
# cell styles (colour only; the text never depends on it, so NO_COLOR loses nothing)


def column_styles(arr: pa.Array | pa.ChunkedArray, fld: pa.Field) -> pa.Array | None:
    """Per-cell rich style names for columns px colours, or None for plain columns.

    HTTP status: 2xx green, >= 400 red. Columns named latency* with ST_DURATION_NS: green, yellow
    above 200 ms, red above 400 ms. cpu* percent columns: 70 % / 80 %. alert* booleans: red.
    """
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks() if arr.num_chunks != 1 else arr.chunk(0)
    st = semantic_type(fld)
    name = fld.name.lower()
    typ = arr.type
    numeric = pa.types.is_integer(typ) or pa.types.is_floating(typ)
    try:
        if st == "ST_HTTP_RESP_STATUS" and numeric:
            return pc.case_when(
                pc.make_struct(pc.greater_equal(arr, 400), pc.and_(pc.greater_equal(arr, 200),
                                                                   pc.less(arr, 300))),
                "red", "green",
            )
        if st == "ST_DURATION_NS" and name.startswith("latency") and numeric:
            return pc.case_when(
                pc.make_struct(pc.greater(arr, LATENCY_RED_NS), pc.greater(arr, LATENCY_YELLOW_NS)),
                "red", "yellow", "green",
            )
        if st == "ST_PERCENT" and name.startswith("cpu") and numeric:
            pct = pc.multiply(arr.cast(pa.float64()), 100.0)
            return pc.case_when(
                pc.make_struct(pc.greater(pct, CPU_RED_PCT), pc.greater(pct, CPU_YELLOW_PCT)),
                "red", "yellow", "green",
            )
        if (name == "alert" or name.startswith("alert_")) and pa.types.is_boolean(typ):
            return pc.if_else(arr, "bold red", pa.scalar(None, pa.string()))
    except pa.ArrowException:
        return None
    return None


# --------------------------------------------------------------------------------------------
# whole tables


@dataclass
class FormattedTable:
    """A result table with its display text computed once per update, off the event loop.

    `text[i]` and `styles[i]` are aligned with `raw`'s rows: sorting and filtering pick row
    indices and `take` from all three, so sort order comes from raw values (numbers sort as
    numbers) while filtering matches what the user sees.
    """

    name: str
    raw: pa.Table
    text: list[pa.Array] = field(default_factory=list)
    styles: list[pa.Array | None] = field(default_factory=list)
    widths: list[int] = field(default_factory=list)

    @property
    def columns(self) -> list[str]:
        return self.raw.column_names

    @property
    def num_rows(self) -> int:
        return self.raw.num_rows

    def row_values(self, index: int) -> dict[str, Any]:
        """Raw Python values of one row, for the detail screen and saving.

        Timestamps come back as int nanoseconds: datetime would drop the last three digits
        (and pyarrow refuses to convert ns without pandas).
        """
        out: dict[str, Any] = {}
        for i, fld in enumerate(self.raw.schema):
            col = self.raw.column(i)
            if pa.types.is_timestamp(fld.type):
                col = col.cast(pa.int64())
            try:
                out[fld.name] = col[index].as_py()
            except (pa.ArrowException, ValueError, TypeError):
                out[fld.name] = str(col[index])
        return out


def format_table(name: str, table: pa.Table, tz: tzinfo | None = None) -> FormattedTable:
    """Format every column of `table`; safe to call from a worker thread (pure)."""
    text, styles, widths = [], [], []
    for i, fld in enumerate(table.schema):
        col = table.column(i)
        t = format_column(col, fld, tz)
        text.append(t)
        styles.append(column_styles(col, fld))
        widest = pc.max(pc.utf8_length(t)).as_py() if len(t) else 0
        widths.append(int(widest or 0))
    return FormattedTable(name, table, text, styles, widths)


def json_value(value: Any, fld: pa.Field) -> Any:
    """A raw value in `px run -o json` form: times RFC3339Nano, UINT128 as UUID text."""
    if value is None:
        return None
    if is_time_column(fld.name, fld.type):
        ns = _time_ns(value)
        return format_time_full(ns) if ns is not None else str(value)
    if isinstance(value, bytes | bytearray):
        return format_upid(value) if len(value) == 16 else bytes(value).hex()
    if isinstance(value, int | float | str | bool):
        return value
    return str(value)


# --------------------------------------------------------------------------------------------
# status gutter (vis.json Table `gutterColumn`)

_STATE_WORDS = {
    "running": "ok", "succeeded": "ok", "completed": "ok", "ready": "ok", "active": "ok", "healthy": "ok",
    "pending": "pending", "waiting": "pending", "containercreating": "pending", "podinitializing": "pending",
    "failed": "failed", "crashloopbackoff": "failed", "error": "failed", "oomkilled": "failed",
    "imagepullbackoff": "failed", "errimagepull": "failed", "evicted": "failed",
    "terminated": "stopped", "terminating": "stopped",
}


def status_state(text: str | None) -> str:
    """A pod or container status cell -> "ok" | "pending" | "failed" | "stopped" | "unknown".

    The cell is the JSON that pod/container status functions return, e.g.
    {"phase": "Running", "ready": true} or {"state": "Waiting", "reason": "CrashLoopBackOff"};
    a plain word ("Running") works too. A reason names the problem more precisely than the phase,
    and a running pod that is not ready is still coming up.
    """
    if not text:
        return "unknown"
    doc: Any
    try:
        doc = json.loads(text)
    except (TypeError, ValueError):
        doc = text
    if isinstance(doc, str):
        return _STATE_WORDS.get(doc.replace(" ", "").lower(), "unknown")
    if not isinstance(doc, dict):
        return "unknown"
    reason = str(doc.get("reason") or "").replace(" ", "").lower()
    if reason in _STATE_WORDS and _STATE_WORDS[reason] == "failed":
        return "failed"
    phase = str(doc.get("phase") or doc.get("state") or doc.get("status") or "").replace(" ", "").lower()
    phase = phase.removeprefix("container_state_").removeprefix("state_")
    state = _STATE_WORDS.get(phase, "unknown")
    if state == "ok" and doc.get("ready") is False:
        return "pending"
    return state


STATUS_STYLES = {"ok": "green", "pending": "yellow", "failed": "bold red", "stopped": "dim", "unknown": "dim"}
