"""Plan nodes that exist only in a distributed plan (see cluster.pxl.planner).

A PEM fragment ends in a PartialAgg (states per group) or ships its rows as they are; the Kelvin
fragment starts from Receive nodes, which read what the PEMs shipped, and FinalAgg merges partial
states and finalises them.  They subclass ir.PlanNode so the same Runner executes both halves.
"""

from __future__ import annotations

from dataclasses import dataclass

import pyarrow as pa

from cluster.pxl import ir


@dataclass(frozen=True, eq=False, kw_only=True)
class PartialAgg(ir.PlanNode):
    """Per-agent half of an ir.Agg: group keys, then the state columns of each aggregate.

    ``relation`` is the final aggregate's relation (for describe()); the shipped schema is
    :func:`cluster.pxl.exec.aggregate.partial_schema`."""

    parent: ir.PlanNode
    groups: tuple[str, ...]
    aggs: tuple[ir.AggSpec, ...]

    @property
    def parents(self) -> tuple[ir.PlanNode, ...]:
        return (self.parent,)


@dataclass(frozen=True, eq=False, kw_only=True)
class FinalAgg(ir.PlanNode):
    """Kelvin half of an ir.Agg: merges the PEMs' partial states, then finalises them."""

    parent: ir.PlanNode
    groups: tuple[str, ...]
    aggs: tuple[ir.AggSpec, ...]

    @property
    def parents(self) -> tuple[ir.PlanNode, ...]:
        return (self.parent,)


@dataclass(frozen=True, eq=False, kw_only=True)
class Receive(ir.PlanNode):
    """The tables every agent shipped for ``stream``, concatenated in agent order.

    With ``order_by`` and more than one agent, rows are merged by that column (stable), so a head(n)
    above takes the oldest rows across agents, as it would on one node."""

    stream: str
    schema: pa.Schema
    order_by: str | None = None
