"""The PxL object model: what a name can be bound to while a script is compiled.

Every attribute access, call and subscript in a script goes through these classes' explicit
``get_attr``/``call``/``subscript`` methods, never through Python's own attribute machinery, so a
script can only reach what PxL defines.
"""

from __future__ import annotations

import ast
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from cluster.pxl import ir
from cluster.pxl.errors import PxlError
from cluster.pxl.types import ST_NONE

if TYPE_CHECKING:
    from cluster.pxl.compiler.evaluator import Evaluator

Args = list["PxlObject"]
Kwargs = dict[str, "PxlObject"]


def error(node: ast.AST | None, message: str) -> PxlError:
    """A compile error located at ``node`` (1-based line and column)."""
    if node is None or not hasattr(node, "lineno"):
        return PxlError(message, 0, 0)
    return PxlError(message, node.lineno, node.col_offset + 1)


class PxlObject:
    """Base of every compile-time value."""

    type_name = "object"

    def describe(self) -> str:
        return self.type_name

    def get_attr(self, ev: Evaluator, name: str, node: ast.AST) -> PxlObject:
        raise error(node, f"'{self.describe()}' object has no attribute '{name}'")

    def call(self, ev: Evaluator, args: Args, kwargs: Kwargs, node: ast.AST) -> PxlObject:
        raise error(node, f"'{self.describe()}' object is not callable")

    def subscript(self, ev: Evaluator, key: PxlObject, node: ast.AST) -> PxlObject:
        raise error(node, f"'{self.describe()}' object is not subscriptable")


class NoneValue(PxlObject):
    type_name = "None"


NONE = NoneValue()


@dataclass(eq=False)
class ExprValue(PxlObject):
    """A literal or a column expression.  ``frame`` is the plan node its columns come from."""

    expr: ir.Expr
    frame: ir.PlanNode | None = None

    @property
    def type_name(self) -> str:  # type: ignore[override]
        return self.expr.dtype

    @property
    def is_literal(self) -> bool:
        return isinstance(self.expr, ir.Literal)

    @property
    def value(self) -> Any:
        assert isinstance(self.expr, ir.Literal)
        return self.expr.value

    def describe(self) -> str:
        return "literal " + self.expr.dtype if self.is_literal else "column expression " + self.expr.dtype


def literal(value: Any, dtype: str, semantic: str = ST_NONE) -> ExprValue:
    return ExprValue(ir.Literal(value=value, dtype=dtype, semantic=semantic))


@dataclass(eq=False)
class ListValue(PxlObject):
    items: list[PxlObject]
    type_name = "list"

    def subscript(self, ev: Evaluator, key: PxlObject, node: ast.AST) -> PxlObject:
        if isinstance(key, ExprValue) and key.is_literal and isinstance(key.value, int) \
                and not isinstance(key.value, bool):
            if -len(self.items) <= key.value < len(self.items):
                return self.items[key.value]
            raise error(node, f"{self.type_name} index {key.value} out of range")
        raise error(node, f"{self.type_name} indices must be integer literals")


class TupleValue(ListValue):
    type_name = "tuple"


@dataclass(eq=False)
class DictValue(PxlObject):
    keys: list[PxlObject]
    values: list[PxlObject]
    type_name = "dict"


@dataclass(eq=False)
class Builtin(PxlObject):
    """A compile-time function; ``fn(ev, args, kwargs, node)`` returns a PxlObject."""

    name: str
    fn: Callable[[Evaluator, Args, Kwargs, ast.AST], PxlObject]
    type_name = "builtin_function"

    def describe(self) -> str:
        return self.name

    def call(self, ev: Evaluator, args: Args, kwargs: Kwargs, node: ast.AST) -> PxlObject:
        return self.fn(ev, args, kwargs, node)


@dataclass(eq=False)
class Module(PxlObject):
    name: str
    members: dict[str, PxlObject] = field(default_factory=dict)
    #: called for a missing member: returns the error message (naming the builtin)
    missing: Callable[[str], str] | None = None
    type_name = "module"

    def describe(self) -> str:
        return f"module {self.name}"

    def get_attr(self, ev: Evaluator, name: str, node: ast.AST) -> PxlObject:
        if name in self.members:
            return self.members[name]
        if self.missing is not None:
            raise error(node, self.missing(name))
        raise error(node, f"'{self.name}' has no attribute '{name}'")


@dataclass(eq=False)
class AggregateRef(PxlObject):
    """px.sum and friends: only meaningful inside an agg tuple."""

    name: str
    type_name = "aggregate"

    def describe(self) -> str:
        return f"px.{self.name}"

    def call(self, ev: Evaluator, args: Args, kwargs: Kwargs, node: ast.AST) -> PxlObject:
        raise error(node, f"px.{self.name} is an aggregate: pass it bare inside agg, as in "
                          f"agg(out=('column', px.{self.name}))")


@dataclass(eq=False)
class UserFunction(PxlObject):
    node: ast.FunctionDef
    scope: Any  # evaluator.Scope of the definition
    annotations: dict[str, PxlObject | None]
    type_name = "function"

    @property
    def name(self) -> str:
        return self.node.name

    @property
    def params(self) -> list[str]:
        return [a.arg for a in self.node.args.args]

    def describe(self) -> str:
        return f"function {self.name}"

    def call(self, ev: Evaluator, args: Args, kwargs: Kwargs, node: ast.AST) -> PxlObject:
        return ev.call_user_function(self, args, kwargs, node)
