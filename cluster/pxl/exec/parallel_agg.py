"""Partial aggregate states of a large table computed on both cores.

Why: pyarrow's hash group-by runs on one core per call.  The engine already has exact partial /
merge states for distributed queries (cluster.pxl.exec.aggregate), so a big input is cut in halves,
each half's partial states are computed in a worker thread, and the halves are merged exactly as
Kelvin merges the PEMs' partials.
"""

from __future__ import annotations

from collections.abc import Sequence

import pyarrow as pa

from cluster.pxl import ir
from cluster.pxl.exec import aggregate
from cluster.pxl.exec.threads import POOL

#: below this many rows one group-by call is cheaper than two threads plus a merge
SPLIT_MIN_ROWS = 200_000


def partial_states(table: pa.Table, groups: Sequence[str], aggs: Sequence[ir.AggSpec]) -> pa.Table:
    """``aggregate.partial(table)``, or the merge of its halves' partials when the table is big."""
    n = table.num_rows
    if POOL is None or n < SPLIT_MIN_ROWS:
        return aggregate.partial(table, groups, aggs)
    halves = [table.slice(0, n // 2), table.slice(n // 2)]
    parts = list(POOL.map(lambda t: aggregate.partial(t, groups, aggs), halves))
    return aggregate.merge(pa.concat_tables(parts), groups, aggs)
