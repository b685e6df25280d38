"""Type objects: ``str``/``int``/... and ``px.Pod``/``px.DurationNanos``/...

They serve three roles: argument annotations (checked on data type only), converters of the string
arguments a vis.json binding passes in function mode, and semantic casts (``px.Bytes(expr)``),
which may change the semantic type only."""

from __future__ import annotations

import ast
import dataclasses
from dataclasses import dataclass
from typing import TYPE_CHECKING

from cluster.pxl.compiler.objects import Args, ExprValue, Kwargs, PxlObject, error, literal
from cluster.pxl.compiler.timeparse import TimeParseError, parse_time_ns
from cluster.pxl.types import BOOLEAN, FLOAT64, INT64, STRING, TIME64NS, UINT128

if TYPE_CHECKING:
    from cluster.pxl.compiler.evaluator import Evaluator

_TRUE = {"true", "1", "yes", "t", "y"}
_FALSE = {"false", "0", "no", "f", "n"}


@dataclass(eq=False)
class TypeObject(PxlObject):
    name: str
    dtype: str
    semantic: str | None = None  # set for px.* semantic types, which can also be called as casts
    type_name = "type"

    def describe(self) -> str:
        return self.name

    def call(self, ev: Evaluator, args: Args, kwargs: Kwargs, node: ast.AST) -> PxlObject:
        if self.semantic is None:
            raise error(node, f"'{self.name}' cannot be called in PxL (it is only an annotation)")
        if kwargs or len(args) != 1:
            raise error(node, f"{self.name}() takes exactly one argument")
        (arg,) = args
        if not isinstance(arg, ExprValue):
            raise error(node, f"{self.name}() needs a column or literal, got {arg.describe()}")
        if arg.expr.dtype != self.dtype:
            raise error(node, f"Only semantic type casts are allowed: {self.name} needs {self.dtype}, "
                              f"got {arg.expr.dtype}")
        return ExprValue(dataclasses.replace(arg.expr, semantic=self.semantic), arg.frame)

    def convert(self, text: str, now_ns: int, param: str, node: ast.AST) -> PxlObject:
        """A function-mode argument (always a string) as this annotation's value."""
        try:
            if self.dtype == INT64 and self.name != "px.Time":
                return literal(int(text.strip()), INT64, self.semantic or "ST_NONE")
            if self.dtype == FLOAT64:
                return literal(float(text.strip()), FLOAT64, self.semantic or "ST_NONE")
            if self.dtype == BOOLEAN:
                low = text.strip().lower()
                if low in _TRUE | _FALSE:
                    return literal(low in _TRUE, BOOLEAN)
                raise ValueError(f"'{text}' is not a boolean (true/false/1/0/yes/no)")
            if self.name == "px.Time":
                value = int(text) if text.strip().lstrip("-").isdigit() else parse_time_ns(text, now_ns)
                return literal(value, INT64)
        except (ValueError, TimeParseError) as e:
            raise error(node, f"Argument '{param}': cannot convert '{text}' to {self.name}: {e}") from e
        return literal(text, STRING, self.semantic or "ST_NONE")


PYTHON_TYPES = {
    "str": TypeObject("str", STRING),
    "int": TypeObject("int", INT64),
    "float": TypeObject("float", FLOAT64),
    "bool": TypeObject("bool", BOOLEAN),
}

PX_TYPES = {
    "DurationNanos": TypeObject("px.DurationNanos", INT64, "ST_DURATION_NS"),
    "Bytes": TypeObject("px.Bytes", INT64, "ST_BYTES"),
    "Percent": TypeObject("px.Percent", FLOAT64, "ST_PERCENT"),
    "Pod": TypeObject("px.Pod", STRING, "ST_POD_NAME"),
    "Service": TypeObject("px.Service", STRING, "ST_SERVICE_NAME"),
    "Namespace": TypeObject("px.Namespace", STRING, "ST_NAMESPACE_NAME"),
    "Node": TypeObject("px.Node", STRING, "ST_NODE_NAME"),
    "Container": TypeObject("px.Container", STRING, "ST_CONTAINER_NAME"),
    "UPID": TypeObject("px.UPID", UINT128, "ST_UPID"),
    "Time": TypeObject("px.Time", TIME64NS, "ST_NONE"),
}
