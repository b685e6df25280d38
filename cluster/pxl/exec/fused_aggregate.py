"""Single-node fast path of an aggregate with one quantiles column (the service-stats shape).

Why: ``finalize(partial(rows))`` groups the rows twice (plain states by key, histogram by key and
bucket), ships the histogram as lists that finalize() flattens again, and sorts it.  Here:

- Keys: each key column is dictionary-encoded (a metadata look-up or a bin arrives encoded from its
  map, see operators._dictionary_plan) and the codes are folded into one key id per row, so no
  group-by hashes a string.  The key that changes least from row to row (the time bin, rows being in
  time order) is the most significant, so a slice of rows covers a narrow range of key ids.
- Histogram: one hash group-by on a cell id (key id, bucket) with the count, min and max of the
  values.  When the grid of cells (keys x bucket range) has at most about four cells per input row,
  the group-by is first fed every cell of the slice's key range in ascending order with a null
  value (which count and min_max skip): pyarrow numbers groups in order of first appearance, so its
  output is the dense grid already in (key, bucket) order (checked), and grids merge cell by cell
  with no sort.  A sparser grid is merged by a group-by and sorted.
- Plain states (count, sum, mean, min, max, any): a group-by on the key id alone (few groups).
- Big inputs use both cores (pyarrow uses one per kernel call): each thread takes half of the rows,
  the halves' states are merged with the merge functions Kelvin uses, and each thread then
  estimates the quantiles of half of the keys.

The histogram is the one partial() builds and the estimates are quantile_sketch's, so the quantiles
equal the distributed answer; the plain states merge exactly as Kelvin merges them.
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
from cluster.pxl.funcs.aggregates import SPLITS, finalize_state, quantiles_json_column, state_name
from cluster.pxl.types import ARROW_TYPES

Column = pa.Array | pa.ChunkedArray
T = TypeVar("T")
R = TypeVar("R")

_SPLIT_MIN_ROWS = 200_000  # below this one pass is cheaper than two threads plus a merge
_MIN_GRID = 1 << 16  # a grid of up to this many cells (plus 4 per input row) is dense
_COUNT_ALL = pc.CountOptions(mode="all")
#: count skips nulls, so the grid's priming rows (null values) count 0
_HIST_AGGS = [("__v", "count"), ("__v", "min_max")]

#: (input column, cast type, partial function, merge function) of one plain state
_Spec = tuple[str, pa.DataType | None, str, str]


def _map(fn: Callable[[T], R], items: list[T]) -> list[R]:
    if POOL is None or len(items) < 2:
        return [fn(x) for x in items]
    return list(POOL.map(fn, items))


def _plain_specs(table: pa.Table, aggs: Sequence[ir.AggSpec]) -> tuple[list[_Spec], dict[str, int]]:
    """The plain states to compute, and state name -> its index in that list.

    Booleans are summed as they are (the count of trues, exact) and cast to the state type later."""
    specs: list[_Spec] = []
    index: dict[str, int] = {}
    for a in aggs:
        if a.func == "quantiles":
            continue
        for part in SPLITS[a.func]:
            cast = part.cast(a.arg_type)
            if part.partial == "sum" and pa.types.is_boolean(table.schema.field(a.column).type):
                cast = None
            index[state_name(a.out, part.suffix)] = len(specs)
            specs.append((a.column, cast, part.partial, part.merge))
    return specs, index


def _encode(col: Column) -> pa.ChunkedArray:
    enc = pc.dictionary_encode(col)
    return enc if isinstance(enc, pa.ChunkedArray) else pa.chunked_array([enc])


def _unified(parts: list[pa.ChunkedArray]) -> tuple[pa.Array, list[pa.ChunkedArray]]:
    """One dictionary for the parts' encodings of a key, and each part's int32 codes into it (the
    arithmetic folding them into key ids widens them to int64)."""
    chunks = [c for p in parts for c in p.chunks]
    if not chunks:
        return pa.array([]), [pa.chunked_array([], pa.int32()) for _ in parts]
    unified = pa.chunked_array(chunks).unify_dictionaries()
    out, at = [], 0
    for p in parts:
        mine = unified.chunks[at : at + p.num_chunks]
        at += p.num_chunks
        out.append(pa.chunked_array([c.indices for c in mine], pa.int32()))
    return unified.chunk(0).dictionary, out


def aggregate_fused(
    table: pa.Table, groups: Sequence[str], aggs: Sequence[ir.AggSpec], relation: ir.Relation
) -> list[pa.Array] | None:
    """The aggregate's output columns (as aggregate.finalize gives them), or None when this path
    does not apply: not exactly one quantiles column, no rows, null values to take quantiles of (the
    split form counts them, the grid's count skips them), or too many keys to pack."""
    quantile_aggs = [a for a in aggs if a.func == "quantiles"]
    if len(quantile_aggs) != 1 or table.num_rows == 0 or not splittable(aggs) or not groups:
        return None
    if table.column(quantile_aggs[0].column).null_count:
        return None
    n = table.num_rows
    parts = [table] if n < _SPLIT_MIN_ROWS or POOL is None else [table.slice(0, n // 2), table.slice(n // 2)]
    qcol = quantile_aggs[0].column

    def prepare(t: pa.Table) -> tuple[list[pa.ChunkedArray], dict[str, Column], pa.StructScalar]:
        bc = qs.bucket_columns(t.column(qcol))
        return [_encode(t.column(g)) for g in groups], bc, pc.min_max(bc["b"])

    prepared = _map(prepare, parts)
    dicts: list[tuple[pa.Array, int]] = []
    codes_per_part: list[list[pa.ChunkedArray]] = [[] for _ in parts]
    card = 1
    for dictionary, codes in _map(lambda k: _unified([p[0][k] for p in prepared]), list(range(len(groups)))):
        size = max(len(dictionary), 1)
        card *= size
        if card >= 1 << (62 - _BUCKET_BITS):
            return None
        dicts.append((dictionary, size))
        for i, c in enumerate(codes):
            codes_per_part[i].append(c)
    # the key whose value changes least often from row to row (the time bin of time-ordered rows)
    # becomes the most significant part of the key id, so each half of the rows covers a narrow
    # range of cells and primes only those
    order = sorted(range(len(groups)), key=lambda k: _changes(codes_per_part[0][k]))
    spans = [p[2] for p in prepared if p[2]["min"].is_valid]
    lowest = min(s["min"].as_py() for s in spans)
    width = max(s["max"].as_py() for s in spans) - lowest + 1
    dense = card * width <= 4 * n + _MIN_GRID  # priming a grid costs less than sorting a sparse one
    # cell id of (key id, bucket): ascending ids are in (key, bucket) order
    stride = width if dense else 1 << _BUCKET_BITS
    specs, state_index = _plain_specs(table, aggs)
    plain_aggs = [(f"__a{i}", fn, _COUNT_ALL if fn == "count" else None) for i, (_, _, fn, _) in enumerate(specs)]

    def states(i: int) -> tuple[pa.Table, pa.Table]:
        """Part i's plain states per key id, and its histogram of cells."""
        t, codes, bc = parts[i], codes_per_part[i], prepared[i][1]
        gid = codes[order[0]].cast(pa.int64())
        for k in order[1:]:
            gid = pc.add(pc.multiply(gid, pa.scalar(dicts[k][1], pa.int64())), codes[k])
        cols: dict[str, Column] = {"__g": gid}
        for j, (name, cast, _, _) in enumerate(specs):
            col = t.column(name)
            cols[f"__a{j}"] = col.cast(cast) if cast is not None and col.type != cast else col
        plain = _named(
            pa.table(cols).group_by("__g", use_threads=False).aggregate(plain_aggs),
            {"__g": "__g", **{f"__a{j}_{fn}": f"__a{j}" for j, (_, _, fn, _) in enumerate(specs)}},
        )
        cell = pc.add(
            pc.multiply(gid, pa.scalar(stride, pa.int64())), pc.subtract(bc["b"], pa.scalar(lowest, pa.int64()))
        )
        # min / max of integers as they are (faster than of their float64 casts, and the same values)
        raw_values = t.column(qcol)
        values = raw_values if pa.types.is_integer(raw_values.type) else bc["v"]
        hist_in = pa.table({"__p": cell, "__v": values})
        cells = None
        if dense:  # every cell of this part's key ids, in ascending order, first
            lo_gid, hi_gid = (x.as_py() for x in pc.min_max(gid).values())
            cells = pc.add(qs._arange((hi_gid - lo_gid + 1) * width), pa.scalar(lo_gid * width, pa.int64()))
            hist_in = pa.concat_tables([pa.table({"__p": cells, "__v": pa.nulls(len(cells), values.type)}), hist_in])
        raw = hist_in.group_by("__p", use_threads=False).aggregate(_HIST_AGGS)
        minmax = raw.column("__v_min_max")
        hist = pa.table(
            {
                "__p": raw.column("__p"),
                "__c": raw.column("__v_count"),
                "__lo": pc.struct_field(minmax, "min"),
                "__hi": pc.struct_field(minmax, "max"),
            }
        )
        return plain, (_as_grid(hist, cells) if cells is not None else hist)

    results = _map(states, list(range(len(parts))))
    plain = _merge_plain([r[0] for r in results], specs)
    hist = _merge_grids([r[1] for r in results]) if dense else _merge_sparse([r[1] for r in results])
    row_key = pc.divide(hist.column("__p"), pa.scalar(stride, pa.int64())).combine_chunks()

    def estimate(rows: tuple[int, int]) -> tuple[pa.Array, pa.Array]:
        """Key ids and quantiles JSON of the histogram rows [start, end) (whole keys)."""
        start, end = rows
        ids, values = qs.quantiles_sorted(
            row_key.slice(start, end - start),
            *(hist.column(c).slice(start, end - start) for c in ("__c", "__lo", "__hi")),
        )
        return ids, quantiles_json_column(values)

    estimated = _map(estimate, _key_halves(row_key) if len(parts) > 1 else [(0, len(row_key))])
    key_ids = pa.concat_arrays([e[0] for e in estimated])
    quantiles_json = pa.concat_arrays([e[1] for e in estimated])
    if len(key_ids) != plain.num_rows:  # cannot happen without null values, which are excluded above
        raise ValueError(f"fused aggregate: {len(key_ids)} keys with quantiles, {plain.num_rows} with states")
    decoded = _decode_keys(key_ids, [dicts[k] for k in order])
    out: list[pa.Array] = [decoded[order.index(k)] for k in range(len(groups))]
    for a, col in zip(aggs, relation[len(groups) :], strict=True):
        if a.func == "quantiles":
            out.append(quantiles_json)
            continue
        states_of = []
        for p in SPLITS[a.func]:
            s = plain.column(f"__a{state_index[state_name(a.out, p.suffix)]}").combine_chunks()
            want = p.state_type(a.arg_type)
            states_of.append(s if s.type == want else s.cast(want))
        value = finalize_state(a.func, states_of, Signature((a.arg_type,), col.dtype))
        out.append(value if value.type == ARROW_TYPES[col.dtype] else value.cast(ARROW_TYPES[col.dtype]))
    return out


def _named(table: pa.Table, names: dict[str, str]) -> pa.Table:
    """``table``'s columns renamed by name (pyarrow's group-by output order is not part of its API)."""
    return pa.table({new: table.column(old) for old, new in names.items()})


def _key_halves(row_key: pa.Array) -> list[tuple[int, int]]:
    """Row ranges [start, end) of about half the histogram each, split where the key id changes
    (rows are ordered by key id)."""
    n = len(row_key)
    split = pc.index(row_key, row_key[n // 2]).as_py() if n else 0
    return [r for r in ((0, split), (split, n)) if r[1] > r[0]]


def _changes(codes: pa.ChunkedArray) -> int:
    """How often consecutive codes differ in the first chunk (a sample: one pass over <= 64k rows)."""
    if codes.num_chunks == 0 or len(codes.chunk(0)) < 2:
        return 0
    c = codes.chunk(0).slice(0, 1 << 16)
    return pc.sum(pc.not_equal(c.slice(1), c.slice(0, len(c) - 1))).as_py()


def _as_grid(hist: pa.Table, cells: pa.Array) -> pa.Table:
    """A primed histogram in cell order: as pyarrow returned it when its groups came out in order of
    first appearance (checked, one pass), else sorted."""
    if hist.num_rows != len(cells):
        raise ValueError(f"fused aggregate: {hist.num_rows} histogram rows for {len(cells)} cells")
    if pc.all(pc.equal(hist.column("__p"), cells)).as_py():
        return hist
    return hist.take(pc.sort_indices(hist.column("__p")))


def _merge_grids(grids: list[pa.Table]) -> pa.Table:
    """Dense grids, each over a range of consecutive cells, as one table in cell order: cells of
    one grid only are taken as they are, cells of both merged (counts add; min / max skip nulls)."""
    grids = sorted(grids, key=lambda g: g.column("__p")[0].as_py())
    merged = grids[0]
    for g in grids[1:]:
        merged = _merge_two(merged, g)
    return merged


def _merge_two(a: pa.Table, b: pa.Table) -> pa.Table:
    """Two dense grids, ``a`` starting at or before ``b``."""
    a0, b0 = a.column("__p")[0].as_py(), b.column("__p")[0].as_py()
    a1, b1 = a0 + a.num_rows, b0 + b.num_rows
    if b0 >= a1:
        return pa.concat_tables([a, b])
    end = min(a1, b1)
    x, y = a.slice(b0 - a0, end - b0), b.slice(0, end - b0)
    both = pa.Table.from_arrays(
        [
            x.column("__p"),
            pc.add(x.column("__c"), y.column("__c")),
            pc.min_element_wise(x.column("__lo"), y.column("__lo")),
            pc.max_element_wise(x.column("__hi"), y.column("__hi")),
        ],
        schema=a.schema,
    )
    tail = a.slice(end - a0) if a1 > end else b.slice(end - b0)
    return pa.concat_tables([a.slice(0, b0 - a0), both, tail])


def _merge_sparse(hists: list[pa.Table]) -> pa.Table:
    """Sparse histograms merged by cell, in (key, bucket) order."""
    if len(hists) == 1:
        hist = hists[0]
    else:
        hist = _named(
            pa.concat_tables(hists)
            .group_by("__p", use_threads=False)
            .aggregate([("__c", "sum"), ("__lo", "min"), ("__hi", "max")]),
            {"__p": "__p", "__c_sum": "__c", "__lo_min": "__lo", "__hi_max": "__hi"},
        )
    return hist.take(_key_bucket_order(hist.column("__p").combine_chunks()))


def _merge_plain(plains: list[pa.Table], specs: list[_Spec]) -> pa.Table:
    """The parts' plain states merged per key id (as Kelvin merges partials), by ascending key id."""
    if len(plains) == 1:
        merged = plains[0]
    else:
        merged = _named(
            pa.concat_tables(plains)
            .group_by("__g", use_threads=False)
            .aggregate([(f"__a{j}", merge_fn) for j, (_, _, _, merge_fn) in enumerate(specs)]),
            {"__g": "__g", **{f"__a{j}_{merge_fn}": f"__a{j}" for j, (_, _, _, merge_fn) in enumerate(specs)}},
        )
    return merged.take(pc.sort_indices(merged.column("__g")))


def _key_bucket_order(p: pa.Array) -> pa.Array:
    """Indices that order histogram rows by (key, bucket), their cells packed as key << _BUCKET_BITS
    | bucket.

    Where (key id, bucket) cells are dense (at most 4 per row: few keys, as in a service x time-bin
    histogram), each cell in ascending order looks up its row (a hash probe, about twice as fast
    as sorting); otherwise a sort."""
    if len(p) == 0:
        return pc.sort_indices(p)
    g = pc.shift_right(p, _BUCKET_BITS)
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
