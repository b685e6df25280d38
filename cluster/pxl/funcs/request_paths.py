"""Request-path clustering: px._build_request_path_clusters (UDA), px._predict_request_path_cluster
and px._match_endpoint.

Pixie fits a clustering of HTTP request paths so that ``/users/123/orders/9f1c...`` and
``/users/77/orders/aa01...`` count as one endpoint ``/users/*/orders/*``.  pxtui's own algorithm
(Pixie's is not reproduced; the contract is the same):

1. A path is normalised: the query string and fragment are dropped, and it is split on '/' into
   segments (empty segments from repeated or trailing slashes are dropped).
2. Every segment that looks like an identifier becomes '*': all digits, a UUID, hex of at least
   8 characters containing a digit, or a token of at least 16 characters mixing letters and digits.
3. Paths are grouped by depth.  Walking positions left to right, the paths that share the same
   template prefix are looked at together; if the literal segments they have at this position take
   more than :data:`MAX_LITERALS` distinct values, the position is an id-like parameter and
   becomes '*' for all of them (e.g. user names).
4. The clustering is the sorted list of distinct templates, as JSON
   ``{"version": 1, "templates": [...]}``.

Prediction maps a path to the most specific template (fewest '*') of its depth that matches it; a
path no template matches falls back to its own step-2 template, so unseen paths still lose their ids.
A template matches a path when they have the same depth and every non-'*' segment is equal.
"""

from __future__ import annotations

import json
import re
from collections import defaultdict
from collections.abc import Iterable, Sequence

import pyarrow as pa

from cluster.pxl.funcs.registry import (
    AggregateFunc,
    EvalContext,
    Grouping,
    Registry,
    ScalarFunc,
    Signature,
    Value,
)
from cluster.pxl.types import BOOLEAN, STRING

WILDCARD = "*"
#: More distinct literal segments than this at one position (under one prefix) makes it a parameter.
MAX_LITERALS = 10
CLUSTERING_VERSION = 1

_ID_PATTERNS = (
    re.compile(r"[0-9]+"),
    re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"),
    re.compile(r"(?=[0-9a-fA-F]*[0-9])[0-9a-fA-F]{8,}"),
    re.compile(r"(?=.*[0-9])(?=.*[A-Za-z])[A-Za-z0-9_\-=.~]{16,}"),
)


def segments(path: str) -> list[str]:
    """Path segments without query string, fragment or empty pieces."""
    path = path.split("?", 1)[0].split("#", 1)[0]
    return [s for s in path.split("/") if s]


def looks_like_id(segment: str) -> bool:
    return any(p.fullmatch(segment) for p in _ID_PATTERNS)


def _id_template(segs: Sequence[str]) -> tuple[str, ...]:
    return tuple(WILDCARD if looks_like_id(s) else s for s in segs)


def _render(template: Sequence[str]) -> str:
    return "/" + "/".join(template)


def _generalise(rows: list[list[str]], pos: int) -> None:
    """Step 3 over rows of one depth that share the template prefix [0, pos)."""
    if not rows or pos >= len(rows[0]):
        return
    literals = {r[pos] for r in rows if r[pos] != WILDCARD}
    if len(literals) > MAX_LITERALS:
        for r in rows:
            r[pos] = WILDCARD
    by_segment: dict[str, list[list[str]]] = defaultdict(list)
    for r in rows:
        by_segment[r[pos]].append(r)
    for group in by_segment.values():
        _generalise(group, pos + 1)


def build_clustering(paths: Iterable[str]) -> dict[str, object]:
    """The clustering (steps 1-4) of ``paths``, as the dict that is serialised to JSON."""
    by_depth: dict[int, list[list[str]]] = defaultdict(list)
    for tmpl in {_id_template(segments(p)) for p in paths}:
        by_depth[len(tmpl)].append(list(tmpl))
    templates: set[str] = set()
    for rows in by_depth.values():
        _generalise(rows, 0)
        templates.update(_render(r) for r in rows)
    return {"version": CLUSTERING_VERSION, "templates": sorted(templates)}


def match_endpoint(path: str, pattern: str) -> bool:
    """True if ``path`` has the template's depth and equals it on every non-'*' segment."""
    segs, tmpl = segments(path), segments(pattern)
    return len(segs) == len(tmpl) and all(t in (WILDCARD, s) for s, t in zip(segs, tmpl, strict=True))


class Clustering:
    """A parsed clustering JSON, indexed by depth for prediction."""

    def __init__(self, text: str) -> None:
        self.by_depth: dict[int, list[tuple[str, ...]]] = defaultdict(list)
        try:
            doc = json.loads(text)
            templates = doc.get("templates", []) if isinstance(doc, dict) else []
        except ValueError:
            templates = []
        for t in templates:
            if isinstance(t, str):
                segs = tuple(segments(t))
                self.by_depth[len(segs)].append(segs)
        for group in self.by_depth.values():  # most specific first, then alphabetical
            group.sort(key=lambda segs: (segs.count(WILDCARD), segs))

    def predict(self, path: str) -> str:
        segs = segments(path)
        for tmpl in self.by_depth.get(len(segs), ()):
            if all(t in (WILDCARD, s) for s, t in zip(segs, tmpl, strict=True)):
                return _render(tmpl)
        return _render(_id_template(segs))


# ---- registry entries -------------------------------------------------------------------------


def _build_uda(values: pa.Array, g: Grouping, sig: Signature) -> pa.Array:
    groups: list[list[str]] = [[] for _ in range(g.n_groups)]
    for gid, path in zip(g.gid.to_pylist(), values.to_pylist(), strict=True):
        groups[gid].append(path)
    return pa.array([json.dumps(build_clustering(p), separators=(",", ":")) for p in groups], pa.string())


def _as_list(v: Value, n: int) -> list:
    return v.to_pylist() if isinstance(v, pa.Array) else [v.as_py()] * n


def _predict(ctx: EvalContext, args: Sequence[Value], sig: Signature, n: int) -> Value:
    paths, models = args
    if isinstance(paths, pa.Scalar) and isinstance(models, pa.Scalar):
        return pa.scalar(Clustering(models.as_py()).predict(paths.as_py()), pa.string())
    models_seen: dict[str, Clustering] = {}
    answers: dict[tuple[str, str], str] = {}  # request paths repeat a lot: predict each once
    out = []
    for path, model in zip(_as_list(paths, n), _as_list(models, n), strict=True):
        key = (model, path)
        got = answers.get(key)
        if got is None:
            c = models_seen.get(model)
            if c is None:
                c = models_seen[model] = Clustering(model)
            got = answers[key] = c.predict(path)
        out.append(got)
    return pa.array(out, pa.string())


def _match(ctx: EvalContext, args: Sequence[Value], sig: Signature, n: int) -> Value:
    paths, patterns = args
    if isinstance(paths, pa.Scalar) and isinstance(patterns, pa.Scalar):
        return pa.scalar(match_endpoint(paths.as_py(), patterns.as_py()), pa.bool_())
    return pa.array([match_endpoint(p, t) for p, t in zip(_as_list(paths, n), _as_list(patterns, n),
                                                           strict=True)], pa.bool_())


def register(reg: Registry) -> None:
    reg.add(AggregateFunc("_build_request_path_clusters", (Signature((STRING,), STRING),), _build_uda,
                          doc='request-path clustering as JSON {"version":1,"templates":[...]}'))
    reg.add(ScalarFunc("_predict_request_path_cluster", (Signature((STRING, STRING), STRING),), _predict,
                       doc="the endpoint template of a path under a clustering JSON"))
    reg.add(ScalarFunc("_match_endpoint", (Signature((STRING, STRING), BOOLEAN),), _match,
                       doc="true if the path matches the endpoint template ('*' = one segment)"))
