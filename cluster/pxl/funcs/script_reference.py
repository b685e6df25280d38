"""_script_reference: the JSON deep link px.script_reference compiles into, built column-wise."""

from __future__ import annotations

import json
from collections.abc import Sequence

import pyarrow as pa
import pyarrow.compute as pc

from cluster.pxl.funcs.arrays import is_scalar, py
from cluster.pxl.funcs.registry import EvalContext, Registry, ScalarFunc, Signature, Value, fixed_semantic
from cluster.pxl.types import STRING

_SIMPLE_ESCAPES = (("\\", "\\\\"), ('"', '\\"'), ("\n", "\\n"), ("\r", "\\r"), ("\t", "\\t"))


def json_string(v: Value) -> Value:
    """Each value as a JSON string literal (quoted, escaped), vectorised."""
    if is_scalar(v):
        return pa.scalar(json.dumps(py(v), ensure_ascii=False))
    if pc.any(pc.match_substring_regex(v, r"[\x00-\x08\x0b\x0c\x0e-\x1f]")).as_py():
        return pa.array([json.dumps(x, ensure_ascii=False) for x in v.to_pylist()])
    for raw, esc in _SIMPLE_ESCAPES:
        v = pc.replace_substring(v, raw, esc)
    return pc.binary_join_element_wise('"', v, '"', "")


def _script_reference(ctx: EvalContext, args: Sequence[Value], sig: Signature, n: int) -> Value:
    label, script, *kv = args
    parts: list[Value] = ['{"label":', json_string(label), ',"script":', json_string(script), ',"args":{']
    for i in range(0, len(kv), 2):
        if i:
            parts.append(",")
        parts += [json_string(kv[i]), ":", json_string(kv[i + 1])]
    parts.append("}}")
    if all(isinstance(p, str) or is_scalar(p) for p in parts):
        return pa.scalar("".join(p if isinstance(p, str) else p.as_py() for p in parts))
    return pc.binary_join_element_wise(*parts, "")


def register(reg: Registry) -> None:
    reg.add(ScalarFunc("_script_reference", (Signature((STRING, STRING), STRING),), _script_reference,
                       fixed_semantic("ST_SCRIPT_REFERENCE"), variadic=STRING,
                       doc='{"label","script","args"} deep link'))
