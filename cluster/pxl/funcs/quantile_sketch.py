"""A mergeable quantile sketch: a log-bucketed histogram computed as a plain group-by.

Why this and not a t-digest: pyarrow's t-digest state cannot be exported or merged, so it cannot be
a partial aggregate that PEMs ship to Kelvin.  Here each value falls in a bucket of relative width at
most ``RELATIVE_ERROR`` (signed; zero has a bucket of its own), and a partial is one row per (group,
bucket) holding count, min and max.  Partials merge exactly (sum, min, max), so the quantiles of
merged partials equal those computed on one node.

Buckets come from the bits of the float64 value, without a logarithm: its exponent picks the octave,
its top 10 mantissa bits one of 1024 equal steps of the octave, and a fixed table groups consecutive
steps into buckets as wide as the error allows (about 72 per octave, close to the log2(2) /
log2(1.01) = 70 of exact logarithmic buckets).  A few integer passes replace ln, ceil and clamps.

Accuracy: an order statistic is estimated inside the bucket that holds it, between that bucket's
observed min and max, so it is within a factor ``1 + RELATIVE_ERROR`` of the exact value (1%); a
quantile between two order statistics of the same sign (linear interpolation, as the exact
computation does) keeps that bound.  Buckets holding one distinct value (or two, at their ends) are
exact, so small inputs give exact quantiles.  (Subnormal floats, below 2.2e-308, share zero's
bucket and are outside the bound.)
"""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc

#: relative error bound of every quantile this sketch reports
RELATIVE_ERROR = 0.01
_STEP_BITS = 10  # mantissa bits that split an octave into equal steps
_STEP_SHIFT = pa.scalar(52 - _STEP_BITS, pa.int64())  # float64: 52 mantissa bits below the exponent
_STEP_MASK = pa.scalar((1 << _STEP_BITS) - 1, pa.int64())
_OCTAVE_SHIFT = pa.scalar(_STEP_BITS, pa.int64())
_ONE = pa.scalar(1, pa.int64())
_ZERO = pa.scalar(0, pa.int64())


def _octave_buckets() -> tuple[pa.Array, int]:
    """(bucket within the octave of each mantissa step, buckets per octave).

    A bucket spans steps [first, last]: values in [1 + first / 1024, 1 + (last + 1) / 1024) times a
    power of two, so two values in it differ by less than a factor (1024 + last + 1) / (1024 + first),
    which is kept at or under 1 + RELATIVE_ERROR."""
    steps = 1 << _STEP_BITS
    table, bucket, first = [], 0, 0
    for step in range(steps):
        if steps + step + 1 > (1 + RELATIVE_ERROR) * (steps + first):
            bucket, first = bucket + 1, step
        table.append(bucket)
    return pa.array(table, pa.int64()), bucket + 1


_STEP_BUCKET, _PER_OCTAVE = _octave_buckets()
_PER_OCTAVE_SCALAR = pa.scalar(_PER_OCTAVE, pa.int64())

#: hash aggregates of a (group, bucket) partial over the value column "v"
PARTIAL_AGGS: list[tuple[str, str, pc.FunctionOptions | None]] = [
    ("v", "count", pc.CountOptions(mode="all")),
    ("v", "min", None),
    ("v", "max", None),
]
#: the state a partial ships per group: one list entry per bucket
STATE_LISTS: tuple[tuple[str, pa.DataType], ...] = (
    ("qb", pa.list_(pa.int64())),
    ("qc", pa.list_(pa.int64())),
    ("qlo", pa.list_(pa.float64())),
    ("qhi", pa.list_(pa.float64())),
)

QUANTILES = (0.01, 0.10, 0.25, 0.50, 0.75, 0.90, 0.99)


def _bits(v: pa.Array) -> pa.Array:
    """The float64 values' bit patterns as int64 (a view of the same buffer, no copy)."""
    return pa.Array.from_buffers(pa.int64(), len(v), [v.buffers()[0], v.buffers()[1]], v.null_count, v.offset)


def _positive_keys(mag: pa.Array | pa.ChunkedArray) -> pa.Array:
    """Bucket keys of non-negative float64 values: octave * buckets per octave + bucket in it."""
    if isinstance(mag, pa.ChunkedArray):  # one copy, then a few kernel calls instead of a few per chunk
        mag = mag.combine_chunks()
    steps = pc.shift_right(_bits(mag), _STEP_SHIFT)  # exponent and top mantissa bits (sign is 0)
    octave = pc.shift_right(steps, _OCTAVE_SHIFT)
    within = _STEP_BUCKET.take(pc.bit_wise_and(steps, _STEP_MASK))
    return pc.add(pc.multiply(octave, _PER_OCTAVE_SCALAR), within)


def bucket_columns(values: pa.Array | pa.ChunkedArray) -> dict[str, pa.Array | pa.ChunkedArray]:
    """{"b": bucket key (int64, ordered like the values), "v": the values as float64}.

    Zero (and -0.0) has the lowest non-negative bucket; a negative value has the key of its magnitude
    negated, minus one.  The sign passes run only when the column has values <= 0."""
    v = values.cast(pa.float64()) if values.type != pa.float64() else values
    lowest = pc.min(values).as_py()
    if lowest is None or lowest > 0:
        return {"b": _positive_keys(v), "v": v}
    key = _positive_keys(pc.abs(v))
    if lowest < 0:
        key = pc.if_else(pc.less(v, 0.0), pc.subtract(pc.negate(key), _ONE), key)
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
    if len(b) == 0:
        return [[0.0] * len(QUANTILES) for _ in range(n_groups)]
    t = pa.table(
        {
            "g": _flat(gid).cast(pa.int64()),
            "b": b,
            "c": c.cast(pa.int64()),
            "lo": lo.cast(pa.float64()),
            "hi": hi.cast(pa.float64()),
        }
    )
    # one int64 sort key: group, then bucket (buckets span less than 2^23)
    lo_b = pc.min(t.column("b")).as_py()
    t = t.take(pc.sort_indices(pc.add(pc.multiply(t.column("g"), 1 << 23), pc.subtract(t.column("b"), lo_b))))
    return finalize_sorted(t.column("g"), t.column("c"), t.column("lo"), t.column("hi"), n_groups)


def finalize_sorted(
    gid: pa.Array | pa.ChunkedArray,
    c: pa.Array | pa.ChunkedArray,
    lo: pa.Array | pa.ChunkedArray,
    hi: pa.Array | pa.ChunkedArray,
    n_groups: int,
) -> list[list[float]]:
    """:func:`finalize` for histogram rows already ordered by (group, bucket): it skips the sort."""
    out = [[0.0] * len(QUANTILES) for _ in range(n_groups)]
    groups, values = quantiles_sorted(gid, c, lo, hi)
    columns = [v.to_pylist() for v in values]
    for j, g in enumerate(groups.to_pylist()):
        out[g] = [col[j] for col in columns]
    return out


def quantiles_sorted(
    gid: pa.Array | pa.ChunkedArray,
    c: pa.Array | pa.ChunkedArray,
    lo: pa.Array | pa.ChunkedArray,
    hi: pa.Array | pa.ChunkedArray,
) -> tuple[pa.Array, list[pa.Array]]:
    """(ids of the groups holding rows, one float64 array per QUANTILES with their estimates), from
    histogram rows ordered by (group, bucket).  Rows may have a count of 0 (and null min / max),
    as in a dense grid of cells; groups whose rows all count 0 are left out.

    Vectorised: each group's ranks come from the running sum of counts (a group's rows are
    consecutive, so run-end encoding the group ids finds its first and last row)."""
    counts = _flat(c).cast(pa.int64())
    if len(counts) == 0:
        return pa.array([], pa.int64()), [pa.array([], pa.float64()) for _ in QUANTILES]
    ree = pc.run_end_encode(_flat(gid).cast(pa.int64()), run_end_type=pa.int64())
    groups, run_ends = ree.values, ree.run_ends
    ends = pc.cumulative_sum(counts)
    starts = pc.subtract(ends, counts)
    first_row = pa.concat_arrays([pa.array([0], pa.int64()), run_ends.slice(0, len(run_ends) - 1)])
    base = starts.take(first_row)
    n = pc.subtract(ends.take(pc.subtract(run_ends, _ONE)), base)
    present = pc.greater(n, _ZERO)
    if not pc.all(present).as_py():
        groups, base, n = groups.filter(present), base.filter(present), n.filter(present)
    if len(groups) == 0:
        return groups, [pa.array([], pa.float64()) for _ in QUANTILES]
    size = len(groups)
    # every quantile of every group at once: arrays of len(QUANTILES) * size, quantile-major
    last = pa.concat_arrays([pc.subtract(n, _ONE).cast(pa.float64())] * len(QUANTILES))
    base = pa.concat_arrays([base] * len(QUANTILES))
    pos = pc.multiply(last, pa.array([q for q in QUANTILES for _ in range(size)], pa.float64()))
    floor = pc.floor(pos)
    frac = pc.subtract(pos, floor)
    # the order statistics each quantile falls between: ranks [floors..., ceilings...]
    ranks = pa.concat_arrays(
        [pc.add(base, pc.cast(floor, pa.int64())), pc.add(base, pc.cast(pc.ceil(pos), pa.int64()))]
    )
    rows = _rows_for_ranks(starts, counts, ranks)
    # min / max of the rows that matter only (integer states are cast after the take: same values)
    row_lo, row_hi = (x.take(rows).cast(pa.float64()) for x in (lo, hi))
    if isinstance(row_lo, pa.ChunkedArray):
        row_lo, row_hi = row_lo.combine_chunks(), row_hi.combine_chunks()
    row_c = counts.take(rows)
    offset = pc.subtract(ranks, starts.take(rows)).cast(pa.float64())
    span = pc.max_element_wise(pc.subtract(row_c, _ONE), _ONE).cast(pa.float64())
    est = pc.add(row_lo, pc.multiply(pc.subtract(row_hi, row_lo), pc.divide(offset, span)))
    est = pc.if_else(pc.equal(row_c, _ONE), row_lo, est)
    half = len(QUANTILES) * size
    est_lo, est_hi = est.slice(0, half), est.slice(half)
    value = pc.add(est_lo, pc.multiply(pc.subtract(est_hi, est_lo), frac))
    values = [value.slice(qi * size, size) for qi in range(len(QUANTILES))]
    return groups, values
