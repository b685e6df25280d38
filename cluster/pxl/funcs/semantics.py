"""Semantic-type inference rules of Pixie's operators and aggregates (pxl_surface §3)."""

from __future__ import annotations

from collections.abc import Sequence

from cluster.pxl.types import ST_NONE

#: Semantic types that survive + and - when both sides have them.
ADDITIVE = frozenset({
    "ST_BYTES", "ST_DURATION_NS", "ST_THROUGHPUT_PER_NS", "ST_THROUGHPUT_BYTES_PER_NS", "ST_PERCENT",
})

#: Semantic types a sum keeps (a sum of durations is no longer one duration).
SUM_KEEPS = frozenset({"ST_BYTES", "ST_THROUGHPUT_PER_NS", "ST_THROUGHPUT_BYTES_PER_NS", "ST_PERCENT"})


def additive(dtypes: Sequence[str], semantics: Sequence[str]) -> str:
    a, b = semantics
    if a == b and a in ADDITIVE:
        return a
    return ST_NONE


def divide(dtypes: Sequence[str], semantics: Sequence[str]) -> str:
    num, den = semantics
    if den == "ST_DURATION_NS":
        return "ST_THROUGHPUT_BYTES_PER_NS" if num == "ST_BYTES" else "ST_THROUGHPUT_PER_NS"
    return ST_NONE


def same_or_none(dtypes: Sequence[str], semantics: Sequence[str]) -> str:
    """px.select: the branches' common semantic type."""
    a, b = semantics[1], semantics[2]
    return a if a == b else ST_NONE


def keep_input(dtypes: Sequence[str], semantics: Sequence[str]) -> str:
    return semantics[0] if semantics else ST_NONE


def sum_rule(dtypes: Sequence[str], semantics: Sequence[str]) -> str:
    return semantics[0] if semantics[0] in SUM_KEEPS else ST_NONE


def quantiles_rule(dtypes: Sequence[str], semantics: Sequence[str]) -> str:
    return "ST_DURATION_NS_QUANTILES" if semantics[0] == "ST_DURATION_NS" else "ST_QUANTILES"
