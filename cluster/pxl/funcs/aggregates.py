"""Aggregates (UDAs).  Each takes the values and a row -> group-id mapping and returns one value per
group, so grouping is done once per Agg node and every aggregate reuses it.

Standard aggregates run as pyarrow hash aggregates keyed by the group id; quantiles are exact
(sort within groups, linear interpolation), which also merges exactly across partial results.
"""

from __future__ import annotations

import json

import pyarrow as pa
import pyarrow.compute as pc

from cluster.pxl.funcs import semantics
from cluster.pxl.funcs.registry import AggregateFunc, Grouping, Registry, Signature
from cluster.pxl.types import ARROW_TYPES, BOOLEAN, FLOAT64, INT64, STRING, TIME64NS, UINT128, zero_value

B, N, F, S, T, U = BOOLEAN, INT64, FLOAT64, STRING, TIME64NS, UINT128
QUANTILE_KEYS = (("p01", 0.01), ("p10", 0.10), ("p25", 0.25), ("p50", 0.50), ("p75", 0.75),
                 ("p90", 0.90), ("p99", 0.99))


def _hash_aggregate(values: pa.Array, g: Grouping, fn: str, options: pc.FunctionOptions | None = None,
                    out_type: pa.DataType | None = None) -> pa.Array:
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


def exact_quantiles(values: pa.Array, g: Grouping) -> list[list[float]]:
    """Per group, the QUANTILE_KEYS quantiles with linear interpolation between order statistics."""
    if g.n_groups == 0:
        return []
    counts = _hash_aggregate(values, g, "count", pc.CountOptions(mode="all"), pa.int64())
    table = pa.table({"g": g.gid, "v": values.cast(pa.float64())})
    order = pc.sort_indices(table, sort_keys=[("g", "ascending"), ("v", "ascending")])
    sorted_vals = table.column("v").take(order).combine_chunks()
    starts = pc.subtract(pc.cumulative_sum(counts), counts)
    has = pc.greater(counts, 0)
    last = pc.max_element_wise(pc.subtract(counts, 1), 0)
    cols = []
    for _, q in QUANTILE_KEYS:
        pos = pc.multiply(last.cast(pa.float64()), q)
        lo = pc.floor(pos)
        frac = pc.subtract(pos, lo)
        lo_i = pc.if_else(has, pc.add(starts, lo.cast(pa.int64())), 0)
        hi_i = pc.if_else(has, pc.add(starts, pc.ceil(pos).cast(pa.int64())), 0)
        if len(sorted_vals) == 0:
            cols.append([0.0] * g.n_groups)
            continue
        lo_v, hi_v = sorted_vals.take(lo_i), sorted_vals.take(hi_i)
        val = pc.add(lo_v, pc.multiply(pc.subtract(hi_v, lo_v), frac))
        cols.append(pc.if_else(has, val, 0.0).to_pylist())
    return [list(row) for row in zip(*cols, strict=True)]


def quantiles_json(row: list[float]) -> str:
    return json.dumps({k: float(v) for (k, _), v in zip(QUANTILE_KEYS, row, strict=True)},
                      separators=(",", ":"))


def _quantiles(values: pa.Array, g: Grouping, sig: Signature) -> pa.Array:
    return pa.array([quantiles_json(r) for r in exact_quantiles(values, g)], type=pa.string())


def register(reg: Registry) -> None:
    reg.add(AggregateFunc("count", tuple(Signature((t,), N) for t in (B, N, F, S, T, U)), _count,
                          doc="rows in the group"))
    reg.add(AggregateFunc("sum", (Signature((N,), N), Signature((F,), F), Signature((B,), N)), _sum,
                          semantics.sum_rule, doc="sum; of booleans = count of trues"))
    reg.add(AggregateFunc("mean", (Signature((N,), F), Signature((F,), F), Signature((B,), F)), _mean,
                          semantics.keep_input, doc="arithmetic mean, FLOAT64"))
    reg.add(AggregateFunc("min", tuple(Signature((t,), t) for t in (N, F, T)), _minmax("min"),
                          semantics.keep_input, doc="smallest value"))
    reg.add(AggregateFunc("max", tuple(Signature((t,), t) for t in (N, F, T)), _minmax("max"),
                          semantics.keep_input, doc="largest value"))
    reg.add(AggregateFunc("any", tuple(Signature((t,), t) for t in (B, N, F, S, T, U)), _any,
                          semantics.keep_input, doc="one value of the group (the first seen)"))
    reg.add(AggregateFunc("quantiles", (Signature((N,), S), Signature((F,), S)), _quantiles,
                          semantics.quantiles_rule, doc='JSON {"p01",...,"p99"}'))
