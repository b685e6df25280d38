"""Small helpers the UDF implementations share: broadcasting constants, viewing times as ints."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from cluster.pxl.funcs.registry import Value
from cluster.pxl.types import ARROW_TYPES, TIME64NS


def is_scalar(v: Value) -> bool:
    return isinstance(v, pa.Scalar)


def py(v: pa.Scalar) -> Any:
    """Python value of a scalar; TIME64NS as int ns (datetime cannot hold nanoseconds)."""
    if pa.types.is_timestamp(v.type):
        return v.value
    return v.as_py()


def broadcast(v: Value, n: int) -> pa.Array:
    """An array of n rows: arrays pass through, scalars are repeated (no Python loop)."""
    if not isinstance(v, pa.Scalar):
        return v
    return pa.repeat(v, n)


_I64_ZERO = pa.scalar(0, pa.int64())
_I64_ONE = pa.scalar(1, pa.int64())


def int_mod(a: Value, b: Value) -> Value:
    """C++ ``a % b`` on int64 (sign of the dividend); a zero divisor gives 0 instead of a crash.

    The constants are typed scalars: a bare Python int makes pyarrow guess its type, which tries
    (and fails) to import dateutil on every call (~10 ms per 1M rows through px.bin)."""
    zero = pc.equal(b, _I64_ZERO)
    safe = pc.if_else(zero, _I64_ONE, b)
    rem = pc.subtract(a, pc.multiply(pc.divide(a, safe), safe))
    return pc.if_else(zero, _I64_ZERO, rem)


def float_mod(a: Value, b: Value) -> Value:
    """C ``fmod``: a - trunc(a / b) * b (NaN for a zero divisor)."""
    return pc.subtract(a, pc.multiply(pc.trunc(pc.divide(a, b)), b))


def as_int64(v: Value) -> Value:
    """TIME64NS values as plain int64 ns, so time arithmetic is integer arithmetic."""
    if pa.types.is_timestamp(v.type):
        return v.cast(pa.int64())
    return v


def to_type(v: Value, dtype: str) -> Value:
    """Cast a computed value to the Arrow type of a PxL type (e.g. int64 ns back to TIME64NS)."""
    target = ARROW_TYPES[dtype]
    if v.type == target:
        return v
    if dtype == TIME64NS and pa.types.is_timestamp(v.type):
        return v.cast(target)
    return v.cast(target)


def rowwise(fn: Callable[..., Any], args: Sequence[Value], n: int, out: pa.DataType) -> Value:
    """Per-row Python fallback, for rare argument shapes (e.g. a column where a constant is usual)."""
    if all(is_scalar(a) for a in args):
        return pa.scalar(fn(*[py(a) for a in args]), type=out)
    cols = [broadcast(a, n).to_pylist() for a in args]
    return pa.array([fn(*row) for row in zip(*cols, strict=True)], type=out)


def unique_map(values: Value, fn: Callable[[Any], Any], out: pa.DataType) -> Value:
    """Apply a Python function once per distinct value (JSON plucks: values repeat a lot)."""
    if is_scalar(values):
        return pa.scalar(fn(py(values)), type=out)
    if len(values) == 0:
        return pa.array([], type=out)
    enc = values.dictionary_encode() if not pa.types.is_dictionary(values.type) else values
    mapped = pa.array([fn(x) for x in enc.dictionary.to_pylist()], type=out)
    return mapped.take(enc.indices)
