"""JSON plucks.  Parsing is per distinct value (quantile and header columns repeat a lot)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import pyarrow as pa

from cluster.pxl.funcs.arrays import is_scalar, py, rowwise, unique_map
from cluster.pxl.funcs.registry import EvalContext, Registry, ScalarFunc, Signature, Value
from cluster.pxl.types import FLOAT64, INT64, STRING

N, F, S = INT64, FLOAT64, STRING
_MISSING = object()


def _reject_constant(name: str) -> Any:
    raise ValueError(name)


def _first_wins(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    # rapidjson's FindMember returns the first of duplicate keys; json's default keeps the last.
    out: dict[str, Any] = {}
    for k, v in pairs:
        out.setdefault(k, v)
    return out


def parse_json(s: str) -> Any:
    try:
        return json.loads(s, object_pairs_hook=_first_wins, parse_constant=_reject_constant)
    except (ValueError, RecursionError):
        return _MISSING


def dump_compact(v: Any) -> str:
    return json.dumps(v, separators=(",", ":"), ensure_ascii=False)


def _as_text(v: Any) -> str:
    if v is _MISSING or v is None:
        return ""
    return v if isinstance(v, str) else dump_compact(v)


def _member(doc: str, key: str) -> Any:
    obj = parse_json(doc)
    if not isinstance(obj, dict):
        return _MISSING
    return obj.get(key, _MISSING)


def pluck_one(doc: str, key: str) -> str:
    return _as_text(_member(doc, key))


def pluck_float64_one(doc: str, key: str) -> float:
    v = _member(doc, key)
    return v if isinstance(v, float) else 0.0


def pluck_int64_one(doc: str, key: str) -> int:
    v = _member(doc, key)
    return v if isinstance(v, int) and not isinstance(v, bool) and -(2**63) <= v < 2**63 else 0


def pluck_array_one(doc: str, idx: int) -> str:
    arr = parse_json(doc)
    if not isinstance(arr, list) or idx < 0 or idx >= len(arr):
        return ""
    v = arr[idx]
    return v if isinstance(v, str) else dump_compact(v)


def _plucker(one, out: pa.DataType):
    def impl(ctx: EvalContext, args: Sequence[Value], sig: Signature, n: int) -> Value:
        doc, key = args
        if is_scalar(key):
            k = py(key)
            return unique_map(doc, lambda d: one(d, k), out)
        return rowwise(one, args, n, out)

    return impl


def register(reg: Registry) -> None:
    reg.add(ScalarFunc("pluck", (Signature((S, S), S),), _plucker(pluck_one, pa.string()),
                       doc="value of key as text; '' if missing"))
    reg.add(ScalarFunc("pluck_float64", (Signature((S, S), F),),
                       _plucker(pluck_float64_one, pa.float64()), doc="double value of key, else 0.0"))
    reg.add(ScalarFunc("pluck_int64", (Signature((S, S), N),),
                       _plucker(pluck_int64_one, pa.int64()), doc="int value of key, else 0"))
    reg.add(ScalarFunc("pluck_array", (Signature((S, N), S),),
                       _plucker(pluck_array_one, pa.string()), doc="element idx of a JSON array"))
