"""px.vis, px.plugin, and the Pixie builtins pxtui refuses with a reason (pxl_surface.md §1, §8).

* ``@px.vis.vega(spec)`` attaches a Vega spec to a function in Pixie; nothing in pxtui reads it, so
  the decorator is accepted (a string literal spec, one decorator per function) and changes nothing.
* ``px.plugin.start_time`` / ``end_time`` come from a plugin configuration (Pixie's plugin runner
  sets them).  pxtui has no plugin runner, so, as Pixie does without a config, every attribute of
  px.plugin is a compile error with Pixie's message.
* ``px._HeapGrowthStacks`` reads tcmalloc's heap-growth profile; pxtui agents are Python processes
  with no tcmalloc, so there is nothing honest to return and it is a compile error saying so.
* ``px.pprof`` builds a pprof profile from (stack_trace, count, ...) rows: a multi-column aggregate,
  which pxtui's engine (one input column per aggregate) cannot run, so it is a compile error too.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from typing import TYPE_CHECKING

from cluster.pxl.compiler.objects import Args, Builtin, ExprValue, Kwargs, Module, PxlObject, error

if TYPE_CHECKING:
    from cluster.pxl.compiler.evaluator import Evaluator

PLUGIN_NO_CONFIG = "No plugin config found. Make sure the script is run in a plugin context."
HEAP_GROWTH_UNSUPPORTED = (
    "px._HeapGrowthStacks is not available in pxtui: it reports tcmalloc heap-growth stacks, and "
    "pxtui agents are Python processes that do not use tcmalloc")
PPROF_UNSUPPORTED = (
    "px.pprof is not available in pxtui: it aggregates several columns (stack trace and count) into "
    "one profile, and pxtui aggregates take exactly one column")


@dataclass(eq=False)
class VisDecorator(PxlObject):
    """What px.vis.vega(spec) returns: applied to a function, it returns the function unchanged."""

    spec: str
    type_name = "px.vis.vega decorator"


@dataclass(eq=False)
class PluginModule(PxlObject):
    """px.plugin without a plugin configuration: any attribute is Pixie's "no config" error."""

    type_name = "module px.plugin"

    def get_attr(self, ev: Evaluator, name: str, node: ast.AST) -> PxlObject:
        raise error(node, PLUGIN_NO_CONFIG)


@dataclass(eq=False)
class Refused(PxlObject):
    """A builtin Pixie has and pxtui cannot honestly provide: using it at all is the error."""

    name: str
    reason: str

    def describe(self) -> str:
        return self.name

    def call(self, ev: Evaluator, args: Args, kwargs: Kwargs, node: ast.AST) -> PxlObject:
        raise error(node, self.reason)


def _vega(ev: Evaluator, args: Args, kwargs: Kwargs, node: ast.AST) -> PxlObject:
    spec = kwargs.get("vega_spec") if not args else args[0]
    if len(args) + len(kwargs) != 1 or not (isinstance(spec, ExprValue) and spec.is_literal
                                            and isinstance(spec.value, str)):
        raise error(node, "px.vis.vega takes one argument, vega_spec, a string literal")
    return VisDecorator(spec.value)


def vis_plugin_members() -> dict[str, PxlObject]:
    return {
        "vis": Module("px.vis", {"vega": Builtin("px.vis.vega", _vega)}),
        "plugin": PluginModule(),
        "_HeapGrowthStacks": Refused("px._HeapGrowthStacks", HEAP_GROWTH_UNSUPPORTED),
        "pprof": Refused("px.pprof", PPROF_UNSUPPORTED),
    }
