"""PxL compiler: Python ast -> PxL object model -> logical plan (cluster.pxl.ir).

Script mode (``funcs=None``) runs the top level and turns each px.display into a result table.
Function mode (``funcs`` given, from vis.json) runs the top level for its definitions, ignores
px.display, then calls each requested function with its string arguments converted by the
parameters' annotations; each returned DataFrame becomes the table named by ``output_name``.
px.debug tables are emitted in both modes.
"""

from __future__ import annotations

import ast
from collections.abc import Mapping, Sequence

import pyarrow as pa

from cluster.pxl import ir
from cluster.pxl.compiler.dataframe import DataFrame
from cluster.pxl.compiler.evaluator import Evaluator, PendingSink
from cluster.pxl.compiler.objects import ListValue, UserFunction, error
from cluster.pxl.compiler.parse import parse_source
from cluster.pxl.compiler.px_module import DataFrameType
from cluster.pxl.compiler.type_objects import TypeObject
from cluster.pxl.errors import PxlCompileError, PxlError
from cluster.pxl.vis import FuncToExecute


def compile_pxl(source: str, *, funcs: Sequence[FuncToExecute] | None = None, now_ns: int,
                schemas: Mapping[str, pa.Schema]) -> ir.CompiledQuery:
    tree = parse_source(source)
    ev = Evaluator(schemas, now_ns, function_mode=funcs is not None)
    try:
        ev.run_module(tree)
        if funcs is not None:
            for f in funcs:
                _run_function(ev, tree, f)
    except PxlError as e:
        raise PxlCompileError([e]) from None
    except (RecursionError, MemoryError):
        raise PxlCompileError([error(ev.current_stmt, "Script is nested too deeply")]) from None
    outputs = {f.output_name for f in funcs or ()}
    return ir.CompiledQuery(tuple(_unique_sinks(ev.sinks, outputs)), now_ns)


def _run_function(ev: Evaluator, tree: ast.Module, call: FuncToExecute) -> None:
    fn = ev.module_scope.vars.get(call.name)
    if not isinstance(fn, UserFunction):
        defined = sorted(n for n, v in ev.module_scope.vars.items() if isinstance(v, UserFunction))
        raise PxlError(f"Function '{call.name}' not found; the script defines: "
                       f"{', '.join(defined) or '(no functions)'}", 0, 0)
    unknown = sorted(set(call.args) - set(fn.params))
    if unknown:
        raise error(fn.node, f"Function '{fn.name}' has no parameter '{unknown[0]}'")
    kwargs = {}
    for param in fn.params:
        if param not in call.args:
            raise error(fn.node, f"Missing argument '{param}' for function '{fn.name}'")
        ann = fn.annotations.get(param)
        if ann is None:
            raise error(fn.node, f"Argument '{param}' of function '{fn.name}' has no type annotation; "
                                 f"annotate it (e.g. {param}: str) so its value can be converted")
        if not isinstance(ann, TypeObject) or isinstance(ann, DataFrameType) or ann.name == "list":
            raise error(fn.node, f"Argument '{param}' of function '{fn.name}' is annotated "
                                 f"{ann.describe()}, which cannot be passed as a script argument")
        kwargs[param] = ann.convert(call.args[param], ev.now_ns, param, fn.node)
    result = ev.call_user_function(fn, [], kwargs, fn.node)
    frames = result.items if isinstance(result, ListValue) else [result]
    if not frames or not all(isinstance(f, DataFrame) for f in frames):
        raise error(fn.node, f"Function '{fn.name}' must return a DataFrame, got {result.describe()}")
    if isinstance(result, ListValue):
        for i, f in enumerate(frames):
            ev.sinks.append(PendingSink(f"{call.output_name}[{i}]", f.node, False))  # type: ignore[attr-defined]
    else:
        ev.sinks.append(PendingSink(call.output_name, result.node, False))  # type: ignore[attr-defined]


def _unique_sinks(pending: list[PendingSink], reserved: set[str]) -> list[ir.Sink]:
    """Debug/display names that clash get _1, _2, ...; function output names are kept as given."""
    taken = set(reserved)
    out = []
    for s in pending:
        if s.export is not None:  # makes no table, so takes no table name
            out.append(ir.Sink(s.name, s.node, s.export))
            continue
        name = s.name
        if name not in reserved or s.debug:
            if name in taken:
                i = 1
                while f"{name}_{i}" in taken:
                    i += 1
                name = f"{name}_{i}"
            taken.add(name)
        out.append(ir.Sink(name, s.node))
    return out


__all__ = ["PxlCompileError", "compile_pxl"]
