"""px.sample: one value of each group, Pixie's ``sample`` UDA.

Pixie keeps the first value its Update sees and merges partials by keeping the left one, so in
practice it is "any".  pxtui returns the group's first row in input order; it has no split state, so
the planner runs it whole on Kelvin (see cluster.pxl.planner).
"""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc

from cluster.pxl.funcs import semantics
from cluster.pxl.funcs.registry import AggregateFunc, Grouping, Registry, Signature
from cluster.pxl.types import BOOLEAN, FLOAT64, INT64, STRING, TIME64NS, UINT128, zero_value


def _sample(values: pa.Array, g: Grouping, sig: Signature) -> pa.Array:
    if g.n_groups == 0:
        return values.slice(0, 0)
    # the first row index of each group id, found with one vectorised min over row numbers
    rows = pa.table({"g": g.gid, "i": pa.array(range(len(values)), pa.int64())})
    first = rows.group_by("g", use_threads=False).aggregate([("i", "min")])
    order = pc.sort_indices(first.column("g"))
    out = values.take(first.column("i_min").take(order).combine_chunks())
    if len(out) < g.n_groups:  # a whole-frame aggregate over no rows still yields one (zero) row
        zero = pa.scalar(zero_value(sig.ret), type=values.type)
        out = pa.concat_arrays([out, pa.repeat(zero, g.n_groups - len(out))])
    return out


def register(reg: Registry) -> None:
    reg.add(AggregateFunc("sample", tuple(Signature((t,), t) for t in (BOOLEAN, INT64, FLOAT64, STRING,
                                                                        TIME64NS, UINT128)),
                          _sample, semantics.keep_input, doc="one value of the group (the first seen)"))
