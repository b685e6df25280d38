"""PxL: compile Pixie's Pythonic dataframe language and run it over Arrow.

    query = compile_pxl(source, now_ns=..., schemas={...})            # script mode
    query = compile_pxl(source, funcs=[FuncToExecute(...)], ...)      # function (vis) mode
    for name, table in execute(query, table_source, metadata_source): ...
"""

from __future__ import annotations

from cluster.pxl.compiler import compile_pxl
from cluster.pxl.errors import PxlCompileError, PxlError, PxlRuntimeError
from cluster.pxl.exec import execute
from cluster.pxl.ir import CompiledQuery
from cluster.pxl.sources import EntityMetadataSource, MetadataSource, TableSource

__all__ = [
    "CompiledQuery",
    "EntityMetadataSource",
    "MetadataSource",
    "PxlCompileError",
    "PxlError",
    "PxlRuntimeError",
    "TableSource",
    "compile_pxl",
    "execute",
]
