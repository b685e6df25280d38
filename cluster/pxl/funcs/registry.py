"""One registry for every scalar UDF and aggregate (UDA) the engine can run.

Each entry holds its overloads (Pixie type names in, Pixie type name out), the rule that derives the
result's semantic type, and a vectorised implementation over pyarrow arrays.  The compiler resolves
calls against the same entries the engine runs, so a call that type-checks is a call that can run.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import pyarrow as pa

from cluster.pxl.types import ST_NONE

#: A value flowing through expression evaluation: a column (array) or a broadcast constant.
Value = pa.Array | pa.Scalar

#: (argument data types, argument semantic types) -> result semantic type
SemanticRule = Callable[[Sequence[str], Sequence[str]], str]


def no_semantic(dtypes: Sequence[str], semantics: Sequence[str]) -> str:
    return ST_NONE


def fixed_semantic(st: str) -> SemanticRule:
    def rule(dtypes: Sequence[str], semantics: Sequence[str]) -> str:
        return st

    return rule


def first_arg_semantic(dtypes: Sequence[str], semantics: Sequence[str]) -> str:
    return semantics[0] if semantics else ST_NONE


@dataclass(frozen=True)
class Signature:
    args: tuple[str, ...]
    ret: str


@dataclass
class EvalContext:
    """What a UDF may consult at run time besides its arguments."""

    metadata: Any = None  # a cluster.pxl.sources.MetadataSource
    now_ns: int = 0
    vizier: Any = None  # a cluster.pxl.sources.VizierInfo, for the UDTFs that ask the cluster
    deadline: float | None = None  # time.monotonic() after which operators stop the query
    budget: Any = None  # a cluster.pxl.errors.MemoryBudget charged for every table materialised


#: impl(ctx, args, signature, n_rows) -> result (array of n_rows, or a scalar when all args are scalars)
ScalarImpl = Callable[[EvalContext, Sequence[Value], Signature, int], Value]


@dataclass(frozen=True)
class ScalarFunc:
    name: str
    signatures: tuple[Signature, ...]
    impl: ScalarImpl
    semantic: SemanticRule = no_semantic
    #: False for functions whose value depends on where/when they run (metadata, hostname).
    foldable: bool = True
    #: For variadic functions: the type every extra argument must have, after the fixed ones.
    variadic: str | None = None
    doc: str = ""
    #: Optional form of ``impl`` returning a dictionary array (each distinct value once in its
    #: dictionary), for results that only feed a group-by key: grouping then works on small integer
    #: codes instead of hashing one string per row (metadata look-ups: few pods, many rows).
    dict_impl: ScalarImpl | None = None

    kind = "udf"

    def resolve(self, dtypes: Sequence[str]) -> Signature | None:
        dtypes = tuple(dtypes)
        for sig in self.signatures:
            if sig.args == dtypes:
                return sig
            if (
                self.variadic
                and dtypes[: len(sig.args)] == sig.args
                and all(d == self.variadic for d in dtypes[len(sig.args) :])
            ):
                return Signature(dtypes, sig.ret)
        return None


@dataclass(frozen=True)
class Grouping:
    """Row -> group id (0..n_groups-1, in order of first appearance) for one aggregate node."""

    gid: pa.Array  # int64, one per row
    n_groups: int


#: impl(values, grouping, signature) -> array of n_groups
AggregateImpl = Callable[[pa.Array, Grouping, Signature], pa.Array]


@dataclass(frozen=True)
class AggregateFunc:
    name: str
    signatures: tuple[Signature, ...]
    impl: AggregateImpl
    semantic: SemanticRule = no_semantic
    doc: str = ""

    kind = "uda"

    def resolve(self, dtypes: Sequence[str]) -> Signature | None:
        for sig in self.signatures:
            if sig.args == tuple(dtypes):
                return sig
        return None


class Registry:
    def __init__(self) -> None:
        self._funcs: dict[str, ScalarFunc | AggregateFunc] = {}

    def add(self, func: ScalarFunc | AggregateFunc) -> None:
        if func.name in self._funcs:
            raise ValueError(f"duplicate registry entry {func.name}")
        self._funcs[func.name] = func

    def get(self, name: str) -> ScalarFunc | AggregateFunc | None:
        return self._funcs.get(name)

    def scalar(self, name: str) -> ScalarFunc:
        f = self._funcs[name]
        assert isinstance(f, ScalarFunc)
        return f

    def aggregate(self, name: str) -> AggregateFunc:
        f = self._funcs[name]
        assert isinstance(f, AggregateFunc)
        return f

    def names(self) -> list[str]:
        return sorted(self._funcs)

    def __contains__(self, name: str) -> bool:
        return name in self._funcs
