"""Aggregates (UDAs).  Each takes the values and a row -> group-id mapping and returns one value per
group, so grouping is done once per Agg node and every aggregate reuses it.

Standard aggregates run as pyarrow hash aggregates keyed by the group id.  Every built-in aggregate
also has a split form (:data:`SPLITS`): partial states a PEM computes over its own rows, a merge of
those states that Kelvin runs, and a finalisation.  The merge is exact for count, sum, min, max, mean
(sum + count) and any.  Quantiles use a log-bucketed histogram (:mod:`cluster.pxl.funcs.quantile_sketch`)
whose buckets merge exactly, so a quantile computed from merged PEM partials equals the one computed on
one node; each estimate is within :data:`QUANTILE_RELATIVE_ERROR` of the exact value.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.compute as pc

from cluster.pxl.funcs import quantile_sketch, semantics
from cluster.pxl.funcs.registry import AggregateFunc, Grouping, Registry, Signature
from cluster.pxl.types import ARROW_TYPES, BOOLEAN, FLOAT64, INT64, STRING, TIME64NS, UINT128, zero_value

B, N, F, S, T, U = BOOLEAN, INT64, FLOAT64, STRING, TIME64NS, UINT128
QUANTILE_KEYS = (
    ("p01", 0.01),
    ("p10", 0.10),
    ("p25", 0.25),
    ("p50", 0.50),
    ("p75", 0.75),
    ("p90", 0.90),
    ("p99", 0.99),
)


def _hash_aggregate(
    values: pa.Array,
    g: Grouping,
    fn: str,
    options: pc.FunctionOptions | None = None,
    out_type: pa.DataType | None = None,
) -> pa.Array:
    """One pyarrow hash aggregate keyed by group id, returned in group-id order and zero-filled."""
    out_type = out_type or values.type
    if g.n_groups == 0:
        return pa.array([], type=out_type)
    table = pa.table({"g": g.gid, "v": values})
    res = table.group_by("g", use_threads=False).aggregate([("v", fn, options)])
    out = res.column(f"v_{fn}").take(pc.sort_indices(res.column("g"))).combine_chunks()
    if out.type != out_type:
        out = out.cast(out_type)
    zero = pa.scalar(zero_value_for(out_type), type=out_type)
    if len(out) < g.n_groups:  # a whole-frame aggregate over no rows still yields one row
        out = pa.concat_arrays([out, pa.repeat(zero, g.n_groups - len(out))])
    if out.null_count:
        out = pc.fill_null(out, zero)
    return out


def zero_value_for(t: pa.DataType) -> object:
    for name, arrow in ARROW_TYPES.items():
        if arrow == t:
            return zero_value(name)
    return 0


def _numeric(values: pa.Array) -> pa.Array:
    return values.cast(pa.int64()) if pa.types.is_boolean(values.type) else values


def _count(values: pa.Array, g: Grouping, sig: Signature) -> pa.Array:
    return _hash_aggregate(values, g, "count", pc.CountOptions(mode="all"), pa.int64())


def _sum(values: pa.Array, g: Grouping, sig: Signature) -> pa.Array:
    return _hash_aggregate(_numeric(values), g, "sum", out_type=ARROW_TYPES[sig.ret])


def _mean(values: pa.Array, g: Grouping, sig: Signature) -> pa.Array:
    return _hash_aggregate(_numeric(values), g, "mean", out_type=pa.float64())


def _minmax(fn: str):
    def impl(values: pa.Array, g: Grouping, sig: Signature) -> pa.Array:
        return _hash_aggregate(values, g, fn, out_type=ARROW_TYPES[sig.ret])

    return impl


def _any(values: pa.Array, g: Grouping, sig: Signature) -> pa.Array:
    return _hash_aggregate(values, g, "first")


_QUANTILES_FORMAT = "{" + ",".join(f'"{k}":%r' for k, _ in QUANTILE_KEYS) + "}"


def quantiles_json(row: list[float]) -> str:
    """{"p01":...,"p99":...} as json.dumps writes it; finite floats are formatted directly (json.dumps
    writes a float as its repr), which is several times faster for the hundreds of rows of a result."""
    values = tuple(float(v) for v in row)
    if len(values) == len(QUANTILE_KEYS) and all(math.isfinite(v) for v in values):
        return _QUANTILES_FORMAT % values
    return json.dumps({k: v for (k, _), v in zip(QUANTILE_KEYS, values, strict=True)}, separators=(",", ":"))


def quantiles_json_column(values: list[pa.Array]) -> pa.Array:
    """quantiles_json of each row of one float64 array per QUANTILE_KEYS, as a STRING array."""
    columns = [v.to_pylist() for v in values]
    return pa.array([quantiles_json(row) for row in zip(*columns, strict=True)], pa.string())


def _quantiles(values: pa.Array, g: Grouping, sig: Signature) -> pa.Array:
    """Sketch-based, so a single node answers exactly what a merge of PEM partials answers."""
    table = pa.table({"g": g.gid, **quantile_sketch.bucket_columns(values)})
    hist = table.group_by(["g", "b"], use_threads=False).aggregate(quantile_sketch.PARTIAL_AGGS)
    rows = quantile_sketch.finalize(hist.column("g"), quantile_sketch.rename_partials(hist), g.n_groups)
    return pa.array([quantiles_json(r) for r in rows], type=pa.string())


def register(reg: Registry) -> None:
    reg.add(
        AggregateFunc("count", tuple(Signature((t,), N) for t in (B, N, F, S, T, U)), _count, doc="rows in the group")
    )
    reg.add(
        AggregateFunc(
            "sum",
            (Signature((N,), N), Signature((F,), F), Signature((B,), N)),
            _sum,
            semantics.sum_rule,
            doc="sum; of booleans = count of trues",
        )
    )
    reg.add(
        AggregateFunc(
            "mean",
            (Signature((N,), F), Signature((F,), F), Signature((B,), F)),
            _mean,
            semantics.keep_input,
            doc="arithmetic mean, FLOAT64",
        )
    )
    reg.add(
        AggregateFunc(
            "min",
            tuple(Signature((t,), t) for t in (N, F, T)),
            _minmax("min"),
            semantics.keep_input,
            doc="smallest value",
        )
    )
    reg.add(
        AggregateFunc(
            "max",
            tuple(Signature((t,), t) for t in (N, F, T)),
            _minmax("max"),
            semantics.keep_input,
            doc="largest value",
        )
    )
    reg.add(
        AggregateFunc(
            "any",
            tuple(Signature((t,), t) for t in (B, N, F, S, T, U)),
            _any,
            semantics.keep_input,
            doc="one value of the group (the first seen)",
        )
    )
    reg.add(
        AggregateFunc(
            "quantiles",
            (Signature((N,), S), Signature((F,), S)),
            _quantiles,
            semantics.quantiles_rule,
            doc='JSON {"p01",...,"p99"}',
        )
    )


# --------------------------------------------------------------------------------------------
# Split forms: partial state on each PEM, merge on Kelvin, finalise.
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class StatePart:
    """One state column: ``partial`` (a pyarrow hash aggregate) over the input, ``merge`` over states."""

    suffix: str
    partial: str
    merge: str
    #: the state's Arrow type given the aggregate's argument type (Pixie name)
    state_type: Callable[[str], pa.DataType]
    #: cast the input to this before aggregating (booleans summed as int64, mean summed in float64)
    cast: Callable[[str], pa.DataType | None] = lambda arg: None


def _arg_type(arg: str) -> pa.DataType:
    return ARROW_TYPES[arg]


def _sum_type(arg: str) -> pa.DataType:
    return pa.float64() if arg == F else pa.int64()


_COUNT = StatePart("count", "count", "sum", lambda arg: pa.int64())
SPLITS: dict[str, tuple[StatePart, ...]] = {
    "count": (_COUNT,),
    "sum": (StatePart("sum", "sum", "sum", _sum_type, _sum_type),),
    "mean": (StatePart("sum", "sum", "sum", lambda arg: pa.float64(), lambda arg: pa.float64()), _COUNT),
    "min": (StatePart("min", "min", "min", _arg_type),),
    "max": (StatePart("max", "max", "max", _arg_type),),
    "any": (StatePart("any", "first", "first", _arg_type),),
    # quantiles: the histogram columns of quantile_sketch (handled by the engine's split aggregate)
    "quantiles": (),
}


def state_name(out: str, suffix: str) -> str:
    """Column name of one state of the aggregate whose output column is ``out``."""
    return f"{out}:{suffix}"


def state_fields(func: str, out: str, arg: str) -> list[pa.Field]:
    """The Arrow fields a partial aggregate ships for ``func`` over an ``arg``-typed column."""
    if func == "quantiles":
        return [pa.field(state_name(out, name), t) for name, t in quantile_sketch.STATE_LISTS]
    return [pa.field(state_name(out, p.suffix), p.state_type(arg)) for p in SPLITS[func]]


def finalize_state(func: str, states: list[pa.Array], sig: Signature) -> pa.Array:
    """The aggregate's value per group from its merged states (one array per StatePart)."""
    out_type = ARROW_TYPES[sig.ret]
    if func == "mean":
        total, count = states
        value = pc.divide(total, pc.max_element_wise(count, 1).cast(pa.float64()))
        return pc.if_else(pc.equal(count, 0), 0.0, value)
    (state,) = states
    return state if state.type == out_type else state.cast(out_type)
