"""The UDFs Python operators compile into (add, equal, logicalAnd, ...), with Pixie's overloads.

TIME64NS is computed on as int64 ns and cast back, which gives Pixie's time arithmetic
(time - time = INT64 duration, time + int = time).  Division is always FLOAT64, modulo follows C++
(the sign of the dividend), and float equality is approximate within machine epsilon.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

import pyarrow as pa
import pyarrow.compute as pc

from cluster.pxl.funcs import semantics
from cluster.pxl.funcs.arrays import as_int64, float_mod, int_mod, py, to_type
from cluster.pxl.funcs.registry import EvalContext, Registry, ScalarFunc, Signature, Value
from cluster.pxl.types import BOOLEAN, FLOAT64, INT64, STRING, TIME64NS, UINT128

B, N, F, S, T, U = BOOLEAN, INT64, FLOAT64, STRING, TIME64NS, UINT128
NUMERIC_PAIRS = ((N, N, N), (N, F, F), (F, N, F), (F, F, F))


def _sigs(triples: Sequence[tuple[str, str, str]]) -> tuple[Signature, ...]:
    return tuple(Signature((a, b), r) for a, b, r in triples)


def _arith(kernel: str):
    fn = getattr(pc, kernel)

    def impl(ctx: EvalContext, args: Sequence[Value], sig: Signature, n: int) -> Value:
        a, b = (as_int64(x) for x in args)
        if sig.ret == F:
            a, b = a.cast(pa.float64()), b.cast(pa.float64())
        return to_type(fn(a, b), sig.ret)

    return impl


def _add(ctx: EvalContext, args: Sequence[Value], sig: Signature, n: int) -> Value:
    if sig.ret == S:
        return pc.binary_join_element_wise(args[0], args[1], "")
    return _arith("add")(ctx, args, sig, n)


def _divide(ctx: EvalContext, args: Sequence[Value], sig: Signature, n: int) -> Value:
    a, b = (as_int64(x).cast(pa.float64()) for x in args)
    return pc.divide(a, b)


def _modulo(ctx: EvalContext, args: Sequence[Value], sig: Signature, n: int) -> Value:
    a, b = args
    if sig.ret == N:
        return int_mod(a, b)
    return float_mod(a.cast(pa.float64()), b.cast(pa.float64()))


def _float_equal(a: Value, b: Value) -> Value:
    diff = pc.abs(pc.subtract(a.cast(pa.float64()), b.cast(pa.float64())))
    return pc.less(diff, sys.float_info.epsilon)


def _compare(kernel: str):
    fn = getattr(pc, kernel)

    def impl(ctx: EvalContext, args: Sequence[Value], sig: Signature, n: int) -> Value:
        a, b = (as_int64(x) for x in args)
        if B in sig.args and N in sig.args:
            a, b = a.cast(pa.int64()), b.cast(pa.int64())
        if kernel in ("equal", "not_equal") and sig.args == (F, F):
            eq = _float_equal(a, b)
            return eq if kernel == "equal" else pc.invert(eq)
        return fn(a, b)

    return impl


def _logical(kernel: str):
    fn = getattr(pc, kernel)

    def impl(ctx: EvalContext, args: Sequence[Value], sig: Signature, n: int) -> Value:
        return fn(*args)

    return impl


def _negate(ctx: EvalContext, args: Sequence[Value], sig: Signature, n: int) -> Value:
    return pc.negate(args[0])


def _invert(ctx: EvalContext, args: Sequence[Value], sig: Signature, n: int) -> Value:
    if sig.args == (B,):
        return pc.invert(args[0])
    return pc.bit_wise_not(args[0])


def _identity(ctx: EvalContext, args: Sequence[Value], sig: Signature, n: int) -> Value:
    return args[0]


EQUALITY = (*((a, b, B) for a, b, _ in NUMERIC_PAIRS), (S, S, B), (B, B, B), (T, T, B), (T, N, B), (N, T, B), (U, U, B),
            (N, B, B), (B, N, B))
ORDERING = ((N, N, B), (N, F, B), (F, N, B), (F, F, B), (S, S, B), (T, T, B), (T, N, B), (N, T, B))


def register(reg: Registry) -> None:
    reg.add(ScalarFunc("add", _sigs((*NUMERIC_PAIRS, (S, S, S), (T, N, T), (N, T, T))), _add,
                       semantics.additive, doc="a + b; strings concatenate"))
    reg.add(ScalarFunc("subtract", _sigs((*NUMERIC_PAIRS, (T, T, N), (T, N, T), (N, T, N))),
                       _arith("subtract"), semantics.additive, doc="a - b"))
    reg.add(ScalarFunc("multiply", _sigs(NUMERIC_PAIRS), _arith("multiply"), doc="a * b"))
    reg.add(ScalarFunc("divide", _sigs([(a, b, F) for a, b, _ in NUMERIC_PAIRS]), _divide,
                       semantics.divide, doc="a / b, always FLOAT64"))
    reg.add(ScalarFunc("modulo", _sigs(NUMERIC_PAIRS), _modulo, doc="a % b with C++ remainder sign"))
    for name, kernel, table in (
        ("equal", "equal", EQUALITY), ("notEqual", "not_equal", EQUALITY),
        ("lessThan", "less", ORDERING), ("lessThanEqual", "less_equal", ORDERING),
        ("greaterThan", "greater", ORDERING), ("greaterThanEqual", "greater_equal", ORDERING),
    ):
        reg.add(ScalarFunc(name, _sigs(table), _compare(kernel), doc=f"comparison ({kernel})"))
    reg.add(ScalarFunc("logicalAnd", (Signature((B, B), B),), _logical("and_"), doc="a and b"))
    reg.add(ScalarFunc("logicalOr", (Signature((B, B), B),), _logical("or_"), doc="a or b"))
    reg.add(ScalarFunc("logicalNot", (Signature((B,), B),), _logical("invert"), doc="not a"))
    reg.add(ScalarFunc("negate", (Signature((N,), N), Signature((F,), F)), _negate,
                       semantics.keep_input, doc="-a"))
    reg.add(ScalarFunc("invert", (Signature((B,), B), Signature((N,), N)), _invert, doc="~a"))
    reg.add(ScalarFunc("identity", tuple(Signature((t,), t) for t in (B, N, F, S, T, U)), _identity,
                       semantics.keep_input, doc="+a"))


__all__ = ["py", "register"]
