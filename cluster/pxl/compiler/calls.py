"""Typed UDF calls: overload resolution against the registry, semantic inference, constant folding.

Folding runs the very implementation the engine runs, on one-row inputs, so ``10 * ns_per_s`` and
``start_time + '_x'`` become literals exactly as Pixie's compiler makes them.
"""

from __future__ import annotations

import ast
import dataclasses
from collections.abc import Sequence

import pyarrow as pa

from cluster.pxl import ir
from cluster.pxl.compiler.objects import ExprValue, PxlObject, error
from cluster.pxl.funcs import REGISTRY, EvalContext, ScalarFunc, Signature
from cluster.pxl.types import ARROW_TYPES, FLOAT64, INT64, TIME64NS

OPERATOR_SYMBOLS = {
    "add": "+", "subtract": "-", "multiply": "*", "divide": "/", "modulo": "%",
    "equal": "==", "notEqual": "!=", "lessThan": "<", "lessThanEqual": "<=", "greaterThan": ">",
    "greaterThanEqual": ">=", "logicalAnd": "and", "logicalOr": "or", "logicalNot": "not",
    "negate": "-", "invert": "~",
}


def display_name(func: str) -> str:
    if func in OPERATOR_SYMBOLS:
        return f"operator '{OPERATOR_SYMBOLS[func]}' ({func})"
    return f"px.{func}"


def scalar_of(expr: ir.Literal) -> pa.Scalar:
    return pa.scalar(expr.value, type=ARROW_TYPES[expr.dtype])


def python_value(s: pa.Scalar | pa.Array) -> object:
    if isinstance(s, pa.Array):
        s = s[0]
    if pa.types.is_timestamp(s.type):
        return s.value
    return s.as_py()


def _promote_int_literals(args: Sequence[ExprValue]) -> list[ExprValue]:
    """An int literal may stand where a FLOAT64 is needed (px.select(c, df.ratio, 0))."""
    out = []
    for a in args:
        if a.is_literal and a.expr.dtype == INT64:
            a = ExprValue(dataclasses.replace(a.expr, dtype=FLOAT64, value=float(a.value)))
        out.append(a)
    return out


def expr_args(args: Sequence[PxlObject], func: str, node: ast.AST) -> list[ExprValue]:
    out = []
    for i, a in enumerate(args):
        if not isinstance(a, ExprValue):
            raise error(node, f"{display_name(func)}: argument {i + 1} must be a column or a literal, "
                              f"got {a.describe()}")
        out.append(a)
    return out


def build_call(func: str, args: Sequence[PxlObject], node: ast.AST) -> ExprValue:
    """A call of registry function ``func``, type-checked, and folded when every argument is literal."""
    f = REGISTRY.get(func)
    if not isinstance(f, ScalarFunc):
        raise error(node, f"{display_name(func)} is not a scalar function")
    values = expr_args(args, func, node)
    sig = f.resolve([v.expr.dtype for v in values])
    if sig is None:
        promoted = _promote_int_literals(values)
        sig = f.resolve([v.expr.dtype for v in promoted])
        if sig is not None:
            values = promoted
    if sig is None:
        given = ", ".join(v.expr.dtype for v in values) or "no arguments"
        wanted = "; ".join("(" + ", ".join(s.args) + ")" for s in f.signatures)
        raise error(node, f"{display_name(func)} does not support argument types ({given}); "
                          f"supported: {wanted}")
    semantic = f.semantic([v.expr.dtype for v in values], [v.expr.semantic for v in values])
    frame = next((v.frame for v in values if v.frame is not None), None)
    if f.foldable and all(v.is_literal for v in values):
        return _fold(f, values, sig, semantic, node)
    expr = ir.Call(func=func, args=tuple(v.expr for v in values), arg_types=sig.args, dtype=sig.ret,
                   semantic=semantic)
    return ExprValue(expr, frame)


def _fold(f: ScalarFunc, values: Sequence[ExprValue], sig: Signature, semantic: str,
          node: ast.AST) -> ExprValue:
    scalars = [scalar_of(v.expr) for v in values]  # type: ignore[arg-type]
    try:
        result = f.impl(EvalContext(), scalars, sig, 1)
    except (pa.ArrowException, ValueError, OverflowError, ZeroDivisionError) as e:
        raise error(node, f"{display_name(f.name)} failed on constant arguments: {e}") from e
    value = python_value(result)
    if sig.ret == TIME64NS and not isinstance(value, int):
        value = int(value)  # pragma: no cover - defensive
    return ExprValue(ir.Literal(value=value, dtype=sig.ret, semantic=semantic))
