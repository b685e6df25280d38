"""Row -> group id over several key columns, without Python loops.

Each key is dictionary-encoded; the codes are combined pairwise (a * cardinality + b) and
re-encoded, which keeps ids dense and in order of first appearance whatever the key types are
(UINT128 and TIME64NS included)."""

from __future__ import annotations

from collections.abc import Sequence

import pyarrow as pa
import pyarrow.compute as pc

from cluster.pxl.funcs import Grouping


def _codes(arr: pa.Array) -> tuple[pa.Array, int]:
    enc = pc.dictionary_encode(arr)
    return enc.indices.cast(pa.int64()), len(enc.dictionary)


def group_ids(columns: Sequence[pa.Array], n_rows: int) -> Grouping:
    if not columns:
        return Grouping(pa.repeat(pa.scalar(0, pa.int64()), n_rows), 1)
    gid, card = _codes(columns[0])
    for col in columns[1:]:
        codes, c = _codes(col)
        gid, card = _codes(pc.add(pc.multiply(gid, c), codes))
    return Grouping(gid, card)


def row_numbers(n: int) -> pa.Array:
    """0..n-1 as int64, vectorised."""
    if n == 0:
        return pa.array([], pa.int64())
    return pc.subtract(pc.cumulative_sum(pa.repeat(pa.scalar(1, pa.int64()), n)), 1)
