"""Equi-joins (and cross joins) as index computations.

Keys of both sides are encoded together into integer ids, Acero joins the small (id, row) tables,
and the output columns are ``take``n from each side.  Rows without a partner are zero-filled,
because PxL has no NULL.  The result is ordered by left row, then right row, so it is stable."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc

from cluster.pxl import ir
from cluster.pxl.exec.grouping import group_ids, row_numbers
from cluster.pxl.types import ARROW_TYPES, zero_value

JOIN_TYPES = {"inner": "inner", "left": "left outer", "right": "right outer", "outer": "full outer"}


def _key_ids(left: pa.Table, right: pa.Table, node: ir.Join) -> tuple[pa.Array, pa.Array]:
    n_left = left.num_rows
    cols = []
    for lk, rk in zip(node.left_on, node.right_on, strict=True):
        lcol = left.column(lk).combine_chunks()
        rcol = right.column(rk).combine_chunks().cast(lcol.type)
        cols.append(pa.concat_arrays([lcol, rcol]))
    g = group_ids(cols, n_left + right.num_rows)
    return g.gid.slice(0, n_left), g.gid.slice(n_left)


def join_tables(left: pa.Table, right: pa.Table, node: ir.Join) -> pa.Table:
    lid, rid = _key_ids(left, right, node)
    lt = pa.table({"k": lid, "li": row_numbers(left.num_rows)})
    rt = pa.table({"k": rid, "ri": row_numbers(right.num_rows)})
    joined = lt.join(rt, "k", join_type=JOIN_TYPES[node.how], use_threads=False, coalesce_keys=True)
    order = pc.sort_indices(joined, sort_keys=[("li", "ascending", "at_end"),
                                               ("ri", "ascending", "at_end")])
    li = joined.column("li").take(order).combine_chunks()
    ri = joined.column("ri").take(order).combine_chunks()
    arrays = []
    for out, col in zip(node.outputs, node.relation, strict=True):
        source, idx = (left, li) if out.side == "left" else (right, ri)
        values = source.column(out.source).combine_chunks()
        taken = values.take(idx) if len(values) else pa.nulls(len(idx), values.type)
        if taken.null_count:
            zero = pa.scalar(zero_value(col.dtype), type=ARROW_TYPES[col.dtype])
            taken = pc.fill_null(taken, zero)
        arrays.append(taken)
    return pa.Table.from_arrays(arrays, names=[c.name for c in node.relation])
