"""UDFs about the agent that runs the expression: asid() and _exec_host_num_cpus().

Like _exec_hostname they are never constant-folded: their value depends on which agent evaluates
them, which for a distributed query is only known at run time."""

from __future__ import annotations

import os
from collections.abc import Sequence

import pyarrow as pa

from cluster.pxl.funcs.registry import EvalContext, Registry, ScalarFunc, Signature, Value, fixed_semantic
from cluster.pxl.sources import AgentIdentitySource
from cluster.pxl.types import INT64


def _asid(ctx: EvalContext, args: Sequence[Value], sig: Signature, n: int) -> Value:
    """The agent's short id from the metadata source; 0 (never a valid asid) when it has none."""
    md = ctx.metadata
    return pa.scalar(int(md.asid()) if isinstance(md, AgentIdentitySource) else 0, pa.int64())


def _num_cpus(ctx: EvalContext, args: Sequence[Value], sig: Signature, n: int) -> Value:
    """CPUs of the host evaluating the expression (the node, for data read on a PEM)."""
    return pa.scalar(os.cpu_count() or 1, pa.int64())


def register(reg: Registry) -> None:
    reg.add(ScalarFunc("asid", (Signature((), INT64),), _asid, fixed_semantic("ST_ASID"), foldable=False,
                       doc="short id of the agent running the expression"))
    reg.add(ScalarFunc("_exec_host_num_cpus", (Signature((), INT64),), _num_cpus, foldable=False,
                       doc="CPU count of the host running the expression"))
