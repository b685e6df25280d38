"""vis.json `Graph` and `RequestGraph` as a service map drawn in the terminal, with its edge list.

The map is a layered drawing (pxtui/widgets/graph_layout.py, on grandalf's Sugiyama layout):
callers above what they call, crossings reduced, every edge its own line of box-drawing
characters (plain ASCII in ASCII mode) ending in an arrowhead, coloured green/yellow/red by the
colour column against the thresholds. Names are cut to fit, and a short label (the edge weight,
or a RequestGraph's p50) is written beside an arrowhead where there is room. Below the map (or
beside it, when the panel is wide) every edge is listed with all its labels and a "!" / "!!"
mark, so nothing depends on colour or on a name that had to be cut. j/k move a cursor from edge
to edge: the selected edge is drawn in heavy lines on the map and highlighted in the list.

Graph: `adjacencyList.fromColumn/toColumn`, `edgeWeightColumn`, `edgeColorColumn`,
`edgeThresholds.mediumThreshold/highThreshold`, `edgeHoverInfo[]` (extra label columns).
RequestGraph: a node is the service, else the pod, else the IP of each side; edges carry
p50/p90/p99, error rate and rps and are coloured by error rate.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

from rich.text import Text
from textual.binding import Binding, BindingType

from pxtui.format import FormattedTable
from pxtui.widgets.chart_canvas import fit
from pxtui.widgets.graph_layout import (
    ASCII_HEAVY,
    ASCII_LIGHT,
    HEAVY,
    LIGHT,
    Drawing,
    Layering,
    common_namespace,
    draw_graph,
    layer_graph,
)
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
    short: str = ""  # written on the map beside the arrowhead when there is room


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
        self.layering: Layering | None = None  # ranks and order: recomputed only when the edges change
        self._topology: tuple[tuple[str, str], ...] = ()
        self._drawn: dict[tuple[int, bool], Drawing] = {}  # by (width, ascii)
        self._order: list[int] = []  # edge indexes in list (and cursor) order
        self._follow = False  # scroll to the selected edge on the next draw (after j/k, not on refresh)

    # ---------------------------------------------------------------- data

    def prepare(self, model: FormattedTable) -> None:
        edges = self._request_edges(model) if self.request_graph else self._graph_edges(model)
        merged: dict[tuple[str, str], Edge] = {}
        for e in edges:  # one edge per pair: the first row wins (scripts aggregate already)
            merged.setdefault((e.src, e.dst), e)
        self.edges = list(merged.values())
        self.nodes = sorted({n for e in self.edges for n in (e.src, e.dst)})
        topology = tuple((e.src, e.dst) for e in self.edges)
        if topology != self._topology:  # a refresh with the same services keeps its layout
            self._topology = topology
            self.layering = layer_graph(self.nodes, list(topology)) if topology else None
            self._order = self._list_order()
        self._drawn.clear()
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
            short = texts[weight][i] if weight else ""
            out.append(Edge(s, d, labels, _level(colours[i], medium, high) if colour_col else 0, short))
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
        shown = [
            ("p50", "p50Column"),
            ("p90", "p90Column"),
            ("p99", "p99Column"),
            ("err", "errorRateColumn"),
            ("rps", "requestsPerSecondColumn"),
        ]
        texts = {k: self._texts(model, spec[c]) for k, c in shown if spec.get(c) and spec[c] in model.columns}
        err_col = spec.get("errorRateColumn")
        errors = model.raw.column(err_col).to_pylist() if err_col in model.columns else [None] * len(src)
        out = []
        for i, (s, d) in enumerate(zip(src, dst, strict=True)):
            labels = [f"{k} {t[i]}" for k, t in texts.items()]
            short = texts["p50"][i] if "p50" in texts else ""
            out.append(Edge(s, d, labels, _level(errors[i], REQUEST_ERROR_MEDIUM, REQUEST_ERROR_HIGH), short))
        return out

    # ---------------------------------------------------------------- drawing

    def _list_order(self) -> list[int]:
        """Edges top to bottom as the map draws them: by the caller's layer, then left to right."""
        lay = self.layering
        if lay is None:
            return []
        where = {s.node: (r, k) for r, layer in enumerate(lay.layers) for k, s in enumerate(layer) if s.node}
        return sorted(range(len(self.edges)), key=lambda i: (where[self.edges[i].src], where[self.edges[i].dst]))

    def _ordered_edges(self) -> list[Edge]:
        return [self.edges[i] for i in self._order]

    def drawing(self, width: int) -> Drawing | None:
        """The routed map for this width (cached until the data changes)."""
        if self.layering is None:
            return None
        g = self.glyphs
        key = (width, g.ascii)
        if key not in self._drawn:
            lines = ASCII_LIGHT if g.ascii else LIGHT
            self._drawn[key] = draw_graph(
                self.nodes, list(self._topology), width, lines, g.ellipsis, layering=self.layering
            )
        return self._drawn[key]

    def _map_lines(self, d: Drawing, width: int, selected: int | None) -> list[Text]:
        """The map as styled lines `width` wide: the drawing centred, heavy lines for the selected
        edge, and short labels beside arrowheads where the cells are free."""
        g = self.glyphs
        heavy = ASCII_HEAVY if g.ascii else HEAVY
        light = ASCII_LIGHT if g.ascii else LIGHT
        pad = max(0, (width - d.width) // 2)
        chars = [[" "] * pad + row + [" "] * max(0, width - pad - d.width) for row in d.chars]
        owner: list[list[int | str | None]] = [
            [None] * pad + row + [None] * max(0, width - pad - d.width) for row in d.owner
        ]
        styles: list[list[str]] = [[""] * len(row) for row in chars]
        to_heavy = dict(zip(light.glyphs.values(), heavy.glyphs.values(), strict=True))
        for y, row in enumerate(owner):
            for x, who in enumerate(row):
                if isinstance(who, int):
                    e = self.edges[who]
                    style = LEVEL_STYLE[e.level]
                    if who == selected and self.has_focus:
                        chars[y][x] = to_heavy.get(chars[y][x], chars[y][x])
                        style += " bold reverse"
                    styles[y][x] = style
                elif isinstance(who, str):
                    styles[y][x] = "bold" if g.ascii else "bold reverse"
        if g.ascii:  # no reverse video in logs and serial consoles: brackets mark a node
            for node, (x0, x1) in d.node_cols.items():
                y = d.node_rows[node]
                chars[y][pad + x0], chars[y][pad + x1 - 1] = "[", "]"
        for i, e in enumerate(self.edges):
            if e.short and i in d.arrows:
                self._place_label(chars, styles, d.arrows[i][0], d.arrows[i][1] + pad, e.short, LEVEL_STYLE[e.level])
        out = []
        for row, st in zip(chars, styles, strict=True):
            t = Text(no_wrap=True, overflow="crop")
            for ch, style in zip(row, st, strict=True):
                t.append(ch, style=style)
            out.append(t)
        return out

    @staticmethod
    def _place_label(chars: list[list[str]], styles: list[list[str]], y: int, x: int, label: str, style: str) -> None:
        """`label` right (else left) of the arrowhead at (x, y), in the edge's colour, if those cells
        and one on each side are blank: a label never touches a line, so it is not read as one."""
        row = chars[y]
        n = len(label)
        for start in (x + 2, x - 1 - n):
            if start - 1 >= 0 and start + n < len(row) and all(c == " " for c in row[start - 1 : start + n + 1]):
                if start > x and row[x + 1] != " ":
                    continue
                for k, ch in enumerate(label):
                    row[start + k] = ch
                    styles[y][start + k] = style.replace("bold ", "")
                return

    def _list_lines(self, width: int, selected: int | None, strip: str) -> tuple[list[Text], int]:
        """One line per edge: caller ▶ callee, mark, every label; and the selected edge's line.
        `strip` is the namespace the map left out of every name (said once in the summary)."""
        g = self.glyphs

        def name(n: str) -> str:
            return n[len(strip) :] if strip and n.startswith(strip) else n

        name_w = min(max(len(name(n)) for n in self.nodes), max(8, width // 4))
        out: list[Text] = []
        cursor_line = 0
        for i in self._order:
            e = self.edges[i]
            line = Text(no_wrap=True, overflow="crop")
            chosen = i == selected
            style = LEVEL_STYLE[e.level] + (" reverse" if chosen and self.has_focus else "")
            line.append(fit(name(e.src), name_w, g.ellipsis).ljust(name_w), style="bold" if chosen else "")
            line.append(f" {g.arrow} ", style="dim")
            line.append(fit(name(e.dst), name_w, g.ellipsis).ljust(name_w), style=style)
            line.append(f" {LEVEL_MARK[e.level]:2} ", style=LEVEL_STYLE[e.level])
            line.append("  ".join(e.labels))
            line.truncate(width, overflow="ellipsis")
            if chosen:
                cursor_line = len(out)
            out.append(line)
        return out, cursor_line

    def draw(self, width: int, height: int) -> list[Text]:
        g = self.glyphs
        if not self.edges:
            return [Text("no edges in this window", style="dim italic")]
        order = self._order
        selected = order[self.cursor] if 0 <= self.cursor < len(order) else None
        d = self.drawing(width)
        assert d is not None
        strip = d.stripped
        if not strip and max(map(len, self.nodes)) * 2 + 6 + max(len("  ".join(e.labels)) for e in self.edges) > width:
            strip = common_namespace(self.nodes)  # the list would cut its labels: say the namespace once
        listed, cursor_line = self._list_lines(width, selected, strip)
        list_w = max(len(t.plain) for t in listed)
        side = d.width + 4 + min(list_w, 60) <= width  # wide panel: the list beside the map
        map_w = d.width + 2 if side else width
        if side:
            d = self.drawing(map_w) or d
            strip = d.stripped
            listed, cursor_line = self._list_lines(width - map_w - 3, selected, strip)
        summary = f"{len(self.nodes)} services, {len(self.edges)} edges"
        if d.stripped:
            summary += f" · names without {strip}"
        elif strip:
            summary += f" · {strip} left out of the list"
        lines: list[Text] = [Text(summary, style="dim", no_wrap=True, overflow="crop")]
        drawn = self._map_lines(d, map_w, selected)
        if side:
            rows = max(len(drawn), len(listed))
            for k in range(rows):
                t = Text(no_wrap=True, overflow="crop")
                t.append_text(drawn[k] if k < len(drawn) else Text(" " * map_w))
                t.append(f" {g.v_line} ", style="dim")
                if k < len(listed):
                    t.append_text(listed[k])
                lines.append(t)
            cursor_line += 1
        else:
            lines.extend(drawn)
            lines.append(Text(g.h_line * width, style="dim"))
            cursor_line += len(lines)
            lines.extend(listed)
        for t in lines:
            t.truncate(width)
        # after j/k, keep the selected edge's line on screen (a refresh leaves the view where it is)
        if not self._follow:
            pass
        elif cursor_line < self.top:
            self.top = cursor_line
        elif cursor_line >= self.top + height:
            self.top = cursor_line - height + 1
        self._follow = False
        return lines

    def action_move(self, delta: int) -> None:
        self.cursor = max(0, min(len(self.edges) - 1, self.cursor + delta))
        self._follow = True
        self.refresh()

    @property
    def selected_edge(self) -> Edge | None:
        ordered = self._ordered_edges()
        return ordered[self.cursor] if 0 <= self.cursor < len(ordered) else None
