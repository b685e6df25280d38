"""PxL: compile Pixie's Pythonic dataframe language and run it over Arrow.

    query = compile_pxl(source, now_ns=..., schemas={...})            # script mode
    query = compile_pxl(source, funcs=[FuncToExecute(...)], ...)      # function (vis) mode
    for name, table in execute(query, table_source, metadata_source): ...
    execute_distributed(query, [(tables, metadata), ...])             # PEM fragments + Kelvin merge

The names load lazily: the TUI imports cluster.pxl.vis on start-up and must not pay for the
compiler and engine it never uses (about 150 ms of the first frame).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from cluster.pxl.compiler import compile_pxl
    from cluster.pxl.errors import PxlCompileError, PxlError, PxlRuntimeError
    from cluster.pxl.exec import execute
    from cluster.pxl.ir import CompiledQuery
    from cluster.pxl.planner import execute_distributed
    from cluster.pxl.sources import EntityMetadataSource, MetadataSource, TableSource, VizierInfo

_WHERE = {
    "compile_pxl": "cluster.pxl.compiler",
    "PxlCompileError": "cluster.pxl.errors",
    "PxlError": "cluster.pxl.errors",
    "PxlRuntimeError": "cluster.pxl.errors",
    "execute": "cluster.pxl.exec",
    "execute_distributed": "cluster.pxl.planner",
    "CompiledQuery": "cluster.pxl.ir",
    "EntityMetadataSource": "cluster.pxl.sources",
    "MetadataSource": "cluster.pxl.sources",
    "TableSource": "cluster.pxl.sources",
    "VizierInfo": "cluster.pxl.sources",
}

__all__ = [
    "CompiledQuery",
    "EntityMetadataSource",
    "MetadataSource",
    "PxlCompileError",
    "PxlError",
    "PxlRuntimeError",
    "TableSource",
    "VizierInfo",
    "compile_pxl",
    "execute",
    "execute_distributed",
]


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'cluster.pxl' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
