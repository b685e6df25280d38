"""split and has_service_name: small string helpers whose results are JSON-aware."""

from __future__ import annotations

import json
from collections.abc import Sequence

import pyarrow as pa

from cluster.pxl.funcs.arrays import is_scalar, py, rowwise, unique_map
from cluster.pxl.funcs.json_funcs import dump_compact
from cluster.pxl.funcs.registry import EvalContext, Registry, ScalarFunc, Signature, Value
from cluster.pxl.types import BOOLEAN, STRING


def split_json(s: str, delim: str) -> str:
    """The pieces as a JSON array; an empty delimiter splits into characters (absl::StrSplit)."""
    pieces = list(s) if delim == "" else s.split(delim)
    if not pieces:  # "" split into characters: absl gives no pieces either
        return "[]"
    return dump_compact(pieces)


def has_service_name(service: str, name: str) -> bool:
    """service equals name, or service is a JSON array (a pod with several services) holding it."""
    if service == name:
        return True
    if not service.startswith("["):
        return False
    try:
        parsed = json.loads(service)
    except ValueError:
        return False
    return isinstance(parsed, list) and name in parsed


def _split(ctx: EvalContext, args: Sequence[Value], sig: Signature, n: int) -> Value:
    s, delim = args
    if is_scalar(delim):
        d = py(delim)
        return unique_map(s, lambda v: split_json(v, d), pa.string())
    return rowwise(split_json, args, n, pa.string())


def _has_service_name(ctx: EvalContext, args: Sequence[Value], sig: Signature, n: int) -> Value:
    service, name = args
    if is_scalar(name):
        want = py(name)
        return unique_map(service, lambda v: has_service_name(v, want), pa.bool_())
    return rowwise(has_service_name, args, n, pa.bool_())


def register(reg: Registry) -> None:
    reg.add(ScalarFunc("split", (Signature((STRING, STRING), STRING),), _split,
                       doc="JSON array of the pieces of s split on delim"))
    reg.add(ScalarFunc("has_service_name", (Signature((STRING, STRING), BOOLEAN),), _has_service_name,
                       doc="service == name, or name is in the JSON array service"))
