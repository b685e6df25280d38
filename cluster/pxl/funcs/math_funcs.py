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
    if isinstance(w, pa.Scalar) and w.is_valid:
        # the usual constant width: x - x % w is trunc(x / w) * w, and integer division truncates
        # (two passes instead of the general form's six)
        if w.as_py() == 0:
            return to_type(x, sig.ret)
        return to_type(pc.multiply(pc.divide(x, w), w), sig.ret)
    out = pc.if_else(pc.equal(w, 0), x, pc.subtract(x, int_mod(x, w)))
    return to_type(out, sig.ret)


def _bin_encoded(ctx: EvalContext, args: Sequence[Value], sig: Signature, n: int) -> Value:
    """bin() as a dictionary array, for a result that only feeds a group-by key.

    With a constant width the bins of a batch are consecutive multiples of it, so each row's code is
    its quotient minus the smallest one: arithmetic instead of hashing every row.  The dictionary
    lists every multiple in between (values no row has are allowed in a dictionary)."""
    x, w = args
    if isinstance(w, pa.Scalar) and not isinstance(x, pa.Scalar) and len(x) > 0:
        width = as_int64(w)
        xi = as_int64(x)
        if width.is_valid and width.as_py() != 0 and pa.types.is_integer(xi.type) and xi.null_count == 0:
            q = pc.divide(xi, width)
            low, high = (v.as_py() for v in pc.min_max(q).values())
            if high - low < max(len(x), 1 << 10):
                # 0 <= code < len(x): no overflow to check
                codes = pc.cast(pc.subtract(q, pa.scalar(low, pa.int64())), pa.int32(), safe=False)
                quotients = pc.add(
                    pc.subtract(pc.cumulative_sum(pa.repeat(pa.scalar(1, pa.int64()), high - low + 1)), 1),
                    pa.scalar(low, pa.int64()),
                )
                values = to_type(pc.multiply(quotients, width), sig.ret)
                return pa.DictionaryArray.from_arrays(codes, values)
    return _bin(ctx, args, sig, n)


def _floor(ctx: EvalContext, args: Sequence[Value], sig: Signature, n: int) -> Value:
    return pc.floor(args[0]).cast(pa.int64())


def _ceil(ctx: EvalContext, args: Sequence[Value], sig: Signature, n: int) -> Value:
    return pc.ceil(args[0]).cast(pa.int64())


def _abs(ctx: EvalContext, args: Sequence[Value], sig: Signature, n: int) -> Value:
    return pc.abs(args[0])


def register(reg: Registry) -> None:
    reg.add(
        ScalarFunc(
            "bin",
            (
                Signature((T, N), T),
                Signature((N, N), N),
                Signature((T, T), T),
                Signature((N, T), N),
                Signature((F, N), N),
            ),
            _bin,
            semantics.keep_input,
            doc="round down to a multiple of w",
            dict_impl=_bin_encoded,
        )
    )
    reg.add(ScalarFunc("floor", (Signature((F,), N),), _floor, doc="toward -inf, as INT64"))
    reg.add(ScalarFunc("ceil", (Signature((F,), N),), _ceil, doc="toward +inf, as INT64"))
    reg.add(
        ScalarFunc("abs", (Signature((N,), N), Signature((F,), F)), _abs, semantics.keep_input, doc="absolute value")
    )
