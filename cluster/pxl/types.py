"""PxL's data types (Pixie's names) and how each maps onto Arrow.

The compiler reasons in Pixie's type names because error messages and overload tables are written
in them; the engine only ever sees the Arrow types from :data:`ARROW_TYPES`.
"""

from __future__ import annotations

import pyarrow as pa

from cluster.schemas import TIME64NS as ARROW_TIME64NS
from cluster.schemas import UINT128 as ARROW_UINT128
from cluster.schemas import px_type_name

BOOLEAN = "BOOLEAN"
INT64 = "INT64"
FLOAT64 = "FLOAT64"
STRING = "STRING"
TIME64NS = "TIME64NS"
UINT128 = "UINT128"

ALL_TYPES = (BOOLEAN, INT64, FLOAT64, STRING, TIME64NS, UINT128)

ARROW_TYPES: dict[str, pa.DataType] = {
    BOOLEAN: pa.bool_(),
    INT64: pa.int64(),
    FLOAT64: pa.float64(),
    STRING: pa.string(),
    TIME64NS: ARROW_TIME64NS,
    UINT128: ARROW_UINT128,
}

ST_NONE = "ST_NONE"


def from_arrow(t: pa.DataType) -> str:
    """Pixie type of an Arrow type; unknown Arrow types keep their upper-cased Arrow name."""
    if pa.types.is_dictionary(t):
        return from_arrow(t.value_type)
    if pa.types.is_integer(t):
        return INT64
    if pa.types.is_floating(t):
        return FLOAT64
    return px_type_name(t)


def zero_value(dtype: str) -> object:
    """PxL has no NULL: outer joins and empty aggregates fill with these."""
    return {BOOLEAN: False, INT64: 0, FLOAT64: 0.0, STRING: "", TIME64NS: 0, UINT128: b"\0" * 16}[dtype]
