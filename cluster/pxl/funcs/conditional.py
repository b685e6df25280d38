"""px.select: row-wise if/else (both branches are evaluated, as in Pixie)."""

from __future__ import annotations

from collections.abc import Sequence

import pyarrow.compute as pc

from cluster.pxl.funcs import semantics
from cluster.pxl.funcs.registry import EvalContext, Registry, ScalarFunc, Signature, Value
from cluster.pxl.types import BOOLEAN, FLOAT64, INT64, STRING, TIME64NS


def _select(ctx: EvalContext, args: Sequence[Value], sig: Signature, n: int) -> Value:
    cond, a, b = args
    return pc.if_else(cond, a, b)


def register(reg: Registry) -> None:
    reg.add(ScalarFunc(
        "select",
        tuple(Signature((BOOLEAN, t, t), t) for t in (BOOLEAN, INT64, FLOAT64, TIME64NS, STRING)),
        _select, semantics.same_or_none, doc="cond ? a : b, row-wise"))
