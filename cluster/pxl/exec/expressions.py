"""Evaluate an ir.Expr over one record batch, column-at-a-time."""

from __future__ import annotations

import pyarrow as pa

from cluster.pxl import ir
from cluster.pxl.funcs import REGISTRY, EvalContext, ScalarFunc, Signature, Value
from cluster.pxl.funcs.arrays import broadcast
from cluster.pxl.types import ARROW_TYPES


def literal_scalar(expr: ir.Literal) -> pa.Scalar:
    return pa.scalar(expr.value, type=ARROW_TYPES[expr.dtype])


def evaluate(expr: ir.Expr, batch: pa.RecordBatch, ctx: EvalContext) -> Value:
    """An array of batch.num_rows, or a scalar when the expression does not depend on the rows."""
    if isinstance(expr, ir.ColumnRef):
        return batch.column(expr.name)
    if isinstance(expr, ir.Literal):
        return literal_scalar(expr)
    if isinstance(expr, ir.Call):
        func = REGISTRY.get(expr.func)
        assert isinstance(func, ScalarFunc), expr.func
        args = [evaluate(a, batch, ctx) for a in expr.args]
        return func.impl(ctx, args, Signature(expr.arg_types, expr.dtype), batch.num_rows)
    raise TypeError(f"unknown expression {type(expr).__name__}")


def evaluate_array(expr: ir.Expr, batch: pa.RecordBatch, ctx: EvalContext) -> pa.Array:
    value = evaluate(expr, batch, ctx)
    if isinstance(value, pa.ChunkedArray):
        value = value.combine_chunks()
    arr = broadcast(value, batch.num_rows)
    target = ARROW_TYPES[expr.dtype]
    return arr if arr.type == target else arr.cast(target)
