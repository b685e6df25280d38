"""The DataFrame object and its methods.  Every method returns a new DataFrame over a new plan
node; nothing is mutated, which gives PxL's copy-on-assign semantics for free (§2.3)."""

from __future__ import annotations

import ast
from typing import TYPE_CHECKING

from cluster.pxl import ir
from cluster.pxl.compiler import metadata_ctx
from cluster.pxl.compiler.calls import build_call
from cluster.pxl.compiler.objects import (
    AggregateRef,
    Args,
    ExprValue,
    Kwargs,
    ListValue,
    NoneValue,
    PxlObject,
    TupleValue,
    error,
)
from cluster.pxl.compiler.px_vis_plugin import Refused
from cluster.pxl.funcs import REGISTRY, AggregateFunc
from cluster.pxl.types import BOOLEAN, INT64

if TYPE_CHECKING:
    from cluster.pxl.compiler.evaluator import Evaluator

METHODS = ("agg", "append", "drop", "filter", "groupby", "head", "map", "merge", "rolling", "stream")


def available(node: ir.PlanNode) -> str:
    return ", ".join(node.names) or "(none)"


def string_literal(obj: PxlObject) -> str | None:
    if isinstance(obj, ExprValue) and obj.is_literal and isinstance(obj.value, str):
        return obj.value
    return None


def string_list(obj: PxlObject, what: str, node: ast.AST, allow_single: bool = True) -> list[str]:
    """A str or a list/tuple of str literals (column names in groupby, drop, keys...)."""
    s = string_literal(obj)
    if s is not None and allow_single:
        return [s]
    if isinstance(obj, ListValue):
        out = []
        for item in obj.items:
            v = string_literal(item)
            if v is None:
                raise error(node, f"{what} must be column names (strings), got {item.describe()}")
            out.append(v)
        return out
    raise error(node, f"{what} must be a string or a list of strings, got {obj.describe()}")


def _bind_args(method: str, params: list[str], args: Args, kwargs: Kwargs, node: ast.AST,
               required: int) -> dict[str, PxlObject]:
    if len(args) > len(params):
        raise error(node, f"{method}() takes at most {len(params)} positional arguments")
    bound: dict[str, PxlObject] = dict(zip(params, args, strict=False))
    for k, v in kwargs.items():
        if k not in params:
            raise error(node, f"{method}() got an unexpected keyword argument '{k}'")
        if k in bound:
            raise error(node, f"{method}() got multiple values for argument '{k}'")
        bound[k] = v
    for p in params[:required]:
        if p not in bound:
            raise error(node, f"{method}() missing required argument '{p}'")
    return bound


class DataFrame(PxlObject):
    type_name = "DataFrame"

    def __init__(self, node: ir.PlanNode) -> None:
        self.node = node

    # ---- attribute / subscript -------------------------------------------------------------

    def get_attr(self, ev: Evaluator, name: str, node: ast.AST) -> PxlObject:
        if name == "ctx":
            return Ctx(self)
        if name in METHODS:
            return BoundMethod(self, name)
        return self.column(name, node)

    def column(self, name: str, node: ast.AST) -> ExprValue:
        col = self.node.column(name)
        if col is None:
            raise error(node, f"Column '{name}' not found; available columns: {available(self.node)}")
        return ExprValue(ir.ColumnRef(name=name, dtype=col.dtype, semantic=col.semantic), self.node)

    def subscript(self, ev: Evaluator, key: PxlObject, node: ast.AST) -> PxlObject:
        name = string_literal(key)
        if name is not None:
            return self.column(name, node)
        if isinstance(key, ListValue):  # df[['a','b']] and df['a','b']
            return self.keep(string_list(key, "Column selection", node, allow_single=False), node)
        if isinstance(key, ExprValue):
            return self.filter(key, node)
        raise error(node, f"A DataFrame can be indexed by a column name, a list of column names or a "
                          f"boolean expression, not {key.describe()}")

    # ---- helpers ---------------------------------------------------------------------------

    def bind(self, value: ExprValue, node: ast.AST) -> ir.Expr:
        """Check an expression can run on this frame: its columns exist here with the same types."""
        for ref in _column_refs(value.expr):
            col = self.node.column(ref.name)
            if col is None:
                raise error(node, f"Column '{ref.name}' is not available in this DataFrame; "
                                  f"available columns: {available(self.node)}")
            if col.dtype != ref.dtype:
                raise error(node, f"Column '{ref.name}' is {col.dtype} in this DataFrame, but the "
                                  f"expression was built for {ref.dtype}")
        return value.expr

    def project(self, names: list[str], exprs: list[ir.Expr]) -> DataFrame:
        relation = tuple(ir.Column(n, e.dtype, e.semantic) for n, e in zip(names, exprs, strict=True))
        return DataFrame(ir.Map(relation=relation, parent=self.node, exprs=tuple(exprs)))

    def ref(self, name: str) -> ir.ColumnRef:
        col = self.node.column(name)
        assert col is not None
        return ir.ColumnRef(name=name, dtype=col.dtype, semantic=col.semantic)

    def require_columns(self, names: list[str], node: ast.AST) -> None:
        for n in names:
            if self.node.column(n) is None:
                raise error(node, f"Column '{n}' not found; available columns: {available(self.node)}")

    # ---- operations ------------------------------------------------------------------------

    def assign_column(self, name: str, value: PxlObject, node: ast.AST) -> DataFrame:
        if not isinstance(value, ExprValue):
            raise error(node, f"Cannot assign {value.describe()} to column '{name}'; expected a column "
                              f"expression or a literal")
        expr = self.bind(value, node)
        names = self.node.names
        exprs: list[ir.Expr] = [self.ref(n) for n in names]
        if name in names:
            exprs[names.index(name)] = expr
        else:
            names.append(name)
            exprs.append(expr)
        return self.project(names, exprs)

    def keep(self, names: list[str], node: ast.AST) -> DataFrame:
        self.require_columns(names, node)
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise error(node, f"Column(s) {', '.join(dupes)} selected more than once")
        return self.project(names, [self.ref(n) for n in names])

    def filter(self, pred: ExprValue, node: ast.AST) -> DataFrame:
        if pred.expr.dtype != BOOLEAN:
            raise error(node, f"A filter needs a BOOLEAN expression, got {pred.expr.dtype}")
        expr = self.bind(pred, node)
        return DataFrame(ir.Filter(relation=self.node.relation, parent=self.node, predicate=expr))

    def drop(self, names: list[str], node: ast.AST) -> DataFrame:
        self.require_columns(names, node)
        keep = [n for n in self.node.names if n not in set(names)]
        return self.project(keep, [self.ref(n) for n in keep])

    def head(self, n: int) -> DataFrame:
        return DataFrame(ir.Limit(relation=self.node.relation, parent=self.node, n=n))

    def aggregate(self, groups: list[str], kwargs: Kwargs, node: ast.AST) -> DataFrame:
        specs = []
        relation = [c for g in groups for c in self.node.relation if c.name == g]
        for out, spec in kwargs.items():
            if isinstance(spec, TupleValue) and spec.items and isinstance(spec.items[-1], Refused):
                raise error(node, spec.items[-1].reason)  # e.g. px.pprof: say why pxtui lacks it
            if not isinstance(spec, TupleValue) or len(spec.items) < 2 or not isinstance(
                    spec.items[-1], AggregateRef):
                raise error(node, f"agg argument '{out}' must be a tuple ('column', px.<aggregate>), "
                                  f"got {spec.describe()}")
            uda: AggregateRef = spec.items[-1]  # type: ignore[assignment]
            cols = [string_literal(c) for c in spec.items[:-1]]
            if any(c is None for c in cols):
                raise error(node, f"agg argument '{out}': column names must be strings")
            if len(cols) != 1:
                raise error(node, f"agg argument '{out}': px.{uda.name} takes exactly one column")
            col_name = cols[0]
            assert col_name is not None
            self.require_columns([col_name], node)
            col = self.node.column(col_name)
            assert col is not None
            f = REGISTRY.get(uda.name)
            assert isinstance(f, AggregateFunc)
            sig = f.resolve([col.dtype])
            if sig is None:
                wanted = ", ".join(s.args[0] for s in f.signatures)
                raise error(node, f"px.{uda.name} does not support {col.dtype} (column '{col_name}'); "
                                  f"supported: {wanted}")
            if out in groups or any(s.out == out for s in specs):
                raise error(node, f"agg output column '{out}' is defined twice")
            specs.append(ir.AggSpec(out, uda.name, col_name, col.dtype))
            relation.append(ir.Column(out, sig.ret, f.semantic([col.dtype], [col.semantic])))
        return DataFrame(ir.Agg(relation=tuple(relation), parent=self.node, groups=tuple(groups),
                                aggs=tuple(specs)))

    def merge(self, right: DataFrame, how: str, left_on: list[str], right_on: list[str],
              suffixes: tuple[str, str], node: ast.AST) -> DataFrame:
        if how not in ("inner", "left", "right", "outer"):
            raise error(node, f"merge how='{how}' is not one of inner, left, right, outer")
        if len(left_on) != len(right_on):
            raise error(node, f"merge: left_on has {len(left_on)} columns but right_on has {len(right_on)}")
        self.require_columns(left_on, node)
        right.require_columns(right_on, node)
        for lk, rk in zip(left_on, right_on, strict=True):
            lt, rt = self.node.column(lk), right.node.column(rk)
            assert lt is not None and rt is not None
            if lt.dtype != rt.dtype:
                raise error(node, f"merge keys '{lk}' ({lt.dtype}) and '{rk}' ({rt.dtype}) have "
                                  f"different types")
        left_names, right_names = set(self.node.names), set(right.node.names)
        outputs, relation = [], []
        for side, frame, others, suffix in (("left", self, right_names, suffixes[0]),
                                            ("right", right, left_names, suffixes[1])):
            for c in frame.node.relation:
                out = c.name + suffix if c.name in others else c.name
                outputs.append(ir.JoinOutput(side, c.name, out))
                relation.append(ir.Column(out, c.dtype, c.semantic))
        names = [c.name for c in relation]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise error(node, f"merge output has duplicate column(s) {', '.join(dupes)}; "
                              f"choose different suffixes")
        return DataFrame(ir.Join(relation=tuple(relation), left=self.node, right=right.node, how=how,
                                 left_on=tuple(left_on), right_on=tuple(right_on), outputs=tuple(outputs)))

    def append(self, others: list[DataFrame], node: ast.AST) -> DataFrame:
        mine = [(c.name, c.dtype) for c in self.node.relation]
        for o in others:
            theirs = [(c.name, c.dtype) for c in o.node.relation]
            if theirs != mine:
                fmt = lambda cols: ", ".join(f"{n}:{t}" for n, t in cols)  # noqa: E731
                raise error(node, f"append needs identical columns; [{fmt(mine)}] vs [{fmt(theirs)}]")
        return DataFrame(ir.Union(relation=self.node.relation,
                                  inputs=(self.node, *(o.node for o in others))))


def _column_refs(expr: ir.Expr) -> list[ir.ColumnRef]:
    if isinstance(expr, ir.ColumnRef):
        return [expr]
    if isinstance(expr, ir.Call):
        return [r for a in expr.args for r in _column_refs(a)]
    return []


class GroupBy(PxlObject):
    type_name = "GroupBy"

    def __init__(self, df: DataFrame, keys: list[str]) -> None:
        self.df, self.keys = df, keys

    def get_attr(self, ev: Evaluator, name: str, node: ast.AST) -> PxlObject:
        if name == "agg":
            return BoundMethod(self, "agg")
        raise error(node, f"groupby() must be followed by .agg(...), not .{name}")


class BoundMethod(PxlObject):
    type_name = "method"

    def __init__(self, target: DataFrame | GroupBy, name: str) -> None:
        self.target, self.name = target, name

    def describe(self) -> str:
        return f"{self.target.type_name}.{self.name}"

    def call(self, ev: Evaluator, args: Args, kwargs: Kwargs, node: ast.AST) -> PxlObject:
        if isinstance(self.target, GroupBy):
            if args:
                raise error(node, "agg() takes keyword arguments only: agg(out=('column', px.fn))")
            return self.target.df.aggregate(self.target.keys, kwargs, node)
        df = self.target
        handler = getattr(self, f"_{self.name}")
        return handler(df, args, kwargs, node)

    # Each handler validates its arguments and calls the DataFrame operation.

    def _filter(self, df: DataFrame, args: Args, kwargs: Kwargs, node: ast.AST) -> PxlObject:
        b = _bind_args("filter", ["expr"], args, kwargs, node, 1)
        if not isinstance(b["expr"], ExprValue):
            raise error(node, f"filter() needs a boolean expression, got {b['expr'].describe()}")
        return df.filter(b["expr"], node)

    def _head(self, df: DataFrame, args: Args, kwargs: Kwargs, node: ast.AST) -> PxlObject:
        b = _bind_args("head", ["n", "_pem_only"], args, kwargs, node, 0)
        n = b.get("n")
        if n is None:
            return df.head(5)
        if not (isinstance(n, ExprValue) and n.is_literal and n.expr.dtype == INT64):
            raise error(node, f"head(n) needs an integer literal, got {n.describe()}")
        if n.value < 0:
            raise error(node, f"head(n) needs n >= 0, got {n.value}")
        return df.head(n.value)

    def _drop(self, df: DataFrame, args: Args, kwargs: Kwargs, node: ast.AST) -> PxlObject:
        b = _bind_args("drop", ["columns"], args, kwargs, node, 1)
        return df.drop(string_list(b["columns"], "drop() columns", node), node)

    def _groupby(self, df: DataFrame, args: Args, kwargs: Kwargs, node: ast.AST) -> PxlObject:
        b = _bind_args("groupby", ["by"], args, kwargs, node, 1)
        keys = string_list(b["by"], "groupby() columns", node)
        if not keys:
            raise error(node, "groupby() needs at least one column")
        df.require_columns(keys, node)
        return GroupBy(df, keys)

    def _agg(self, df: DataFrame, args: Args, kwargs: Kwargs, node: ast.AST) -> PxlObject:
        if args:
            raise error(node, "agg() takes keyword arguments only: agg(out=('column', px.fn))")
        if not kwargs:
            raise error(node, "agg() without groupby needs at least one aggregate, "
                              "e.g. df.agg(n=('time_', px.count))")
        return df.aggregate([], kwargs, node)

    def _merge(self, df: DataFrame, args: Args, kwargs: Kwargs, node: ast.AST) -> PxlObject:
        b = _bind_args("merge", ["right", "how", "left_on", "right_on", "suffixes"], args, kwargs, node, 1)
        right = b["right"]
        if not isinstance(right, DataFrame):
            raise error(node, f"merge() needs a DataFrame to merge with, got {right.describe()}")
        how_obj = b.get("how")
        how = "inner" if how_obj is None else string_literal(how_obj)
        if how is None:
            raise error(node, "merge() how must be a string")
        for key in ("left_on", "right_on"):
            if key not in b:
                raise error(node, f"merge() missing required argument '{key}'")
        left_on = string_list(b["left_on"], "merge() left_on", node)
        right_on = string_list(b["right_on"], "merge() right_on", node)
        suffixes: tuple[str, str] = ("_x", "_y")
        if "suffixes" in b:
            sfx = string_list(b["suffixes"], "merge() suffixes", node, allow_single=False)
            if len(sfx) != 2:
                raise error(node, "merge() suffixes must be a list of two strings")
            suffixes = (sfx[0], sfx[1])
        return df.merge(right, how, left_on, right_on, suffixes, node)

    def _append(self, df: DataFrame, args: Args, kwargs: Kwargs, node: ast.AST) -> PxlObject:
        b = _bind_args("append", ["objs"], args, kwargs, node, 1)
        objs = b["objs"]
        items = objs.items if isinstance(objs, ListValue) else [objs]
        if not items or not all(isinstance(o, DataFrame) for o in items):
            raise error(node, "append() needs a DataFrame or a list of DataFrames")
        return df.append(items, node)  # type: ignore[arg-type]

    def _map(self, df: DataFrame, args: Args, kwargs: Kwargs, node: ast.AST) -> PxlObject:
        raise error(node, "DataFrame.map is not supported; assign columns instead: df.x = expr")

    def _rolling(self, df: DataFrame, args: Args, kwargs: Kwargs, node: ast.AST) -> PxlObject:
        raise error(node, "DataFrame.rolling is not supported yet")

    def _stream(self, df: DataFrame, args: Args, kwargs: Kwargs, node: ast.AST) -> PxlObject:
        raise error(node, "DataFrame.stream is not supported yet")


class Ctx(PxlObject):
    type_name = "ctx"

    def __init__(self, df: DataFrame) -> None:
        self.df = df

    def subscript(self, ev: Evaluator, key: PxlObject, node: ast.AST) -> PxlObject:
        raw = string_literal(key)
        if raw is None:
            raise error(node, f"ctx keys are strings, got {key.describe()}")
        canon = metadata_ctx.canonical_key(raw)
        if canon is None:
            raise error(node, f"Unknown ctx key '{raw}'; known keys: {', '.join(metadata_ctx.ALL_KEYS)}")
        resolved = metadata_ctx.resolve(canon, set(self.df.node.names))
        if resolved is None:
            sources = ", ".join(metadata_ctx.SOURCES[canon])
            raise error(node, f"ctx['{raw}'] needs one of the columns {sources}; available columns: "
                              f"{available(self.df.node)}")
        func, cols = resolved
        args = [self.df.column(c, node) for c in cols]
        return build_call(func, args, node)


def is_none(obj: PxlObject) -> bool:
    return isinstance(obj, NoneValue)
