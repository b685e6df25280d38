"""The ``px`` module (and the other importable modules) as seen by a script.

Compile-time functions (now, parse_duration, ...) produce literals; UDF names produce typed calls;
aggregates are bare references for agg tuples; px.DataFrame, px.display and px.debug build plan
nodes and sinks; px.export / px.otel live in px_export, px.vis / px.plugin in px_vis_plugin.
"""

from __future__ import annotations

import ast
from typing import TYPE_CHECKING

from cluster.pxl import ir
from cluster.pxl.compiler.calls import build_call
from cluster.pxl.compiler.dataframe import DataFrame, string_list, string_literal
from cluster.pxl.compiler.objects import (
    AggregateRef,
    Args,
    Builtin,
    DictValue,
    ExprValue,
    Kwargs,
    Module,
    NoneValue,
    PxlObject,
    error,
    literal,
)
from cluster.pxl.compiler.px_export import otel_members
from cluster.pxl.compiler.px_extras import extra_members
from cluster.pxl.compiler.px_vis_plugin import vis_plugin_members
from cluster.pxl.compiler.pxviews_lib import pxviews_module
from cluster.pxl.compiler.timeparse import NS, TimeParseError, format_duration, parse_duration_ns, parse_time_ns
from cluster.pxl.compiler.type_objects import PX_TYPES
from cluster.pxl.funcs import REGISTRY, AggregateFunc, ScalarFunc
from cluster.pxl.types import INT64, STRING, TIME64NS, from_arrow
from cluster.schemas import semantic_type

if TYPE_CHECKING:
    from cluster.pxl.compiler.evaluator import Evaluator

def _bind(name: str, params: list[str], args: Args, kwargs: Kwargs, node: ast.AST,
          required: int) -> dict[str, PxlObject]:
    if len(args) > len(params):
        raise error(node, f"{name}() takes at most {len(params)} positional arguments, got {len(args)}")
    bound: dict[str, PxlObject] = dict(zip(params, args, strict=False))
    for k, v in kwargs.items():
        if k not in params:
            raise error(node, f"{name}() got an unexpected keyword argument '{k}'")
        if k in bound:
            raise error(node, f"{name}() got multiple values for argument '{k}'")
        bound[k] = v
    for p in params[:required]:
        if p not in bound:
            raise error(node, f"{name}() missing required argument '{p}'")
    return bound


def _literal_of(obj: PxlObject, what: str, node: ast.AST, *types: type) -> object:
    if isinstance(obj, ExprValue) and obj.is_literal and isinstance(obj.value, types) and not (
            isinstance(obj.value, bool) and bool not in types):
        return obj.value
    names = "/".join(t.__name__ for t in types)
    raise error(node, f"{what} must be a {names} literal, got {obj.describe()}")


def time_arg(ev: Evaluator, obj: PxlObject | None, what: str, node: ast.AST) -> int | None:
    """start_time/end_time/parse_time argument -> absolute ns (None = unbounded)."""
    if obj is None or isinstance(obj, NoneValue):
        return None
    if isinstance(obj, ExprValue) and obj.is_literal:
        v = obj.value
        if obj.expr.dtype in (INT64, TIME64NS):
            return int(v)  # type: ignore[arg-type]
        if obj.expr.dtype == STRING:
            try:
                return parse_time_ns(v, ev.now_ns)  # type: ignore[arg-type]
            except TimeParseError as e:
                raise error(node, f"{what}: {e}") from e
    raise error(node, f"{what} must be a time string, int nanoseconds or None, got {obj.describe()}")


# ---- builtins ---------------------------------------------------------------------------------


def _dataframe(ev: Evaluator, args: Args, kwargs: Kwargs, node: ast.AST) -> PxlObject:
    b = _bind("px.DataFrame", ["table", "select", "start_time", "end_time"], args, kwargs, node, 1)
    table = string_literal(b["table"])
    if table is None:
        raise error(node, f"px.DataFrame table must be a string, got {b['table'].describe()}")
    schema = ev.schemas.get(table)
    if schema is None:
        known = ", ".join(sorted(ev.schemas)) or "(none)"
        raise error(node, f"Table '{table}' not found; available tables: {known}")
    relation = [ir.Column(f.name, from_arrow(f.type), semantic_type(f)) for f in schema]
    if "select" in b:
        cols = string_list(b["select"], "px.DataFrame select", node, allow_single=False)
        if cols:
            by_name = {c.name: c for c in relation}
            missing = [c for c in cols if c not in by_name]
            if missing:
                raise error(node, f"Column '{missing[0]}' not found in table '{table}'; available "
                                  f"columns: {', '.join(by_name)}")
            relation = [by_name[c] for c in cols]
    start = time_arg(ev, b.get("start_time"), "start_time", node)
    end = time_arg(ev, b.get("end_time"), "end_time", node)
    return DataFrame(ir.Source(relation=tuple(relation), table=table, start_ns=start, end_ns=end))


class DataFrameType(Builtin):
    """px.DataFrame: the constructor, and the annotation for DataFrame parameters."""


def _sink(kind: str):
    def fn(ev: Evaluator, args: Args, kwargs: Kwargs, node: ast.AST) -> PxlObject:
        params = ["out", "name", "cols"] if kind == "display" else ["out", "name"]
        b = _bind(f"px.{kind}", params, args, kwargs, node, 1)
        df = b["out"]
        if not isinstance(df, DataFrame):
            raise error(node, f"px.{kind} needs a DataFrame, got {df.describe()}")
        name = "output"
        if "name" in b:
            name = _literal_of(b["name"], f"px.{kind} name", node, str)  # type: ignore[assignment]
        if "cols" in b:
            cols = string_list(b["cols"], f"px.{kind} cols", node, allow_single=False)
            if cols:
                df = df.keep(cols, node)
        ev.add_sink(name, df, debug=kind == "debug")
        return NoneValue()

    return fn


def _now(ev: Evaluator, args: Args, kwargs: Kwargs, node: ast.AST) -> PxlObject:
    _bind("px.now", [], args, kwargs, node, 0)
    return literal(ev.now_ns, INT64)


def _parse_duration(ev: Evaluator, args: Args, kwargs: Kwargs, node: ast.AST) -> PxlObject:
    b = _bind("px.parse_duration", ["duration"], args, kwargs, node, 1)
    text = _literal_of(b["duration"], "px.parse_duration argument", node, str)
    try:
        return literal(parse_duration_ns(text), INT64)  # type: ignore[arg-type]
    except TimeParseError as e:
        raise error(node, f"px.parse_duration: {e}") from e


def _parse_time(ev: Evaluator, args: Args, kwargs: Kwargs, node: ast.AST) -> PxlObject:
    b = _bind("px.parse_time", ["time"], args, kwargs, node, 1)
    value = time_arg(ev, b["time"], "px.parse_time argument", node)
    if value is None:
        raise error(node, "px.parse_time needs a time, got None")
    return literal(value, TIME64NS)


def _unit(name: str, ns: int):
    def fn(ev: Evaluator, args: Args, kwargs: Kwargs, node: ast.AST) -> PxlObject:
        b = _bind(f"px.{name}", ["n"], args, kwargs, node, 1)
        n = _literal_of(b["n"], f"px.{name} argument", node, int, float)
        return literal(int(n * ns), INT64)  # type: ignore[operator]

    return fn


def _format_duration(ev: Evaluator, args: Args, kwargs: Kwargs, node: ast.AST) -> PxlObject:
    b = _bind("px.format_duration", ["duration"], args, kwargs, node, 1)
    ns = _literal_of(b["duration"], "px.format_duration argument", node, int)
    return literal(format_duration(ns), STRING)  # type: ignore[arg-type]


def _script_reference(ev: Evaluator, args: Args, kwargs: Kwargs, node: ast.AST) -> PxlObject:
    b = _bind("px.script_reference", ["label", "script", "args"], args, kwargs, node, 2)
    flat: list[PxlObject] = [b["label"], b["script"]]
    extra = b.get("args")
    if extra is not None:
        if not isinstance(extra, DictValue):
            raise error(node, f"px.script_reference args must be a dict, got {extra.describe()}")
        if len(extra.keys) > 8:
            raise error(node, "px.script_reference supports at most 8 args")
        for k, v in zip(extra.keys, extra.values, strict=True):
            if string_literal(k) is None:
                raise error(node, f"px.script_reference arg names must be string literals, got {k.describe()}")
            flat += [k, v]
    for i, v in enumerate(flat):
        if not isinstance(v, ExprValue) or v.expr.dtype != STRING:
            what = "label" if i == 0 else "script" if i == 1 else "arg values"
            got = v.describe()
            raise error(node, f"px.script_reference {what} must be a string or a STRING column, got {got}")
    return build_call("_script_reference", flat, node)


def _udf(name: str):
    def fn(ev: Evaluator, args: Args, kwargs: Kwargs, node: ast.AST) -> PxlObject:
        if kwargs:
            raise error(node, f"px.{name} takes positional arguments only")
        return build_call(name, args, node)

    return fn


def _missing_px(name: str) -> str:
    """Every Pixie px builtin exists here (px_vis_plugin refuses two with a reason), so a miss is a typo."""
    return f"px.{name} is not a PxL builtin ('px' has no attribute '{name}')"


def build_px_module() -> Module:
    members: dict[str, PxlObject] = {}
    for fname in REGISTRY.names():
        f = REGISTRY.get(fname)
        if isinstance(f, AggregateFunc):
            members[fname] = AggregateRef(fname)
        elif isinstance(f, ScalarFunc) and fname != "_script_reference":
            members[fname] = Builtin(f"px.{fname}", _udf(fname))
    members.update(PX_TYPES)
    members["DataFrame"] = DataFrameType("px.DataFrame", _dataframe)
    members["display"] = Builtin("px.display", _sink("display"))
    members["debug"] = Builtin("px.debug", _sink("debug"))
    members["now"] = Builtin("px.now", _now)
    members["parse_duration"] = Builtin("px.parse_duration", _parse_duration)
    members["parse_time"] = Builtin("px.parse_time", _parse_time)
    members["format_duration"] = Builtin("px.format_duration", _format_duration)
    members["script_reference"] = Builtin("px.script_reference", _script_reference)
    members.update(extra_members())
    members.update(otel_members())
    members.update(vis_plugin_members())
    for name, ns in (("seconds", NS["s"]), ("minutes", NS["m"]), ("hours", NS["h"]), ("days", NS["d"]),
                     ("milliseconds", NS["ms"]), ("microseconds", 1_000)):
        members[name] = Builtin(f"px.{name}", _unit(name, ns))
    return Module("px", members, _missing_px)


def build_modules() -> dict[str, Module]:
    def unsupported(module: str):
        return lambda name: f"{module}.{name} is not supported by pxtui yet"

    return {
        "px": build_px_module(),
        "pxtrace": Module("pxtrace", {}, unsupported("pxtrace")),
        "pxconfig": Module("pxconfig", {}, unsupported("pxconfig")),
        "pxviews": pxviews_module(),
    }
