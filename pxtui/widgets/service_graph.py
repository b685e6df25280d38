"""vis.json `Graph` and `RequestGraph` as a layered text service map.

A 2-D node-and-line drawing of a dozen services is unreadable at 80 columns, so the graph is laid
out in layers instead: layer 1 holds the services nothing calls (entry points), layer n+1 what
layer n calls, and each service lists its outgoing edges as a tree with their labels (weight,
p50/p90/p99, error rate, requests per second). Edges are coloured green/yellow/red by the
colour column against the thresholds, and also marked "!" / "!!", so the map reads without
colour. j/k move a cursor from edge to edge.

Graph: `adjacencyList.fromColumn/toColumn`, `edgeWeightColumn`, `edgeColorColumn`,
`edgeThresholds.mediumThreshold/highThreshold`, `edgeHoverInfo[]` (extra label columns).
RequestGraph: a node is the service, else the pod, else the IP of each side; edges carry
p50/p90/p99, error rate and rps and are coloured by error rate.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Any, ClassVar

from rich.text import Text
from textual.binding import Binding, BindingType

from pxtui.format import FormattedTable
from pxtui.widgets.chart_canvas import fit
from pxtui.widgets.vis_panel import VisPanel

REQUEST_ERROR_MEDIUM = 0.01  # 1 % of requests failing: yellow
REQUEST_ERROR_HIGH = 0.05  # 5 %: red
GRAPH_DEFAULT_MEDIUM = 100.0  # Pixie's defaults for edgeThresholds
GRAPH_DEFAULT_HIGH = 200.0


@dataclass
class Edge:
    src: str
    dst: str
    labels: list[str] = field(default_factory=list)
    level: int = 0  # 0 ok, 1 medium, 2 high (colour and "!" marks)


def layers(nodes: list[str], edges: list[Edge]) -> list[list[str]]:
    """Breadth-first layers from the nodes nothing points to; cycles start where they are first met."""
    out_edges: dict[str, list[str]] = {n: [] for n in nodes}
    indeg = dict.fromkeys(nodes, 0)
    for e in edges:
        out_edges[e.src].append(e.dst)
        if e.src != e.dst:
            indeg[e.dst] += 1
    depth: dict[str, int] = {}
    starts = [n for n in nodes if indeg[n] == 0] + nodes  # then anything left (pure cycles)
    for start in starts:
        if start in depth:
            continue
        depth[start] = 0 if indeg[start] == 0 else max(depth.values(), default=-1) + 1
        queue = deque([start])
        while queue:
            n = queue.popleft()
            for m in out_edges[n]:
                if m not in depth:
                    depth[m] = depth[n] + 1
                    queue.append(m)
    result: list[list[str]] = [[] for _ in range(max(depth.values(), default=-1) + 1)]
    for n in nodes:
        result[depth[n]].append(n)
    return [sorted(layer) for layer in result if layer]


def _level(value: Any, medium: float, high: float) -> int:
    try:
        v = float(value)
    except (TypeError, ValueError):
        return 0
    return 2 if v >= high else 1 if v >= medium else 0


LEVEL_STYLE = ("green", "yellow", "bold red")
LEVEL_MARK = ("", "!", "!!")


class ServiceGraph(VisPanel):
    """Both graph widget types; `request_graph` picks how edges and labels are read."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("down,j", "move(1)", "Next edge", show=False),
        Binding("up,k", "move(-1)", "Previous edge", show=False),
    ]

    def __init__(self, widget: Any, *, id: str | None = None) -> None:
        super().__init__(widget, id=id)
        self.request_graph = widget.type == "RequestGraph"
        self.nodes: list[str] = []
        self.edges: list[Edge] = []
        self.cursor = 0  # index into the edges in drawing order

    # ---------------------------------------------------------------- data

    def prepare(self, model: FormattedTable) -> None:
        edges = self._request_edges(model) if self.request_graph else self._graph_edges(model)
        merged: dict[tuple[str, str], Edge] = {}
        for e in edges:  # one edge per pair: the first row wins (scripts aggregate already)
            merged.setdefault((e.src, e.dst), e)
        self.edges = list(merged.values())
        self.nodes = sorted({n for e in self.edges for n in (e.src, e.dst)})
        self.cursor = min(self.cursor, max(0, len(self.edges) - 1))

    def _texts(self, model: FormattedTable, column: str) -> list[str]:
        """A column as displayed text (durations, percent, ... formatted)."""
        self.column(model, column)
        return model.text[model.columns.index(column)].to_pylist()

    def _graph_edges(self, model: FormattedTable) -> list[Edge]:
        adj = self.spec.get("adjacencyList") or {}
        src = [str(v) for v in self.column(model, adj.get("fromColumn")).to_pylist()]
        dst = [str(v) for v in self.column(model, adj.get("toColumn")).to_pylist()]
        label_cols: list[str] = []
        weight = self.spec.get("edgeWeightColumn")
        if weight:
            label_cols.append(weight)
        for c in self.spec.get("edgeHoverInfo") or []:
            if c not in label_cols and c in model.columns:
                label_cols.append(c)
        texts = {c: self._texts(model, c) for c in label_cols}
        colour_col = self.spec.get("edgeColorColumn")
        colours = self.column(model, colour_col).to_pylist() if colour_col else [None] * len(src)
        th = self.spec.get("edgeThresholds") or {}
        medium = float(th.get("mediumThreshold") or GRAPH_DEFAULT_MEDIUM)
        high = float(th.get("highThreshold") or GRAPH_DEFAULT_HIGH)
        if colour_col and self.semantic(model, colour_col) == "ST_DURATION_NS":
            medium, high = medium * 1e6, high * 1e6  # thresholds are in ms, the column in ns
        out = []
        for i, (s, d) in enumerate(zip(src, dst, strict=True)):
            labels = [f"{c} {texts[c][i]}" for c in label_cols]
            out.append(Edge(s, d, labels, _level(colours[i], medium, high) if colour_col else 0))
        return out

    def _request_edges(self, model: FormattedTable) -> list[Edge]:
        spec = self.spec

        def side(prefix: str) -> list[str]:
            cols = [spec.get(f"{prefix}ServiceColumn"), spec.get(f"{prefix}PodColumn"), spec.get(f"{prefix}IPColumn")]
            present = [self.column(model, c).to_pylist() for c in cols if c and c in model.columns]
            if not present:
                self.column(model, cols[0])  # raises: name the first missing column
            names = []
            for values in zip(*present, strict=True):
                names.append(next((str(v) for v in values if v not in (None, "", "[]")), "-"))
            return names

        src, dst = side("requestor"), side("responder")
        shown = [("p50", "p50Column"), ("p90", "p90Column"), ("p99", "p99Column"),
                 ("err", "errorRateColumn"), ("rps", "requestsPerSecondColumn")]
        texts = {k: self._texts(model, spec[c]) for k, c in shown if spec.get(c) and spec[c] in model.columns}
        err_col = spec.get("errorRateColumn")
        errors = model.raw.column(err_col).to_pylist() if err_col in model.columns else [None] * len(src)
        out = []
        for i, (s, d) in enumerate(zip(src, dst, strict=True)):
            labels = [f"{k} {t[i]}" for k, t in texts.items()]
            out.append(Edge(s, d, labels, _level(errors[i], REQUEST_ERROR_MEDIUM, REQUEST_ERROR_HIGH)))
        return out

    # ---------------------------------------------------------------- drawing

    def _ordered_edges(self) -> list[Edge]:
        order = {n: i for i, n in enumerate(n for layer in layers(self.nodes, self.edges) for n in layer)}
        return sorted(self.edges, key=lambda e: (order[e.src], order[e.dst]))

    def draw(self, width: int, height: int) -> list[Text]:
        g = self.glyphs
        if not self.edges:
            return [Text("no edges in this window", style="dim italic")]
        by_src: dict[str, list[Edge]] = {}
        for e in self._ordered_edges():
            by_src.setdefault(e.src, []).append(e)
        name_w = min(max(len(n) for n in self.nodes), max(8, width // 3))
        lines: list[Text] = [Text(f"{len(self.nodes)} services, {len(self.edges)} edges",
                                  style="dim", no_wrap=True, overflow="crop")]
        cursor_line = 0
        k = 0
        for depth, layer in enumerate(layers(self.nodes, self.edges), start=1):
            lines.append(Text(fit(f"layer {depth}", width, g.ellipsis), style="bold underline"))
            for node in layer:
                outs = by_src.get(node, [])
                head = Text(no_wrap=True, overflow="crop")
                head.append(fit(node, width - 2, g.ellipsis), style="bold")
                if not outs:
                    head.append("  (no calls out)", style="dim")
                lines.append(head)
                for j, e in enumerate(outs):
                    line = Text(no_wrap=True, overflow="crop")
                    branch = g.branch_last if j == len(outs) - 1 else g.branch
                    selected = k == self.cursor
                    style = LEVEL_STYLE[e.level] + (" reverse" if selected and self.has_focus else "")
                    line.append(f"  {branch}{g.arrow} ", style="dim")
                    line.append(fit(e.dst, name_w, g.ellipsis).ljust(name_w), style=style)
                    mark = LEVEL_MARK[e.level]
                    line.append(f" {mark:2} ", style=LEVEL_STYLE[e.level])
                    line.append("  ".join(e.labels), style="")
                    if selected:
                        cursor_line = len(lines)
                    lines.append(line)
                    k += 1
        # keep the selected edge on screen
        if cursor_line < self.top:
            self.top = cursor_line
        elif cursor_line >= self.top + height:
            self.top = cursor_line - height + 1
        return lines

    def action_move(self, delta: int) -> None:
        self.cursor = max(0, min(len(self.edges) - 1, self.cursor + delta))
        self.refresh()

    @property
    def selected_edge(self) -> Edge | None:
        ordered = self._ordered_edges()
        return ordered[self.cursor] if 0 <= self.cursor < len(ordered) else None
