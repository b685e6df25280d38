"""Single-node fast path of an aggregate with one quantiles column (the service-stats shape).

Why: ``finalize(partial(rows))`` groups the rows twice (plain states by key, histogram by key and
bucket) and ships the histogram as lists that finalize() flattens again.  Here every plain state is
computed per (key, bucket) in the histogram's group-by and re-aggregated per key with its merge
function (the one Kelvin uses), the keys are decoded from their packed id instead of being grouped
on, and the histogram is sorted once by (key, bucket) for the quantiles.  Big inputs use both cores
(pyarrow uses one per kernel call): the rows are encoded in two halves, then each thread builds the
histogram of half of the keys (even or odd key ids), so the two results need no merge.  The
histogram is the one partial() builds, so the quantiles equal the distributed answer; the plain
states merge exactly as Kelvin merges them.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TypeVar

import pyarrow as pa
import pyarrow.compute as pc

from cluster.pxl import ir
from cluster.pxl.exec.aggregate import _BUCKET_BITS, splittable
from cluster.pxl.exec.threads import POOL
from cluster.pxl.funcs import Signature
from cluster.pxl.funcs import quantile_sketch as qs
from cluster.pxl.funcs.aggregates import SPLITS, finalize_state, quantiles_json, state_name
from cluster.pxl.types import ARROW_TYPES

Column = pa.Array | pa.ChunkedArray
T = TypeVar("T")
R = TypeVar("R")

_SPLIT_MIN_ROWS = 200_000  # below this one pass is cheaper than two threads plus a merge
_BITS = pa.scalar(_BUCKET_BITS, pa.int64())
_COUNT_ALL = pc.CountOptions(mode="all")
_ONE = pa.scalar(1, pa.int64())


def _map(fn: Callable[[T], R], items: list[T]) -> list[R]:
    if POOL is None or len(items) < 2:
        return [fn(x) for x in items]
    return list(POOL.map(fn, items))


def _grouped(table: pa.Table, key: str, aggs: list[tuple]) -> pa.Table:
    return table.group_by(key, use_threads=False).aggregate(aggs)


def _plain_columns(table: pa.Table, aggs: Sequence[ir.AggSpec]
                   ) -> tuple[list[tuple[str, pa.DataType | None, str, str]], dict[str, str]]:
    """Per plain state to aggregate: (input column name, cast type, partial fn, merge fn), and
    state name -> its column in the per-key result.

    Counts of rows are the histogram's own row count (``__v_count``), so they add no aggregator;
    booleans are summed as they are (the count of trues, exact) and cast to the state type later."""
    specs: list[tuple[str, pa.DataType | None, str, str]] = []
    names: dict[str, str] = {}
    for a in aggs:
        if a.func == "quantiles":
            continue
        for part in SPLITS[a.func]:
            if part.partial == "count":
                names[state_name(a.out, part.suffix)] = "__v_count_sum"
                continue
            cast = part.cast(a.arg_type)
            if part.partial == "sum" and pa.types.is_boolean(table.schema.field(a.column).type):
                cast = None
            i = len(specs)
            specs.append((a.column, cast, part.partial, part.merge))
            names[state_name(a.out, part.suffix)] = f"__a{i}_{part.partial}_{part.merge}"
    return specs, names


def _encode(col: Column) -> pa.ChunkedArray:
    enc = pc.dictionary_encode(col)
    return enc if isinstance(enc, pa.ChunkedArray) else pa.chunked_array([enc])


def _unified(parts: list[pa.ChunkedArray]) -> tuple[pa.Array, list[pa.ChunkedArray]]:
    """One dictionary for the parts' encodings of a key, and each part's int64 codes into it."""
    chunks = [c for p in parts for c in p.chunks]
    if not chunks:
        return pa.array([]), [pa.chunked_array([], pa.int64()) for _ in parts]
    unified = pa.chunked_array(chunks).unify_dictionaries()
    out, at = [], 0
    for p in parts:
        mine = unified.chunks[at:at + p.num_chunks]
        at += p.num_chunks
        out.append(pa.chunked_array([c.indices for c in mine], pa.int32()).cast(pa.int64()))
    return unified.chunk(0).dictionary, out


def aggregate_fused(table: pa.Table, groups: Sequence[str], aggs: Sequence[ir.AggSpec],
                    relation: ir.Relation) -> list[pa.Array] | None:
    """The aggregate's output columns (as aggregate.finalize gives them), or None when this path
    does not apply: not exactly one quantiles column, no rows, or too many keys to pack."""
    quantile_aggs = [a for a in aggs if a.func == "quantiles"]
    if len(quantile_aggs) != 1 or table.num_rows == 0 or not splittable(aggs) or not groups:
        return None
    n = table.num_rows
    parts = [table] if n < _SPLIT_MIN_ROWS or POOL is None else [table.slice(0, n // 2), table.slice(n // 2)]
    qcol = quantile_aggs[0].column

    def prepare(t: pa.Table) -> tuple[list[pa.ChunkedArray], dict[str, Column]]:
        return [_encode(t.column(g)) for g in groups], qs.bucket_columns(t.column(qcol))

    prepared = _map(prepare, parts)
    dicts: list[tuple[pa.Array, int]] = []
    codes_per_part: list[list[pa.ChunkedArray]] = [[] for _ in parts]
    card = 1
    for k in range(len(groups)):
        dictionary, codes = _unified([p[0][k] for p in prepared])
        size = max(len(dictionary), 1)
        card *= size
        if card >= 1 << (62 - _BUCKET_BITS):
            return None
        dicts.append((dictionary, size))
        for i, c in enumerate(codes):
            codes_per_part[i].append(c)
    lows = [pc.min(p[1]["b"]).as_py() for p in prepared]
    lowest = pa.scalar(min(x for x in lows if x is not None), pa.int64())
    specs, state_cols = _plain_columns(table, aggs)
    hist_aggs: list[tuple] = [("__v", "count", _COUNT_ALL), ("__v", "min"), ("__v", "max")]
    for i, (_, _, fn, _) in enumerate(specs):
        hist_aggs.append((f"__a{i}", fn, None))

    def columns(i: int) -> tuple[pa.Table, Column]:
        """Part i's histogram input (packed (key, bucket) id, values, plain inputs) and which of
        its rows have an odd key id."""
        t, codes, bc = parts[i], codes_per_part[i], prepared[i][1]
        gid = codes[0]
        for c, (_, size) in zip(codes[1:], dicts[1:], strict=True):
            gid = pc.add(pc.multiply(gid, pa.scalar(size, pa.int64())), c)
        cols: dict[str, Column] = {"__p": pc.add(pc.shift_left(gid, _BITS), pc.subtract(bc["b"], lowest)),
                                   "__v": bc["v"]}
        for j, (name, cast, _, _) in enumerate(specs):
            col = t.column(name)
            cols[f"__a{j}"] = col.cast(cast) if cast is not None and col.type != cast else col
        odd = pc.equal(pc.bit_wise_and(gid, _ONE), _ONE) if len(parts) > 1 else None
        return pa.table(cols), odd

    inputs = _map(columns, list(range(len(parts))))
    if len(parts) == 1:
        hist = _sorted_histogram(inputs[0][0], hist_aggs)
    else:
        # each thread takes the keys of one parity from every part: no key is in both results, so
        # they are concatenated rather than merged
        def histogram(odd_keys: bool) -> pa.Table:
            mine = [t.filter(odd if odd_keys else pc.invert(odd)) for t, odd in inputs]
            return _sorted_histogram(pa.concat_tables(mine), hist_aggs)

        hist = pa.concat_tables(_map(histogram, [False, True]))
    return _finish(hist, specs, state_cols, dicts, aggs, groups, relation)


def _sorted_histogram(cols: pa.Table, hist_aggs: list[tuple]) -> pa.Table:
    """(key, bucket) histogram of ``cols``, its rows ordered by key then bucket."""
    hist = _grouped(cols, "__p", hist_aggs)
    return hist.take(_key_bucket_order(hist.column("__p").combine_chunks()))


def _finish(hist: pa.Table, specs: list, state_cols: dict[str, str], dicts: list[tuple[pa.Array, int]],
            aggs: Sequence[ir.AggSpec], groups: Sequence[str], relation: ir.Relation) -> list[pa.Array]:
    """Per-key plain states and quantiles from the (key, bucket) histogram, whose rows come grouped
    by key (each key's buckets in ascending order; the keys in any order)."""
    key_merges = [("__v_count", "sum")] + [(f"__a{i}_{fn}", merge_fn)
                                           for i, (_, _, fn, merge_fn) in enumerate(specs)]
    # plain states are re-aggregated per key in any order; only the histogram needs sorting
    per_key = pa.table({"__g": pc.shift_right(hist.column("__p"), _BITS),
                        **{n: hist.column(n) for n, _ in key_merges}})
    per_key = _grouped(per_key, "__g", key_merges)
    hist_gid = pc.shift_right(hist.column("__p").combine_chunks(), _BITS)
    # output rows in the histogram's key order, so each key's rows are the next ones in it
    out_gid = pc.unique(hist_gid)
    per_key = per_key.take(pc.index_in(out_gid, value_set=per_key.column("__g").combine_chunks()))
    out: list[pa.Array] = _decode_keys(out_gid, dicts)
    for a, col in zip(aggs, relation[len(groups):], strict=True):
        if a.func == "quantiles":
            dense = pc.index_in(hist_gid, value_set=out_gid)  # output row of each histogram row
            rows = qs.finalize_sorted(dense, hist.column("__v_count"), hist.column("__v_min"),
                                      hist.column("__v_max"), len(out_gid))
            out.append(pa.array([quantiles_json(r) for r in rows], pa.string()))
            continue
        states = []
        for p in SPLITS[a.func]:
            s = per_key.column(state_cols[state_name(a.out, p.suffix)]).combine_chunks()
            want = p.state_type(a.arg_type)
            states.append(s if s.type == want else s.cast(want))
        value = finalize_state(a.func, states, Signature((a.arg_type,), col.dtype))
        out.append(value if value.type == ARROW_TYPES[col.dtype] else value.cast(ARROW_TYPES[col.dtype]))
    return out


def _key_bucket_order(p: pa.Array) -> pa.Array:
    """Indices that order histogram rows by (key, bucket).

    Where (key id, bucket) cells are dense (at most 4 per row: few keys, as in a service x time-bin
    histogram), each cell in ascending order looks up its row (a hash probe, about twice as fast
    as sorting); otherwise a sort."""
    if len(p) == 0:
        return pc.sort_indices(p)
    g = pc.shift_right(p, _BITS)
    b = pc.bit_wise_and(p, pa.scalar((1 << _BUCKET_BITS) - 1, pa.int64()))
    width = pc.max(b).as_py() + 1
    n_cells = (pc.max(g).as_py() + 1) * width
    if n_cells > 4 * len(p) + 1024:
        return pc.sort_indices(p)
    cells = pc.add(pc.multiply(g, pa.scalar(width, pa.int64())), b)
    return pc.drop_null(pc.index_in(qs._arange(n_cells), value_set=cells))


def _decode_keys(gid: pa.Array, dicts: list[tuple[pa.Array, int]]) -> list[pa.Array]:
    """Key values of packed ids (the inverse of folding codes as ``gid * size + code``)."""
    out: list[pa.Array] = []
    rest = gid
    for dictionary, size in reversed(dicts):
        s = pa.scalar(size, pa.int64())
        quotient = pc.divide(rest, s)
        out.append(dictionary.take(pc.subtract(rest, pc.multiply(quotient, s))))
        rest = quotient
    return out[::-1]
