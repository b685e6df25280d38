"""Walks a script's Python AST and evaluates it into PxL objects and plan nodes.

Only the statement and expression kinds PxL defines are accepted; anything else is reported by its
AST node name ("Can't parse expression of type ...").  Nothing is ever handed to Python's exec or
eval: names resolve only in PxL scopes, attributes only through the PxL object model.
"""

from __future__ import annotations

import ast
from collections.abc import Mapping
from dataclasses import dataclass

import pyarrow as pa

from cluster.pxl import ir
from cluster.pxl.compiler.calls import build_call
from cluster.pxl.compiler.dataframe import DataFrame
from cluster.pxl.compiler.objects import (
    NONE,
    Args,
    DictValue,
    ExprValue,
    Kwargs,
    ListValue,
    Module,
    PxlObject,
    TupleValue,
    UserFunction,
    error,
    literal,
)
from cluster.pxl.compiler.px_module import DataFrameType, build_modules
from cluster.pxl.compiler.px_vis_plugin import VisDecorator
from cluster.pxl.compiler.type_objects import PYTHON_TYPES, TypeObject
from cluster.pxl.types import BOOLEAN, FLOAT64, INT64, STRING, TIME64NS

ALLOWED_MODULES = ("px", "pxtrace", "pxconfig", "pxviews")
MAX_CALL_DEPTH = 64

BINARY_OPS: dict[type, str] = {ast.Add: "add", ast.Sub: "subtract", ast.Mult: "multiply",
                               ast.Div: "divide", ast.Mod: "modulo"}
COMPARE_OPS: dict[type, str] = {ast.Eq: "equal", ast.NotEq: "notEqual", ast.Lt: "lessThan",
                                ast.LtE: "lessThanEqual", ast.Gt: "greaterThan",
                                ast.GtE: "greaterThanEqual"}
OP_SYMBOLS: dict[type, str] = {ast.Pow: "**", ast.FloorDiv: "//", ast.BitAnd: "&", ast.BitOr: "|",
                               ast.BitXor: "^", ast.LShift: "<<", ast.RShift: ">>", ast.MatMult: "@",
                               ast.In: "in", ast.NotIn: "not in", ast.Is: "is", ast.IsNot: "is not"}


class Scope:
    """A name -> object mapping chained to its parent (function scope -> module -> builtins)."""

    def __init__(self, parent: Scope | None = None) -> None:
        self.vars: dict[str, PxlObject] = {}
        self.parent = parent

    def lookup(self, name: str) -> PxlObject | None:
        scope: Scope | None = self
        while scope is not None:
            if name in scope.vars:
                return scope.vars[name]
            scope = scope.parent
        return None

    def set(self, name: str, value: PxlObject) -> None:
        self.vars[name] = value


@dataclass
class _Returned:
    value: PxlObject


@dataclass
class PendingSink:
    name: str
    node: ir.PlanNode
    debug: bool
    export: object | None = None  # a px.export sink's ExportSpec


class Evaluator:
    def __init__(self, schemas: Mapping[str, pa.Schema], now_ns: int, function_mode: bool) -> None:
        self.schemas = schemas
        self.now_ns = now_ns
        self.function_mode = function_mode
        self.sinks: list[PendingSink] = []
        self.modules = build_modules()
        builtins = Scope()
        for name, t in PYTHON_TYPES.items():
            builtins.set(name, t)
        builtins.set("list", TypeObject("list", "LIST"))
        builtins.set("None", NONE)
        builtins.set("True", literal(True, BOOLEAN))
        builtins.set("False", literal(False, BOOLEAN))
        self.module_scope = Scope(builtins)
        self._depth = 0
        self.current_stmt: ast.stmt | None = None

    # ---- sinks -----------------------------------------------------------------------------

    def add_sink(self, name: str, df: DataFrame, debug: bool) -> None:
        if debug:
            self.sinks.append(PendingSink("_" + name, df.node, True))
        elif not self.function_mode:
            self.sinks.append(PendingSink(name, df.node, False))

    def add_export(self, df: DataFrame, spec: object) -> None:
        """px.export: sends rows instead of making a table, so it runs in script and function mode."""
        n = sum(1 for s in self.sinks if s.export is not None)
        self.sinks.append(PendingSink(f"px.export[{n}]", df.node, False, spec))

    # ---- statements ------------------------------------------------------------------------

    def run_module(self, tree: ast.Module) -> None:
        self.exec_block(tree.body, self.module_scope, in_function=False)

    def exec_block(self, body: list[ast.stmt], scope: Scope, in_function: bool) -> PxlObject | None:
        for i, stmt in enumerate(body):
            if i == 0 and _is_docstring(stmt):
                continue
            result = self.exec_stmt(stmt, scope, in_function)
            if isinstance(result, _Returned):
                return result.value
        return None

    def exec_stmt(self, stmt: ast.stmt, scope: Scope, in_function: bool) -> _Returned | None:
        self.current_stmt = stmt  # where to point if Python's own limits stop the walk
        if isinstance(stmt, ast.Expr):
            self.eval_expr(stmt.value, scope)
        elif isinstance(stmt, ast.Assign):
            self.exec_assign(stmt, scope)
        elif isinstance(stmt, ast.FunctionDef):
            self.exec_def(stmt, scope)
        elif isinstance(stmt, ast.Return):
            if not in_function:
                raise error(stmt, "'return' outside function")
            return _Returned(NONE if stmt.value is None else self.eval_expr(stmt.value, scope))
        elif isinstance(stmt, ast.Import):
            for alias in stmt.names:
                scope.set(alias.asname or alias.name, self._module(alias.name, stmt))
        elif isinstance(stmt, ast.ImportFrom):
            if stmt.level:
                raise error(stmt, "Relative imports are not supported")
            module = self._module(stmt.module or "", stmt)
            for alias in stmt.names:
                if alias.name == "*":
                    raise error(stmt, "'from ... import *' is not supported")
                scope.set(alias.asname or alias.name, module.get_attr(self, alias.name, stmt))
        else:
            raise error(stmt, f"Can't parse expression of type {type(stmt).__name__}")
        return None

    def _module(self, name: str, node: ast.AST) -> Module:
        if name not in self.modules:
            raise error(node, f"Module '{name}' cannot be imported; PxL scripts may import only "
                              f"{', '.join(ALLOWED_MODULES)}")
        return self.modules[name]

    def exec_assign(self, stmt: ast.Assign, scope: Scope) -> None:
        if len(stmt.targets) != 1:
            raise error(stmt, "Assignment to multiple targets is not supported")
        target = stmt.targets[0]
        if isinstance(target, ast.Name):
            scope.set(target.id, self.eval_expr(stmt.value, scope))
            return
        if isinstance(target, ast.Attribute | ast.Subscript):
            if not isinstance(target.value, ast.Name):
                raise error(target, "Column assignment needs a plain variable name on the left, "
                                    "as in df.x = ... or df['x'] = ...")
            frame = self.lookup(target.value, scope)
            if not isinstance(frame, DataFrame):
                raise error(target, f"Cannot assign a column to {frame.describe()}; only DataFrames "
                                    f"have columns")
            if isinstance(target, ast.Attribute):
                column = target.attr
                _check_attr_name(column, target)
            else:
                key = self.eval_expr(target.slice, scope)
                if not (isinstance(key, ExprValue) and key.is_literal and isinstance(key.value, str)):
                    raise error(target, f"Column name must be a string, got {key.describe()}")
                column = key.value
            value = self.eval_expr(stmt.value, scope)
            # Copy-on-assign: the name is re-bound in this scope to a new frame.
            scope.set(target.value.id, frame.assign_column(column, value, stmt))
            return
        raise error(target, f"Can't parse expression of type {type(target).__name__} as an "
                            f"assignment target")

    def exec_def(self, stmt: ast.FunctionDef, scope: Scope) -> None:
        a = stmt.args
        if a.defaults or (a.kw_defaults and any(d is not None for d in a.kw_defaults)):
            raise error(stmt, "default values not supported in function definitions")
        if a.vararg or a.kwarg or a.kwonlyargs or a.posonlyargs:
            raise error(stmt, f"Function '{stmt.name}': only plain positional parameters are supported")
        if len(stmt.decorator_list) > 1:
            raise error(stmt.decorator_list[1], f"Function '{stmt.name}': at most one decorator is allowed")
        if stmt.decorator_list:  # only px.vis.vega(...), which pxtui accepts and ignores
            deco = self.eval_expr(stmt.decorator_list[0], scope)
            if not isinstance(deco, VisDecorator):
                raise error(stmt.decorator_list[0], "Decorators are not supported (only @px.vis.vega(...))")
        annotations: dict[str, PxlObject | None] = {}
        for arg in a.args:
            annotations[arg.arg] = None if arg.annotation is None else self.eval_expr(arg.annotation, scope)
        scope.set(stmt.name, UserFunction(stmt, scope, annotations))

    # ---- user functions ----------------------------------------------------------------------

    def call_user_function(self, fn: UserFunction, args: Args, kwargs: Kwargs, node: ast.AST) -> PxlObject:
        params = fn.params
        if len(args) > len(params):
            raise error(node, f"{fn.name}() takes {len(params)} arguments but {len(args)} were given")
        bound: dict[str, PxlObject] = dict(zip(params, args, strict=False))
        for k, v in kwargs.items():
            if k not in params:
                raise error(node, f"{fn.name}() got an unexpected keyword argument '{k}'")
            if k in bound:
                raise error(node, f"{fn.name}() got multiple values for argument '{k}'")
            bound[k] = v
        missing = [p for p in params if p not in bound]
        if missing:
            raise error(node, f"{fn.name}() missing required argument '{missing[0]}'")
        for p, v in bound.items():
            _check_annotation(fn, p, v, node)
        if self._depth >= MAX_CALL_DEPTH:
            raise error(node, f"Calls nested deeper than {MAX_CALL_DEPTH} (recursion is not supported)")
        local = Scope(fn.scope)
        for p, v in bound.items():
            local.set(p, v)
        self._depth += 1
        try:
            result = self.exec_block(fn.node.body, local, in_function=True)
        finally:
            self._depth -= 1
        return NONE if result is None else result

    # ---- expressions -------------------------------------------------------------------------

    def lookup(self, node: ast.Name, scope: Scope) -> PxlObject:
        value = scope.lookup(node.id)
        if value is None:
            raise error(node, f"name '{node.id}' is not defined")
        return value

    def eval_expr(self, node: ast.expr, scope: Scope) -> PxlObject:
        if isinstance(node, ast.Constant):
            return _constant(node)
        if isinstance(node, ast.Name):
            return self.lookup(node, scope)
        if isinstance(node, ast.Attribute):
            _check_attr_name(node.attr, node)
            return self.eval_expr(node.value, scope).get_attr(self, node.attr, node)
        if isinstance(node, ast.Subscript):
            if isinstance(node.slice, ast.Slice):
                raise error(node.slice, "Can't parse expression of type Slice")
            obj = self.eval_expr(node.value, scope)
            return obj.subscript(self, self.eval_expr(node.slice, scope), node)
        if isinstance(node, ast.Call):
            return self.eval_call(node, scope)
        if isinstance(node, ast.List):
            return ListValue([self.eval_expr(e, scope) for e in node.elts])
        if isinstance(node, ast.Tuple):
            return TupleValue([self.eval_expr(e, scope) for e in node.elts])
        if isinstance(node, ast.Dict):
            if any(k is None for k in node.keys):
                raise error(node, "'**' in dict literals is not supported")
            return DictValue([self.eval_expr(k, scope) for k in node.keys if k is not None],
                             [self.eval_expr(v, scope) for v in node.values])
        if isinstance(node, ast.BinOp):
            func = BINARY_OPS.get(type(node.op))
            if func is None:
                raise error(node, f"Operator '{OP_SYMBOLS.get(type(node.op), '?')}' "
                                  f"({type(node.op).__name__}) is not supported")
            return build_call(func, [self.eval_expr(node.left, scope), self.eval_expr(node.right, scope)], node)
        if isinstance(node, ast.UnaryOp):
            return self.eval_unary(node, scope)
        if isinstance(node, ast.BoolOp):
            func = "logicalAnd" if isinstance(node.op, ast.And) else "logicalOr"
            result = self.eval_expr(node.values[0], scope)
            for v in node.values[1:]:
                result = build_call(func, [result, self.eval_expr(v, scope)], node)
            return result
        if isinstance(node, ast.Compare):
            if len(node.ops) != 1:
                raise error(node, "Chained comparisons (a < b < c) are not supported")
            op = node.ops[0]
            func = COMPARE_OPS.get(type(op))
            if func is None:
                raise error(node, f"Operator '{OP_SYMBOLS.get(type(op), '?')}' ({type(op).__name__}) "
                                  f"is not supported")
            return build_call(func, [self.eval_expr(node.left, scope), self.eval_expr(node.comparators[0], scope)],
                              node)
        raise error(node, f"Can't parse expression of type {type(node).__name__}")

    def eval_unary(self, node: ast.UnaryOp, scope: Scope) -> PxlObject:
        operand = self.eval_expr(node.operand, scope)
        if isinstance(node.op, ast.UAdd):
            if not isinstance(operand, ExprValue) or operand.expr.dtype not in (INT64, FLOAT64):
                raise error(node, f"unary '+' needs a number, got {operand.describe()}")
            return operand
        func = {ast.Not: "logicalNot", ast.USub: "negate", ast.Invert: "invert"}[type(node.op)]
        return build_call(func, [operand], node)

    def eval_call(self, node: ast.Call, scope: Scope) -> PxlObject:
        func = self.eval_expr(node.func, scope)
        args: Args = []
        for a in node.args:
            if isinstance(a, ast.Starred):
                raise error(a, "Can't parse expression of type Starred")
            args.append(self.eval_expr(a, scope))
        kwargs: Kwargs = {}
        for kw in node.keywords:
            if kw.arg is None:
                raise error(kw.value, "'**' arguments are not supported")
            kwargs[kw.arg] = self.eval_expr(kw.value, scope)
        return func.call(self, args, kwargs, node)


def _is_docstring(stmt: ast.stmt) -> bool:
    return isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Constant) and isinstance(
        stmt.value.value, str)


def _check_attr_name(name: str, node: ast.AST) -> None:
    if name.startswith("__"):
        raise error(node, f"Access to attribute '{name}' is not allowed")


def _constant(node: ast.Constant) -> PxlObject:
    v = node.value
    if v is None:
        return NONE
    if isinstance(v, bool):
        return literal(v, BOOLEAN)
    if isinstance(v, int):
        if not -(2**63) <= v < 2**63:
            raise error(node, f"Integer literal {v} does not fit in INT64")
        return literal(v, INT64)
    if isinstance(v, float):
        return literal(v, FLOAT64)
    if isinstance(v, str):
        return literal(v, STRING)
    raise error(node, f"Can't parse expression of type {type(v).__name__} constant")


def _check_annotation(fn: UserFunction, param: str, value: PxlObject, node: ast.AST) -> None:
    """Annotations on ordinary calls compare data types only (a str passes for px.Pod)."""
    ann = fn.annotations.get(param)
    if ann is None:
        return
    if isinstance(ann, DataFrameType):
        if not isinstance(value, DataFrame):
            raise error(node, f"{fn.name}() argument '{param}' must be a DataFrame, got {value.describe()}")
        return
    if isinstance(ann, TypeObject) and ann.dtype in (BOOLEAN, INT64, FLOAT64, STRING, TIME64NS):
        if not isinstance(value, ExprValue):
            raise error(node, f"{fn.name}() argument '{param}' must be {ann.name}, got {value.describe()}")
        ok = {ann.dtype} | ({INT64} if ann.dtype in (TIME64NS, FLOAT64) else set())
        if value.expr.dtype not in ok:
            raise error(node, f"{fn.name}() argument '{param}' must be {ann.dtype} ({ann.name}), "
                              f"got {value.expr.dtype}")
