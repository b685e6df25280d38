"""``import pxviews``: a library of PxL functions (cluster/pxl/pxviews.pxl), compiled on import.

The library is evaluated by the importing script's own evaluator, in a scope of its own that sees
only the PxL builtins, so its functions read the same schemas and the same ``now`` as the script.
Errors inside a library function are reported at the script's call, with the function's name and
the library line, because a user cannot act on a location inside pxviews.pxl alone.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from cluster.pxl.compiler.objects import Args, Kwargs, Module, PxlObject, UserFunction, error
from cluster.pxl.compiler.parse import parse_source
from cluster.pxl.errors import PxlCompileError, PxlError

if TYPE_CHECKING:
    from cluster.pxl.compiler.evaluator import Evaluator

LIBRARY_PATH = Path(__file__).resolve().parent.parent / "pxviews.pxl"


@dataclass(eq=False)
class LibraryFunction(PxlObject):
    """A pxviews function as the script sees it."""

    fn: UserFunction
    type_name = "function"

    def describe(self) -> str:
        return f"function pxviews.{self.fn.name}"

    def call(self, ev: Evaluator, args: Args, kwargs: Kwargs, node: ast.AST) -> PxlObject:
        try:
            return ev.call_user_function(self.fn, args, kwargs, node)
        except PxlError as e:
            if e.line and getattr(node, "lineno", None) == e.line and e.message.startswith(f"{self.fn.name}()"):
                raise  # an argument error located at the script's own call
            raise error(node, f"in pxviews.{self.fn.name} (pxviews.pxl line {e.line}): "
                              f"{e.message}") from None


@dataclass(eq=False)
class PxviewsModule(Module):
    """Loads the library the first time a member is asked for."""

    loaded: dict[str, PxlObject] | None = field(default=None)

    def get_attr(self, ev: Evaluator, name: str, node: ast.AST) -> PxlObject:
        if self.loaded is None:
            self.loaded = load_library(ev, node)
            self.members = self.loaded
        if name not in self.members:
            public = ", ".join(sorted(n for n in self.members if not n.startswith("_")))
            raise error(node, f"pxviews has no function '{name}'; it provides: {public}")
        return self.members[name]


def load_library(ev: Evaluator, node: ast.AST) -> dict[str, PxlObject]:
    from cluster.pxl.compiler.evaluator import Scope

    try:
        tree = parse_source(LIBRARY_PATH.read_text())
    except PxlCompileError as e:
        raise error(node, f"pxviews.pxl does not parse: {e}") from None
    scope = Scope(ev.module_scope.parent)  # the builtins only, not the script's names
    try:
        ev.exec_block(tree.body, scope, in_function=False)
    except PxlError as e:
        raise error(node, f"pxviews.pxl line {e.line}: {e.message}") from None
    return {n: LibraryFunction(v) for n, v in scope.vars.items() if isinstance(v, UserFunction)}


def pxviews_module() -> PxviewsModule:
    return PxviewsModule("pxviews", {})
