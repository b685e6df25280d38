"""px builtins that need the compiler's help beyond a plain typed UDF call.

* regex_match / replace: the pattern is an init argument in Pixie, so it must be a string literal.
* equals_any(value, [a, b, ...]): expands to ``value == a or value == b or ...``.
* uint128("uuid text"): a UINT128 literal, e.g. to compare upids.
* the UDTFs (GetAgentStatus, GetSchemas, ...): DataFrames over an ir.UDTFSource.
"""

from __future__ import annotations

import ast
import uuid
from typing import TYPE_CHECKING

from cluster.pxl import ir
from cluster.pxl.compiler.calls import build_call
from cluster.pxl.compiler.dataframe import DataFrame
from cluster.pxl.compiler.objects import Args, Builtin, ExprValue, Kwargs, ListValue, PxlObject, error, literal
from cluster.pxl.funcs.udtfs import UDTFS, UDTFSpec
from cluster.pxl.types import BOOLEAN, FLOAT64, INT64, STRING, UINT128

if TYPE_CHECKING:
    from cluster.pxl.compiler.evaluator import Evaluator

_PY_TYPES = {BOOLEAN: bool, INT64: int, FLOAT64: float, STRING: str}


def _positional(name: str, args: Args, kwargs: Kwargs, n: int, node: ast.AST) -> Args:
    if kwargs:
        raise error(node, f"px.{name} takes positional arguments only")
    if len(args) != n:
        raise error(node, f"px.{name}() takes {n} arguments, got {len(args)}")
    return args


def _literal_pattern(name: str, n_args: int):
    def fn(ev: Evaluator, args: Args, kwargs: Kwargs, node: ast.AST) -> PxlObject:
        args = _positional(name, args, kwargs, n_args, node)
        pattern = args[0]
        if not (isinstance(pattern, ExprValue) and pattern.is_literal and isinstance(pattern.value, str)):
            raise error(node, f"px.{name}: the pattern (first argument) must be a string literal, got "
                              f"{pattern.describe()}")
        return build_call(name, args, node)

    return fn


def _equals_any(ev: Evaluator, args: Args, kwargs: Kwargs, node: ast.AST) -> PxlObject:
    value, options = _positional("equals_any", args, kwargs, 2, node)
    if not isinstance(options, ListValue) or not options.items:
        raise error(node, f"px.equals_any: the second argument must be a non-empty list of values, got "
                          f"{options.describe()}")
    result = build_call("equal", [value, options.items[0]], node)
    for item in options.items[1:]:
        result = build_call("logicalOr", [result, build_call("equal", [value, item], node)], node)
    return result


def parse_uint128(text: str) -> bytes:
    """UUID text (high word first) -> the 16 bytes of a UINT128 column."""
    return uuid.UUID(text.strip()).bytes


def _uint128(ev: Evaluator, args: Args, kwargs: Kwargs, node: ast.AST) -> PxlObject:
    (arg,) = _positional("uint128", args, kwargs, 1, node)
    if not (isinstance(arg, ExprValue) and arg.is_literal and isinstance(arg.value, str)):
        raise error(node, f"px.uint128 needs a UUID string literal, got {arg.describe()}")
    try:
        return literal(parse_uint128(arg.value), UINT128)
    except ValueError:
        raise error(node, f"px.uint128: '{arg.value}' is not a UUID "
                          f"(expected 8-4-4-4-12 hex digits)") from None


def _udtf(spec: UDTFSpec):
    def fn(ev: Evaluator, args: Args, kwargs: Kwargs, node: ast.AST) -> PxlObject:
        name = f"px.{spec.name}"
        params = [a.name for a in spec.args]
        if len(args) > len(params):
            raise error(node, f"{name}() takes at most {len(params)} arguments, got {len(args)}")
        given: dict[str, PxlObject] = dict(zip(params, args, strict=False))
        for k, v in kwargs.items():
            if k not in params:
                raise error(node, f"{name}() got an unexpected keyword argument '{k}'")
            if k in given:
                raise error(node, f"{name}() got multiple values for argument '{k}'")
            given[k] = v
        values: list[tuple[str, object]] = []
        for a in spec.args:
            obj = given.get(a.name)
            if obj is None:
                values.append((a.name, a.default))
                continue
            py_type = _PY_TYPES[a.dtype]
            if not (isinstance(obj, ExprValue) and obj.is_literal and type(obj.value) is py_type):
                raise error(node, f"{name}() argument '{a.name}' must be a {a.dtype} literal, got "
                                  f"{obj.describe()}")
            values.append((a.name, obj.value))
        relation = tuple(ir.Column(c, t, s) for c, t, s in spec.columns)
        return DataFrame(ir.UDTFSource(relation=relation, name=spec.name, args=tuple(values)))

    return fn


def extra_members() -> dict[str, PxlObject]:
    members: dict[str, PxlObject] = {
        "regex_match": Builtin("px.regex_match", _literal_pattern("regex_match", 2)),
        "replace": Builtin("px.replace", _literal_pattern("replace", 3)),
        "equals_any": Builtin("px.equals_any", _equals_any),
        "uint128": Builtin("px.uint128", _uint128),
    }
    for spec in UDTFS.values():
        members[spec.name] = Builtin(f"px.{spec.name}", _udtf(spec))
    return members
