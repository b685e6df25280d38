"""Every scalar UDF and aggregate PxL can call, in one registry (see registry.py)."""

from __future__ import annotations

from cluster.pxl.funcs import (
    aggregates,
    conditional,
    conversions,
    enum_names,
    host_funcs,
    json_funcs,
    math_funcs,
    metadata_funcs,
    metadata_status,
    net_funcs,
    operators,
    pii,
    regex_funcs,
    request_paths,
    sample_uda,
    script_reference,
    sql_normalize,
    strings,
    text_funcs,
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
                   script_reference, aggregates, regex_funcs, text_funcs, enum_names, sql_normalize,
                   pii, net_funcs, host_funcs, conversions, metadata_status, request_paths, sample_uda):
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
