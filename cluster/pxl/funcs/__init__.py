"""Every scalar UDF and aggregate PxL can call, in one registry (see registry.py)."""

from __future__ import annotations

from cluster.pxl.funcs import (
    aggregates,
    conditional,
    json_funcs,
    math_funcs,
    metadata_funcs,
    operators,
    script_reference,
    strings,
    upid,
)
from cluster.pxl.funcs.registry import (
    AggregateFunc,
    EvalContext,
    Grouping,
    Registry,
    ScalarFunc,
    Signature,
    Value,
)


def build_registry() -> Registry:
    reg = Registry()
    for module in (operators, strings, json_funcs, math_funcs, conditional, upid, metadata_funcs,
                   script_reference, aggregates):
        module.register(reg)
    return reg


REGISTRY = build_registry()

__all__ = [
    "REGISTRY",
    "AggregateFunc",
    "EvalContext",
    "Grouping",
    "Registry",
    "ScalarFunc",
    "Signature",
    "Value",
    "build_registry",
]
