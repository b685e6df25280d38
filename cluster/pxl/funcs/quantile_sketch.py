"""A mergeable quantile sketch: a log-bucketed histogram computed as a plain group-by.

Why this and not a t-digest: pyarrow's t-digest state cannot be exported or merged, so it cannot be
a partial aggregate that PEMs ship to Kelvin.  Here each value falls in bucket
``k = ceil(ln|v| / ln(1 + RELATIVE_ERROR))`` (signed; zero has a bucket of its own), and a partial is one
row per (group, bucket) holding count, min and max.  Partials merge exactly (sum, min, max), so the
quantiles of merged partials equal those computed on one node.

Accuracy: an order statistic is estimated inside the bucket that holds it, between that bucket's
observed min and max, so it is within a factor ``1 + RELATIVE_ERROR`` of the exact value (1%); a
quantile between two order statistics of the same sign (linear interpolation, as the exact
computation does) keeps that bound.  Buckets holding one distinct value (or two, at their ends) are
exact, so small inputs give exact quantiles.
"""

from __future__ import annotations

import math

import pyarrow as pa
import pyarrow.compute as pc

#: relative error bound of every quantile this sketch reports
RELATIVE_ERROR = 0.01
_LN_GAMMA = math.log1p(RELATIVE_ERROR)
_MAX_K = 1 << 19  # |ln v| / ln(1.01) stays far below this for every finite float64
_OFFSET = 1 << 20  # positive buckets are k + OFFSET > 0 (zero: the lowest), negative ones -(k + OFFSET)
# typed scalars: a bare Python number makes pyarrow infer a type per call, which costs more than a pass
_INV_LN_GAMMA = pa.scalar(1.0 / _LN_GAMMA, pa.float64())
_NEG_MAX_K = pa.scalar(float(-_MAX_K), pa.float64())
_POS_MAX_K = pa.scalar(float(_MAX_K), pa.float64())
_OFFSET_SCALAR = pa.scalar(_OFFSET, pa.int64())

#: hash aggregates of a (group, bucket) partial over the value column "v"
PARTIAL_AGGS: list[tuple[str, str, pc.FunctionOptions | None]] = [
    ("v", "count", pc.CountOptions(mode="all")), ("v", "min", None), ("v", "max", None)]
#: the state a partial ships per group: one list entry per bucket
STATE_LISTS: tuple[tuple[str, pa.DataType], ...] = (
    ("qb", pa.list_(pa.int64())), ("qc", pa.list_(pa.int64())),
    ("qlo", pa.list_(pa.float64())), ("qhi", pa.list_(pa.float64())))

QUANTILES = (0.01, 0.10, 0.25, 0.50, 0.75, 0.90, 0.99)


def bucket_columns(values: pa.Array | pa.ChunkedArray) -> dict[str, pa.Array | pa.ChunkedArray]:
    """{"b": bucket key (int64, ordered like the values), "v": the values as float64}.

    Zero lands in the lowest positive bucket (ln 0 = -inf is clamped), which no other finite value
    reaches; the sign is applied only when the column has negative values (a few fewer passes)."""
    integers = pa.types.is_integer(values.type)
    v = values.cast(pa.float64()) if values.type != pa.float64() else values
    lowest = pc.min(v).as_py()
    negatives = lowest is not None and lowest < 0
    mag = pc.abs(v) if negatives else v
    k = pc.ceil(pc.multiply(pc.ln(mag), _INV_LN_GAMMA))
    # integers: ln is never NaN, and |k| < 4400 (only 0 -> -inf needs clamping), so skip those passes
    if not integers and pc.any(pc.is_nan(k)).as_py():
        k = pc.if_else(pc.is_nan(k), _NEG_MAX_K, k)
    k = pc.max_element_wise(k, _NEG_MAX_K)
    if not integers:
        k = pc.min_element_wise(k, _POS_MAX_K)
    key = pc.add(k.cast(pa.int64()), _OFFSET_SCALAR)
    if negatives:
        key = pc.if_else(pc.less(v, 0.0), pc.negate(key), key)
    return {"b": key, "v": v}


def rename_partials(hist: pa.Table) -> tuple[pa.Array, pa.Array, pa.Array, pa.Array]:
    """(bucket, count, min, max) columns of a group_by(..., "b").aggregate(PARTIAL_AGGS) result."""
    return (hist.column("b"), hist.column("v_count"), hist.column("v_min"), hist.column("v_max"))


def _flat(a: pa.Array | pa.ChunkedArray) -> pa.Array:
    return a.combine_chunks() if isinstance(a, pa.ChunkedArray) else a


def _arange(n: int) -> pa.Array:
    """0..n-1 as int64 without building n Python ints."""
    if n == 0:
        return pa.array([], pa.int64())
    return pc.subtract(pc.cumulative_sum(pa.repeat(pa.scalar(1, pa.int64()), n)), pa.scalar(1, pa.int64()))


_DIRECT_RANKS = 1 << 24  # up to this many ranks, map every rank to its row (8 bytes a rank)


def _rows_for_ranks(starts: pa.Array, counts: pa.Array, targets: pa.Array) -> pa.Array:
    """For each target rank, the index of the histogram row whose [start, start + count) holds it.

    ``starts`` ascends (the running sum of ``counts``).  Up to _DIRECT_RANKS ranks: a list array whose
    row i spans ranks [start_i, start_i + count_i) gives every rank's row as its parent index, and
    the targets are taken from that (no sort).  Beyond: sort rows and targets together (rows first on
    ties, by sorting 2 * position + kind) and carry the last row index forward onto each target."""
    n = len(starts)
    total = starts[n - 1].as_py() + counts[n - 1].as_py()
    if total <= _DIRECT_RANKS:
        offsets = pa.concat_arrays([starts.cast(pa.int64()), pa.array([total], pa.int64())])
        per_rank = pc.list_parent_indices(pa.LargeListArray.from_arrays(offsets, pa.nulls(total)))
        return per_rank.take(targets)
    keys = pa.concat_arrays([pc.multiply(starts, 2), pc.add(pc.multiply(targets, 2), 1)])
    payload = pa.concat_arrays([_arange(n), pa.nulls(len(targets), pa.int64())])
    order = pc.sort_indices(keys)
    filled = pc.fill_null_forward(payload.take(order))
    is_target = pc.greater_equal(order, n)
    target_ids = pc.subtract(order.filter(is_target), n)
    return filled.filter(is_target).take(pc.sort_indices(target_ids))


def finalize(gid: pa.Array | pa.ChunkedArray, parts: tuple, n_groups: int) -> list[list[float]]:
    """Per group 0..n_groups-1, the QUANTILES estimated from its histogram rows (zeros when empty)."""
    b, c, lo, hi = (_flat(p) for p in parts)
    out = [[0.0] * len(QUANTILES) for _ in range(n_groups)]
    if len(b) == 0:
        return out
    t = pa.table({"g": _flat(gid).cast(pa.int64()), "b": b, "c": c.cast(pa.int64()),
                  "lo": lo.cast(pa.float64()), "hi": hi.cast(pa.float64())})
    # one int64 sort key: group, then bucket (buckets span less than 2^23)
    lo_b = pc.min(t.column("b")).as_py()
    t = t.take(pc.sort_indices(pc.add(pc.multiply(t.column("g"), 1 << 23), pc.subtract(t.column("b"), lo_b))))
    return finalize_sorted(t.column("g"), t.column("c"), t.column("lo"), t.column("hi"), n_groups)


def finalize_sorted(gid: pa.Array | pa.ChunkedArray, c: pa.Array | pa.ChunkedArray,
                    lo: pa.Array | pa.ChunkedArray, hi: pa.Array | pa.ChunkedArray,
                    n_groups: int) -> list[list[float]]:
    """:func:`finalize` for histogram rows already ordered by (group, bucket), as the engine's fused
    aggregate produces them: it skips the sort over the whole histogram."""
    out = [[0.0] * len(QUANTILES) for _ in range(n_groups)]
    if len(c) == 0:
        return out
    t = pa.table({"g": _flat(gid).cast(pa.int64()), "c": _flat(c).cast(pa.int64()),
                  "lo": _flat(lo).cast(pa.float64()), "hi": _flat(hi).cast(pa.float64())})
    counts = t.column("c").combine_chunks()
    ends = pc.cumulative_sum(counts)
    starts = pc.subtract(ends, counts)
    per = t.group_by("g", use_threads=False).aggregate([("c", "sum"), ("c", "count")])
    per = per.take(pc.sort_indices(per.column("g")))
    n = per.column("c_sum").combine_chunks()
    # rows are ordered by group, so a group's first row follows the rows of all groups before it
    rows_per_group = per.column("c_count").combine_chunks()
    first_row = pc.subtract(pc.cumulative_sum(rows_per_group), rows_per_group)
    base = starts.take(first_row)
    last = pc.subtract(n, 1).cast(pa.float64())
    targets, fracs = [], []
    for q in QUANTILES:
        pos = pc.multiply(last, q)
        floor = pc.floor(pos)
        fracs.append(pc.subtract(pos, floor))
        targets.append(pc.add(base, floor.cast(pa.int64())))
        targets.append(pc.add(base, pc.ceil(pos).cast(pa.int64())))
    ranks = pa.concat_arrays(targets)
    rows = _rows_for_ranks(starts, counts, ranks)
    row_lo, row_hi = t.column("lo").combine_chunks().take(rows), t.column("hi").combine_chunks().take(rows)
    row_c = counts.take(rows)
    offset = pc.subtract(ranks, starts.take(rows)).cast(pa.float64())
    span = pc.max_element_wise(pc.subtract(row_c, 1), 1).cast(pa.float64())
    est = pc.add(row_lo, pc.multiply(pc.subtract(row_hi, row_lo), pc.divide(offset, span)))
    est = pc.if_else(pc.equal(row_c, 1), row_lo, est).to_pylist()
    groups = per.column("g").to_pylist()
    size = len(groups)
    for qi in range(len(QUANTILES)):
        frac = fracs[qi].to_pylist()
        lo_v = est[(2 * qi) * size:(2 * qi + 1) * size]
        hi_v = est[(2 * qi + 1) * size:(2 * qi + 2) * size]
        for j, g in enumerate(groups):
            out[g][qi] = lo_v[j] + (hi_v[j] - lo_v[j]) * frac[j]
    return out
