"""Numeric UDFs: bin (time bucketing) and floor/ceil/abs."""

from __future__ import annotations

from collections.abc import Sequence

import pyarrow as pa
import pyarrow.compute as pc

from cluster.pxl.funcs import semantics
from cluster.pxl.funcs.arrays import as_int64, int_mod, to_type
from cluster.pxl.funcs.registry import EvalContext, Registry, ScalarFunc, Signature, Value
from cluster.pxl.types import FLOAT64, INT64, TIME64NS

N, F, T = INT64, FLOAT64, TIME64NS


def _bin(ctx: EvalContext, args: Sequence[Value], sig: Signature, n: int) -> Value:
    """x - (x mod w) with C++ remainder semantics: rounds toward zero for negative x."""
    x, w = (as_int64(a) for a in args)
    if pa.types.is_floating(x.type):
        x = pc.trunc(x).cast(pa.int64())
    out = pc.if_else(pc.equal(w, 0), x, pc.subtract(x, int_mod(x, w)))
    return to_type(out, sig.ret)


def _floor(ctx: EvalContext, args: Sequence[Value], sig: Signature, n: int) -> Value:
    return pc.floor(args[0]).cast(pa.int64())


def _ceil(ctx: EvalContext, args: Sequence[Value], sig: Signature, n: int) -> Value:
    return pc.ceil(args[0]).cast(pa.int64())


def _abs(ctx: EvalContext, args: Sequence[Value], sig: Signature, n: int) -> Value:
    return pc.abs(args[0])


def register(reg: Registry) -> None:
    reg.add(ScalarFunc(
        "bin",
        (Signature((T, N), T), Signature((N, N), N), Signature((T, T), T), Signature((N, T), N),
         Signature((F, N), N)),
        _bin, semantics.keep_input, doc="round down to a multiple of w"))
    reg.add(ScalarFunc("floor", (Signature((F,), N),), _floor, doc="toward -inf, as INT64"))
    reg.add(ScalarFunc("ceil", (Signature((F,), N),), _ceil, doc="toward +inf, as INT64"))
    reg.add(ScalarFunc("abs", (Signature((N,), N), Signature((F,), F)), _abs, semantics.keep_input,
                       doc="absolute value"))
