"""Evaluate an ir.Expr over one record batch, column-at-a-time.

A column a chain keeps dictionary-encoded for a group-by (see operators._dictionary_plan) reaches
functions decoded: only a map's own output may stay encoded, and only where the plan asks for it.
"""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc

from cluster.pxl import ir
from cluster.pxl.funcs import REGISTRY, EvalContext, ScalarFunc, Signature, Value
from cluster.pxl.funcs.arrays import broadcast
from cluster.pxl.types import ARROW_TYPES


def encoded_type(value_type: pa.DataType) -> pa.DataType:
    """The type of a column kept dictionary-encoded between a map and the group-by it feeds."""
    return pa.dictionary(pa.int32(), value_type)


def literal_scalar(expr: ir.Literal) -> pa.Scalar:
    return pa.scalar(expr.value, type=ARROW_TYPES[expr.dtype])


def _plain(value: Value) -> Value:
    if isinstance(value, pa.DictionaryArray):
        return value.dictionary_decode()
    return value


def evaluate(expr: ir.Expr, batch: pa.RecordBatch, ctx: EvalContext, encoded: bool = False) -> Value:
    """An array of batch.num_rows, or a scalar when the expression does not depend on the rows.

    ``encoded``: a call with a dictionary form may answer with a dictionary array."""
    if isinstance(expr, ir.ColumnRef):
        return batch.column(expr.name)
    if isinstance(expr, ir.Literal):
        return literal_scalar(expr)
    if isinstance(expr, ir.Call):
        func = REGISTRY.get(expr.func)
        assert isinstance(func, ScalarFunc), expr.func
        args = [_plain(evaluate(a, batch, ctx)) for a in expr.args]
        impl = func.dict_impl if encoded and func.dict_impl is not None else func.impl
        return impl(ctx, args, Signature(expr.arg_types, expr.dtype), batch.num_rows)
    raise TypeError(f"unknown expression {type(expr).__name__}")


def evaluate_array(expr: ir.Expr, batch: pa.RecordBatch, ctx: EvalContext, encoded: bool = False) -> pa.Array:
    """The expression as an array of its PxL type; with ``encoded``, dictionary-encoded (encoded_type)."""
    value = evaluate(expr, batch, ctx, encoded)
    if isinstance(value, pa.ChunkedArray):
        value = value.combine_chunks()
    arr = broadcast(value, batch.num_rows)
    target = ARROW_TYPES[expr.dtype]
    if encoded:
        want = encoded_type(target)
        if not isinstance(arr, pa.DictionaryArray):
            arr = pc.dictionary_encode(arr if arr.type == target else arr.cast(target))
        return arr if arr.type == want else arr.cast(want)
    arr = _plain(arr)
    return arr if arr.type == target else arr.cast(target)
