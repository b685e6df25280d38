"""vis.json: the variables a script takes, the functions to call, and the widgets to draw.

Parsed leniently, like Pixie's protobuf-JSON reader (unknown fields ignored), because users bring
vis files written for Pixie. The binding of variables to function arguments happens here, on the
client side, exactly as Pixie's CLI does: the broker receives plain FuncToExecute entries.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any


class VisError(ValueError):
    """A vis.json that cannot be used, or arguments that do not fit it."""


@dataclass(frozen=True)
class Variable:
    name: str
    type: str = "PX_STRING"
    description: str = ""
    default: str | None = None  # None = required
    valid_values: tuple[str, ...] = ()

    @property
    def required(self) -> bool:
        return self.default is None


@dataclass(frozen=True)
class FuncToExecute:
    """One function of a script to call, with its arguments as strings (converted by annotation)."""

    name: str
    args: dict[str, str]
    output_name: str


@dataclass(frozen=True)
class FuncSpec:
    name: str
    args: tuple[tuple[str, str | None, str | None], ...]  # (param, variable, literal value)


@dataclass(frozen=True)
class Widget:
    name: str
    type: str  # e.g. "Table", "TimeseriesChart" (the vispb type without prefix)
    position: dict[str, int]
    display_spec: dict[str, Any]
    output_name: str  # the result table this widget shows


@dataclass(frozen=True)
class Vis:
    variables: tuple[Variable, ...] = ()
    global_funcs: tuple[tuple[str, FuncSpec], ...] = ()  # (outputName, func)
    widget_funcs: tuple[tuple[str, FuncSpec], ...] = ()
    widgets: tuple[Widget, ...] = field(default_factory=tuple)

    @property
    def empty(self) -> bool:
        return not self.global_funcs and not self.widget_funcs

    def resolve_args(self, given: dict[str, str]) -> dict[str, str]:
        """Defaults filled in; unknown names and missing required variables are errors."""
        known = {v.name: v for v in self.variables}
        unknown = sorted(set(given) - set(known))
        if unknown:
            raise VisError(f"unknown argument(s) {', '.join(unknown)}; this script takes: "
                           + (", ".join(known) or "no arguments"))
        out: dict[str, str] = {}
        missing = []
        for v in self.variables:
            if v.name in given:
                value = given[v.name]
                if v.valid_values and value not in v.valid_values:
                    raise VisError(f"argument {v.name}={value!r} is not one of {list(v.valid_values)}")
                out[v.name] = value
            elif v.default is not None:
                out[v.name] = v.default
            else:
                missing.append(v.name)
        if missing:
            raise VisError(f"Missing required argument(s): {', '.join(missing)}")
        return out

    def funcs_to_execute(self, given: dict[str, str]) -> list[FuncToExecute]:
        values = self.resolve_args(given)
        calls = []
        for output, spec in (*self.global_funcs, *self.widget_funcs):
            args = {}
            for param, variable, literal in spec.args:
                args[param] = values[variable] if variable is not None else (literal or "")
            calls.append(FuncToExecute(spec.name, args, output))
        return calls


def _default_value(raw: Any) -> str | None:
    # Pixie's current files use a string; older ones wrap it as {"value": "..."}.
    if raw is None:
        return None
    if isinstance(raw, dict):
        raw = raw.get("value")
        if raw is None:
            return None
    return str(raw)


def _func_spec(raw: Any, where: str) -> FuncSpec:
    if not isinstance(raw, dict) or not isinstance(raw.get("name"), str):
        raise VisError(f"{where}: 'func' needs a 'name'")
    args = []
    for a in raw.get("args", []) or []:
        if not isinstance(a, dict) or "name" not in a:
            raise VisError(f"{where}: every func arg needs a 'name'")
        args.append((str(a["name"]), a.get("variable"), a.get("value")))
    return FuncSpec(raw["name"], tuple(args))


def parse_vis(text: str | None) -> Vis:
    if text is None or not text.strip():
        return Vis()
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as e:
        raise VisError(f"vis.json line {e.lineno} column {e.colno}: {e.msg}") from e
    if not isinstance(doc, dict):
        raise VisError("vis.json must hold a JSON object")
    variables = []
    for i, v in enumerate(doc.get("variables", []) or []):
        if not isinstance(v, dict) or "name" not in v:
            raise VisError(f"variables[{i}] needs a 'name'")
        variables.append(
            Variable(
                name=str(v["name"]),
                type=str(v.get("type", "PX_STRING")),
                description=str(v.get("description", "")),
                default=_default_value(v.get("defaultValue")),
                valid_values=tuple(str(x) for x in v.get("validValues", []) or []),
            )
        )
    global_funcs = []
    for i, g in enumerate(doc.get("globalFuncs", []) or []):
        where = f"globalFuncs[{i}]"
        if not isinstance(g, dict) or "outputName" not in g:
            raise VisError(f"{where} needs an 'outputName'")
        global_funcs.append((str(g["outputName"]), _func_spec(g.get("func"), where)))
    widgets = []
    widget_funcs = []
    for i, w in enumerate(doc.get("widgets", []) or []):
        if not isinstance(w, dict):
            raise VisError(f"widgets[{i}] must be an object")
        name = str(w.get("name") or f"widget_{i}")
        spec = dict(w.get("displaySpec") or {})
        wtype = str(spec.get("@type", "")).rsplit(".", 1)[-1] or "Table"
        if "func" in w:
            widget_funcs.append((name, _func_spec(w["func"], f"widgets[{i}]")))
            output = name
        else:
            output = str(w.get("globalFuncOutputName", ""))
        pos = {k: int(v) for k, v in (w.get("position") or {}).items() if isinstance(v, int | float)}
        widgets.append(Widget(name, wtype, pos, spec, output))
    return Vis(tuple(variables), tuple(global_funcs), tuple(widget_funcs), tuple(widgets))
