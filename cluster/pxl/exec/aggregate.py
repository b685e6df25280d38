"""Group-by aggregation in split form: partial states, merge of states, finalisation.

One node runs ``finalize(partial(rows))``; a distributed query runs ``partial`` on each PEM and
``finalize(merge(concat(partials)))`` on Kelvin, with exactly the same code, so both give the same
answer.  Every pass is a single pyarrow hash group-by (no per-row Python).  All plain states come
from one group-by over the keys; each quantile's histogram is a second group-by, whose rows are
matched to the first by key value (pyarrow does not promise the same output order for both).
"""

from __future__ import annotations

from collections.abc import Sequence

import pyarrow as pa
import pyarrow.compute as pc

from cluster.pxl import ir
from cluster.pxl.funcs import REGISTRY, AggregateFunc, Signature
from cluster.pxl.funcs import quantile_sketch as qs
from cluster.pxl.funcs.aggregates import SPLITS, finalize_state, quantiles_json, state_fields, state_name
from cluster.pxl.types import ARROW_TYPES, zero_value

Column = pa.Array | pa.ChunkedArray
_ALL = "__all"  # constant key for a whole-frame aggregate, so it too is a group-by


def splittable(aggs: Sequence[ir.AggSpec]) -> bool:
    """True when every aggregate has partial/merge states (new UDAs without them run whole)."""
    return all(a.func in SPLITS for a in aggs)


def partial_schema(table_schema: pa.Schema, groups: Sequence[str], aggs: Sequence[ir.AggSpec]) -> pa.Schema:
    """Keys (as typed in the input), then every aggregate's state columns."""
    fields = [table_schema.field(g) for g in groups]
    for a in aggs:
        fields += state_fields(a.func, a.out, a.arg_type)
    return pa.schema(fields)


def _key_table(table: pa.Table, groups: Sequence[str]) -> tuple[dict[str, Column], list[str]]:
    if groups:
        names = [f"__k{i}" for i in range(len(groups))]
        return {n: table.column(g) for n, g in zip(names, groups, strict=True)}, names
    return {_ALL: pa.repeat(pa.scalar(0, pa.int8()), table.num_rows)}, [_ALL]


def _finish(keys: dict[str, Column], key_names: list[str], groups: Sequence[str],
            states: dict[str, Column], schema: pa.Schema) -> pa.Table:
    cols: list[Column] = [keys[k] for k in key_names] if groups else []
    for f in schema:
        if f.name in groups:
            continue
        col = states[f.name]
        cols.append(col if col.type == f.type else col.cast(f.type))
    return pa.Table.from_arrays(cols, schema=schema)


_BUCKET_BITS = 23  # bucket keys of quantile_sketch span less than 2^23


def _packed_group_ids(keys: dict[str, Column]) -> tuple[Column, list[tuple[pa.Array, int]]] | None:
    """One int64 per row identifying its key tuple (dictionary codes folded together) and each key's
    (dictionary, size); None when the key space is too large to pack next to a bucket.  Grouping on
    one int64 is about twice as fast as on (string, time, bucket) columns."""
    gid: Column | None = None
    card = 1
    dicts = []
    for col in keys.values():
        enc = pc.dictionary_encode(col)
        if isinstance(enc, pa.ChunkedArray):
            dictionary = enc.chunk(0).dictionary
            codes: Column = pa.chunked_array([c.indices for c in enc.chunks], pa.int32()).cast(pa.int64())
        else:
            dictionary, codes = enc.dictionary, enc.indices.cast(pa.int64())
        size = max(len(dictionary), 1)
        card *= size
        if card >= 1 << (62 - _BUCKET_BITS):
            return None
        dicts.append((dictionary, size))
        gid = codes if gid is None else pc.add(pc.multiply(gid, size), codes)
    assert gid is not None
    return gid, dicts


def _hist_lists(keyed: pa.Table, key_names: list[str], out_keys: dict[str, Column], merge: bool) -> list[Column]:
    """(keys, bucket) histogram of ``keyed`` ("__b", "__c", "__lo", "__hi" columns) -> the four bucket
    lists, one entry per row of ``out_keys`` (matched by key value, never by output order)."""
    fns = ("sum", "min", "max") if merge else ("count", "min", "max")
    aggs = [("__c", fns[0], pc.CountOptions(mode="all") if not merge else None), ("__lo", fns[1]),
            ("__hi", fns[2])]
    names = ["__b", f"__c_{fns[0]}", f"__lo_{fns[1]}", f"__hi_{fns[2]}"]
    n_out = len(next(iter(out_keys.values())))
    if keyed.num_rows == 0 or n_out == 0:
        return [pa.array([[]] * n_out, t) for _, t in qs.STATE_LISTS]
    packed = _packed_group_ids({k: keyed.column(k) for k in key_names})
    if packed is not None:
        gid, dicts = packed
        lowest = pc.min(keyed.column("__b")).as_py()
        p = pc.add(pc.multiply(gid, 1 << _BUCKET_BITS), pc.subtract(keyed.column("__b"), lowest))
        hist = pa.table({"__p": p, **{c: keyed.column(c) for c in ("__c", "__lo", "__hi")}}) \
            .group_by("__p", use_threads=False).aggregate(aggs)
        p = hist.column("__p")
        hist = pa.table({"__gid": pc.shift_right(p, _BUCKET_BITS),
                         "__b": pc.add(pc.bit_wise_and(p, (1 << _BUCKET_BITS) - 1), lowest),
                         **{n: hist.column(n) for n in names[1:]}})
        lists = hist.group_by("__gid", use_threads=False).aggregate([(n, "list") for n in names])
        out_gid: Column | None = None
        for k, (dictionary, size) in zip(key_names, dicts, strict=True):
            codes = pc.index_in(out_keys[k], value_set=dictionary).cast(pa.int64())
            out_gid = codes if out_gid is None else pc.add(pc.multiply(out_gid, size), codes)
        rows = pc.index_in(out_gid, value_set=lists.column("__gid").combine_chunks())
    else:
        hist = keyed.group_by([*key_names, "__b"], use_threads=False).aggregate(aggs)
        lists = hist.group_by(key_names, use_threads=False).aggregate([(n, "list") for n in names])
        lists = lists.append_column("__row", pa.array(range(lists.num_rows), pa.int64()))
        left = pa.table({**out_keys, "__i": pa.array(range(n_out), pa.int64())})
        joined = left.join(lists.select([*key_names, "__row"]), keys=key_names, join_type="left outer",
                           use_threads=False)
        rows = joined.sort_by("__i").column("__row")
    return [lists.column(f"{n}_list").take(rows) for n in names]


def _run_passes(keys: dict[str, Column], key_names: list[str], n_rows: int,
                plain: list[tuple[str, str, Column, str]],
                quantile_inputs: list[tuple[str, dict[str, Column], dict[str, Column], bool]],
                ) -> tuple[dict[str, Column], dict[str, Column]]:
    """One group-by for the plain states, one per quantile column; all aligned by first appearance."""
    states: dict[str, Column] = {}
    # The plain pass also yields the keys, in the order every other pass follows.
    cols = dict(keys)
    aggs = []
    for i, (_, fn, col, _) in enumerate(plain):
        cols[f"__a{i}"] = col
        aggs.append((f"__a{i}", fn, pc.CountOptions(mode="all") if fn == "count" else None))
    res = pa.table(cols).group_by(key_names, use_threads=False).aggregate(aggs)
    out_keys = {k: res.column(k) for k in key_names}
    for i, (name, fn, _, _) in enumerate(plain):
        states[name] = res.column(f"__a{i}_{fn}")
    for out, q_keys, cols, merge in quantile_inputs:
        lists = _hist_lists(pa.table({**q_keys, **cols}), key_names, out_keys, merge)
        for (suffix, _), col in zip(qs.STATE_LISTS, lists, strict=True):
            states[state_name(out, suffix)] = col
    return states, out_keys


def partial(table: pa.Table, groups: Sequence[str], aggs: Sequence[ir.AggSpec]) -> pa.Table:
    """Per group of ``table``: the keys and each aggregate's partial states."""
    schema = partial_schema(table.schema, groups, aggs)
    keys, key_names = _key_table(table, groups)
    plain, quantile_inputs = [], []
    for a in aggs:
        col = table.column(a.column)
        if a.func == "quantiles":
            bc = qs.bucket_columns(col)
            quantile_inputs.append((a.out, keys, {"__b": bc["b"], "__c": bc["v"], "__lo": bc["v"],
                                                  "__hi": bc["v"]}, False))
            continue
        for part in SPLITS[a.func]:
            cast = part.cast(a.arg_type)
            plain.append((state_name(a.out, part.suffix), part.partial,
                          col.cast(cast) if cast is not None and col.type != cast else col, a.out))
    states, out_keys = _run_passes(keys, key_names, table.num_rows, plain, quantile_inputs)
    return _finish(out_keys, key_names, groups, states, schema)


def merge(table: pa.Table, groups: Sequence[str], aggs: Sequence[ir.AggSpec]) -> pa.Table:
    """Partials of several agents (concatenated) -> one partial per group, merged exactly."""
    keys, key_names = _key_table(table, groups)
    plain, quantile_inputs = [], []
    for a in aggs:
        if a.func == "quantiles":
            parent = pc.list_parent_indices(table.column(state_name(a.out, "qb")).combine_chunks())
            exploded = {k: _flat_take(v, parent) for k, v in keys.items()}
            flat = {n: pc.list_flatten(table.column(state_name(a.out, s)).combine_chunks())
                    for n, s in (("__b", "qb"), ("__c", "qc"), ("__lo", "qlo"), ("__hi", "qhi"))}
            quantile_inputs.append((a.out, exploded, flat, True))
            continue
        for part in SPLITS[a.func]:
            name = state_name(a.out, part.suffix)
            plain.append((name, part.merge, table.column(name), a.out))
    states, out_keys = _run_passes(keys, key_names, table.num_rows, plain, quantile_inputs)
    return _finish(out_keys, key_names, groups, states, table.schema)


def _flat_take(col: Column, indices: pa.Array) -> pa.Array:
    arr = col.combine_chunks() if isinstance(col, pa.ChunkedArray) else col
    return arr.take(indices)


def finalize(table: pa.Table, groups: Sequence[str], aggs: Sequence[ir.AggSpec],
             relation: ir.Relation) -> list[pa.Array]:
    """The aggregate's output columns (keys, then one per aggregate) from merged partial states."""
    n = table.num_rows
    if not groups and n == 0 and aggs:  # a whole-frame aggregate over no rows still yields one row
        return [pa.array([zero_value(c.dtype)], ARROW_TYPES[c.dtype]) for c in relation]
    out: list[pa.Array] = [table.column(g).combine_chunks() for g in groups]
    for a, col in zip(aggs, relation[len(groups):], strict=True):
        sig = Signature((a.arg_type,), col.dtype)
        if a.func == "quantiles":
            parts = [table.column(state_name(a.out, s)).combine_chunks() for s, _ in qs.STATE_LISTS]
            gid = pc.list_parent_indices(parts[0])
            rows = qs.finalize(gid, tuple(pc.list_flatten(p) for p in parts), n)
            out.append(pa.array([quantiles_json(r) for r in rows], pa.string()))
            continue
        states = [table.column(state_name(a.out, p.suffix)).combine_chunks() for p in SPLITS[a.func]]
        value = finalize_state(a.func, states, sig)
        out.append(value if value.type == ARROW_TYPES[col.dtype] else value.cast(ARROW_TYPES[col.dtype]))
    return out


def aggregate_whole(table: pa.Table, node: ir.Agg) -> list[pa.Array]:
    """Fallback for aggregates without split states: the registry's implementation over group ids."""
    from cluster.pxl.exec.grouping import group_ids

    needed = list(dict.fromkeys([*node.groups, *(a.column for a in node.aggs)]))
    source = table.select(needed).combine_chunks()
    keys = [source.column(g).combine_chunks() for g in node.groups]
    grouping = group_ids(keys, source.num_rows)
    if not node.groups and source.num_rows == 0 and not node.aggs:
        grouping = type(grouping)(grouping.gid, 0)
    arrays: list[pa.Array] = []
    if node.groups:
        t = pa.table({"g": grouping.gid, **{f"k{i}": k for i, k in enumerate(keys)}})
        firsts = t.group_by("g", use_threads=False).aggregate([(f"k{i}", "first") for i in range(len(keys))])
        order = pc.sort_indices(firsts.column("g"))
        arrays += [firsts.column(f"k{i}_first").take(order).combine_chunks() for i in range(len(keys))]
    for spec, col in zip(node.aggs, node.relation[len(node.groups):], strict=True):
        func = REGISTRY.get(spec.func)
        assert isinstance(func, AggregateFunc)
        values = source.column(spec.column).combine_chunks()
        arrays.append(func.impl(values, grouping, Signature((spec.arg_type,), col.dtype)))
    return arrays
