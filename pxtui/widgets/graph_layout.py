"""A layered (Sugiyama) drawing of a directed graph on a character grid.

Why layered: a service map is read along the direction of the calls (who calls whom), and a
layered drawing puts every caller above what it calls, so the eye follows the traffic downward.
The combinatorial part, which is the hard part, comes from grandalf (the library LangChain
also uses for its ASCII graphs): ranks along the call direction (with cycles broken by
reversing a feedback set), a dummy vertex on every layer a long edge passes, and the
barycentre ordering within each layer that reduces crossings. What grandalf does not do is
fit that on a terminal, so this module does the geometry itself, in whole cells:

* x: each layer's slots keep grandalf's order; their columns come from a few sweeps that pull
  each slot under the mean of its neighbours, solved exactly under the no-overlap constraints
  by isotonic regression (pool adjacent violators). Long names are cut (with an ellipsis) until
  the drawing fits the width.
* y: a layer is one row; between two layers a channel of "tracks", one row per set of
  horizontal runs that do not overlap (left-edge channel routing), plus a row for arrowheads.
* edges: every edge has its own port on each node, so it can be coloured on its own, and its own
  run in the channel; crossings are drawn as crossings, and junctions never join two edges.

Output is a grid of (character, owner) cells; the widget styles them (colour by the edge's
level, the selected edge drawn heavy) so that this module stays pure and testable.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field

from grandalf.graphs import Edge as GEdge
from grandalf.graphs import Graph as GGraph
from grandalf.graphs import Vertex as GVertex
from grandalf.layouts import DummyVertex, SugiyamaLayout, VertexViewer

ORDERING_ROUNDS = 4  # grandalf ordering sweeps (down and up); more rarely helps at this size
PLACEMENT_SWEEPS = 4
MAX_SWITCH_HOPS = 150  # above this the refinement's counting costs more than it is worth on the loop
MIN_LABEL = 6  # names are never cut shorter than this (the edge list below has them in full)

N, E, S, W = 1, 2, 4, 8  # the sides of a cell a line leaves through


@dataclass(frozen=True)
class LineSet:
    """The characters of one line style, indexed by the sides a cell connects (N|E|S|W)."""

    glyphs: dict[int, str]
    cross: str  # a vertical and a horizontal edge crossing (not a junction)
    down: str  # arrowheads
    up: str
    loop: str  # after the name of a node that calls itself

    def at(self, mask: int) -> str:
        return self.glyphs.get(mask, self.glyphs[N | S] if mask & (N | S) else self.glyphs[E | W])


def _lines(
    v: str,
    h: str,
    ne: str,
    nw: str,
    se: str,
    sw: str,
    t_n: str,
    t_s: str,
    t_e: str,
    t_w: str,
    cross: str,
    down: str,
    up: str,
    loop: str,
) -> LineSet:
    glyphs = {
        N | S: v,
        N: v,
        S: v,
        E | W: h,
        E: h,
        W: h,
        N | E: ne,
        N | W: nw,
        S | E: se,
        S | W: sw,
        N | E | W: t_n,
        S | E | W: t_s,
        N | S | E: t_e,
        N | S | W: t_w,
        N | E | S | W: cross,
    }
    return LineSet(glyphs, cross, down, up, loop)


LIGHT = _lines("│", "─", "└", "┘", "┌", "┐", "┴", "┬", "├", "┤", "┼", "▼", "▲", "↺")
HEAVY = _lines("┃", "━", "┗", "┛", "┏", "┓", "┻", "┳", "┣", "┫", "╋", "▼", "▲", "↺")
ASCII_LIGHT = _lines("|", "-", "+", "+", "+", "+", "+", "+", "+", "+", "+", "v", "^", "@")
ASCII_HEAVY = _lines("|", "=", "+", "+", "+", "+", "+", "+", "+", "+", "+", "v", "^", "@")


# ------------------------------------------------------------------------------------ layering


@dataclass(frozen=True)
class Slot:
    """One place in a layer: a node, or where a long edge crosses the layer (edge >= 0)."""

    node: str | None = None
    edge: int = -1
    level: int = -1  # a dummy's layer (one edge has a dummy on each layer it crosses)


@dataclass
class Layering:
    """Layers of slots, top first, and each edge's slots from its top end to its bottom end."""

    layers: list[list[Slot]]
    chains: dict[int, list[Slot]]  # edge index -> slots, one per layer it spans
    flipped: set[int]  # edges drawn bottom-up (they close a cycle): the arrow points up
    rank: dict[Slot, int]
    loops: set[str]  # nodes that call themselves

    def crossings(self) -> int:
        """Edge crossings between adjacent layers, from the order alone (what ordering minimises)."""
        pos = {s: i for layer in self.layers for i, s in enumerate(layer)}
        total = 0
        for r in range(len(self.layers) - 1):
            hops = [
                (pos[c[k]], pos[c[k + 1]])
                for c in self.chains.values()
                for k in range(len(c) - 1)
                if self.rank[c[k]] == r
            ]
            for i, (a, b) in enumerate(hops):
                total += sum(1 for c, d in hops[i + 1 :] if (a - c) * (b - d) < 0)
        return total


def _feedback_edges(vertices: list[GVertex]) -> set[GEdge]:
    """Edges that close a cycle, found by a depth-first search from the callers nothing calls
    (then from any vertex left, in order): reversing them leaves a DAG to rank. grandalf's own
    search starts only from given roots and misses cycles they do not reach."""
    seen: set[GVertex] = set()
    on_path: set[GVertex] = set()
    feedback: set[GEdge] = set()
    starts = [v for v in vertices if not v.e_in()] + vertices
    for start in starts:
        if start in seen:
            continue
        seen.add(start)
        on_path.add(start)
        stack = [(start, iter(start.e_out()))]
        while stack:
            v, edges = stack[-1]
            e = next(edges, None)
            if e is None:
                on_path.discard(v)
                stack.pop()
                continue
            w = e.v[1]
            if w in on_path:
                feedback.add(e)
            elif w not in seen:
                seen.add(w)
                on_path.add(w)
                stack.append((w, iter(w.e_out())))
    return feedback


def layer_graph(nodes: list[str], edges: list[tuple[str, str]]) -> Layering:
    """Rank and order with grandalf's Sugiyama layout; components side by side, biggest first.

    `nodes` fixes the input order (grandalf keeps it where nothing else decides, so the same data
    always gives the same drawing)."""
    vertices = {n: GVertex(n) for n in nodes}
    for v in vertices.values():
        v.view = VertexViewer(w=len(v.data) + 2, h=1)
    gedges: list[tuple[int, GEdge]] = []
    loops: set[str] = set()
    for i, (s, d) in enumerate(edges):
        if s == d:
            loops.add(s)
        else:
            gedges.append((i, GEdge(vertices[s], vertices[d])))
    index = {id(e): i for i, e in gedges}
    graph = GGraph(list(vertices.values()), [e for _, e in gedges])
    order = {n: k for k, n in enumerate(nodes)}
    comps = sorted(graph.C, key=lambda c: (-len(c.sV), min(order[v.data] for v in c.sV)))
    layers: list[list[Slot]] = []
    plain: list[list[Slot]] = []  # the same layers in the fixed starting order
    chains: dict[int, list[Slot]] = {}
    flipped: set[int] = set()

    def slot(v: GVertex | DummyVertex, r: int, dummies: dict[int, int]) -> Slot:
        return Slot(edge=dummies[id(v)], level=r) if isinstance(v, DummyVertex) else Slot(node=v.data)

    for comp in comps:
        sug = SugiyamaLayout(comp)
        feedback = _feedback_edges(sorted(comp.sV, key=lambda v: order[v.data]))
        roots = [
            v
            for v in sorted(comp.sV, key=lambda v: order[v.data])
            if all(e in feedback for e in v.e_in()) and not any(e in feedback for e in v.e_out())
        ]
        sug.init_all(roots=roots, inverted_edges=list(feedback))
        # grandalf fills layers while iterating a set of edges: start every layer from one fixed
        # order (nodes in input order, then dummies by edge) so equal data always draws the same
        dummy_edge = {
            id(v): index[id(e)] for e, ctrl in sug.ctrls.items() for v in ctrl.values() if isinstance(v, DummyVertex)
        }
        for layer in sug.layers:
            layer.sort(key=lambda v: (1, dummy_edge[id(v)]) if isinstance(v, DummyVertex) else (0, order[v.data]))
            layer.setup(sug)
        for r, layer in enumerate(sug.layers):
            while len(plain) <= r:
                plain.append([])
            plain[r].extend(slot(v, r, dummy_edge) for v in layer)
        for _ in range(ORDERING_ROUNDS):
            for _step in sug.ordering_step():
                pass
        for r, layer in enumerate(sug.layers):
            while len(layers) <= r:
                layers.append([])
            layers[r].extend(slot(v, r, dummy_edge) for v in layer)
        for e in sorted(comp.sE, key=lambda e: index[id(e)]):
            i = index[id(e)]
            a, b = e.v
            ra, rb = sug.grx[a].rank, sug.grx[b].rank
            if ra > rb:
                flipped.add(i)
                a, b, ra, rb = b, a, rb, ra
            chain = [Slot(node=a.data)]
            chain += [Slot(edge=i, level=r) for r in range(ra + 1, rb)]
            chain.append(Slot(node=b.data))
            chains[i] = chain
    rank = {s: r for r, layer in enumerate(layers) for s in layer}
    # grandalf's sweeps, refined; or, when that ends worse (its sweeps can settle in a poor local
    # optimum), the starting order refined the same way
    best = Layering(layers, chains, flipped, rank, loops)
    _greedy_switch(best)
    other = Layering(plain, chains, flipped, rank, loops)
    _greedy_switch(other)
    return other if other.crossings() < best.crossings() else best


def _pair_crossings(lay: Layering, r: int, pos: dict[Slot, int]) -> int:
    """Crossings between layer r and r+1 for the positions in `pos`."""
    hops = [(pos[c[k]], pos[c[k + 1]]) for c in lay.chains.values() for k in range(len(c) - 1) if lay.rank[c[k]] == r]
    return sum(1 for i, (a, b) in enumerate(hops) for c, d in hops[i + 1 :] if (a - c) * (b - d) < 0)


def _greedy_switch(lay: Layering, rounds: int = 8) -> None:
    """Swap neighbours in a layer while that lowers the crossings with both adjacent layers.

    grandalf's barycentre sweeps look at one adjacent layer at a time and stop at a local
    optimum; counting both sides finds swaps they cannot (the classic greedy-switch refinement)."""
    if sum(len(c) - 1 for c in lay.chains.values()) > MAX_SWITCH_HOPS:
        return
    pos = {s: i for layer in lay.layers for i, s in enumerate(layer)}
    n = len(lay.layers)

    def around(r: int) -> int:
        return (_pair_crossings(lay, r - 1, pos) if r > 0 else 0) + (_pair_crossings(lay, r, pos) if r < n - 1 else 0)

    for _ in range(rounds):
        improved = False
        for r, layer in enumerate(lay.layers):
            for i in range(len(layer) - 1):
                before = around(r)
                a, b = layer[i], layer[i + 1]
                layer[i], layer[i + 1] = b, a
                pos[a], pos[b] = i + 1, i
                if around(r) < before:
                    improved = True
                else:
                    layer[i], layer[i + 1] = a, b
                    pos[a], pos[b] = i, i + 1
        if not improved:
            return


# ------------------------------------------------------------------------------------ placement


def _pav(targets: list[float], weights: list[float]) -> list[float]:
    """Weighted isotonic regression: the nondecreasing sequence closest (least squares) to targets."""
    blocks: list[list[float]] = []  # [value, weight, count]
    for t, w in zip(targets, weights, strict=True):
        blocks.append([t, w, 1])
        while len(blocks) > 1 and blocks[-2][0] > blocks[-1][0]:
            v2, w2, c2 = blocks.pop()
            v1, w1, c1 = blocks.pop()
            blocks.append([(v1 * w1 + v2 * w2) / (w1 + w2), w1 + w2, c1 + c2])
    out: list[float] = []
    for v, _, c in blocks:
        out.extend([v] * int(c))
    return out


@dataclass
class Placement:
    """Columns and widths of every slot (left edge; a dummy is one column wide)."""

    x: dict[Slot, int]
    width: dict[Slot, int]
    labels: dict[str, str]  # node -> the text drawn (cut to fit)
    total_width: int
    stripped: str = ""  # the namespace left out of every label ("default/"), said once above

    def center(self, s: Slot) -> float:
        return self.x[s] + (self.width[s] - 1) / 2


def _neighbours(lay: Layering) -> tuple[dict[Slot, list[Slot]], dict[Slot, list[Slot]]]:
    up: dict[Slot, list[Slot]] = {}
    down: dict[Slot, list[Slot]] = {}
    for chain in lay.chains.values():
        for a, b in itertools.pairwise(chain):
            down.setdefault(a, []).append(b)
            up.setdefault(b, []).append(a)
    return up, down


def shorten(name: str, limit: int, cut: str) -> str:
    """`name` in at most `limit` cells. "namespace/service" loses its namespace first, since the
    services of one view mostly share it and the service is what tells nodes apart."""
    if len(name) <= limit:
        return name
    ns, slash, rest = name.rpartition("/")
    if slash and len(rest) + 1 + len(cut) <= limit:
        return ns[: limit - len(rest) - 1 - len(cut)] + cut + "/" + rest
    if slash and len(rest) <= limit:
        return rest
    tail = rest if slash else name
    return tail[: max(1, limit - len(cut))] + cut


def common_namespace(names: list[str]) -> str:
    """The "namespace/" every name starts with ("" when they differ or have none)."""
    spaces = {n.rpartition("/")[0] for n in names}
    return f"{spaces.pop()}/" if len(spaces) == 1 and "" not in spaces else ""


def place(lay: Layering, max_label: int, cut: str, loop: str = "@", strip: str = "") -> Placement:
    """Columns for every slot with names cut to `max_label` characters (`cut` marks a cut name).

    A node is at least wide enough to give each line at one of its sides its own column with a
    blank between, so a service with many callees still shows where each line starts."""
    labels = {}
    fan_out: dict[str, int] = {}
    fan_in: dict[str, int] = {}
    for chain in lay.chains.values():
        fan_out[chain[0].node or ""] = fan_out.get(chain[0].node or "", 0) + 1
        fan_in[chain[-1].node or ""] = fan_in.get(chain[-1].node or "", 0) + 1
    for layer in lay.layers:
        for s in layer:
            if s.node is not None:
                name = s.node[len(strip) :] if strip and s.node.startswith(strip) else s.node
                labels[s.node] = shorten(name, max_label, cut) + (f" {loop}" if s.node in lay.loops else "")
    width = {}
    for layer in lay.layers:
        for s in layer:
            if s.node is None:
                width[s] = 1
            else:
                ports = max(fan_out.get(s.node, 0), fan_in.get(s.node, 0))
                width[s] = max(len(labels[s.node]) + 2, 2 * ports + 1)

    def gap(a: Slot, b: Slot) -> int:
        return 1 if a.node is None and b.node is None else 2

    offsets: list[list[int]] = []
    for layer in lay.layers:
        o, acc = [], 0
        for k, s in enumerate(layer):
            o.append(acc)
            acc += width[s] + (gap(s, layer[k + 1]) if k + 1 < len(layer) else 0)
        offsets.append(o)
    widest = max((o[-1] + width[layer[-1]] for o, layer in zip(offsets, lay.layers, strict=True) if layer), default=0)
    x: dict[Slot, float] = {}
    for o, layer in zip(offsets, lay.layers, strict=True):
        if not layer:
            continue
        start = (widest - (o[-1] + width[layer[-1]])) / 2
        for k, s in enumerate(layer):
            x[s] = start + o[k]
    up, down = _neighbours(lay)

    def sweep(r: int, refs: dict[Slot, list[Slot]]) -> None:
        layer, o = lay.layers[r], offsets[r]
        targets, weights = [], []
        for k, s in enumerate(layer):
            ns = refs.get(s, [])
            centre = sum(x[n] + (width[n] - 1) / 2 for n in ns) / len(ns) if ns else x[s] + (width[s] - 1) / 2
            targets.append(centre - (width[s] - 1) / 2 - o[k])
            weights.append((4.0 if s.node is None else 1.0) * max(1, len(ns)) if ns else 0.25)
        fitted = _pav(targets, weights)
        for k, s in enumerate(layer):
            x[s] = fitted[k] + o[k]

    for _ in range(PLACEMENT_SWEEPS):
        for r in range(1, len(lay.layers)):
            sweep(r, up)
        for r in range(len(lay.layers) - 2, -1, -1):
            sweep(r, down)
    for r in range(1, len(lay.layers)):  # end top-down: callers fixed, callees under them
        sweep(r, up)
    # whole cells, keeping the order and the gaps (rounding a nondecreasing y keeps it nondecreasing)
    xi: dict[Slot, int] = {}
    for o, layer in zip(offsets, lay.layers, strict=True):
        for k, s in enumerate(layer):
            xi[s] = round(x[s] - o[k]) + o[k]
    lo = min(xi.values(), default=0)
    xi = {s: v - lo for s, v in xi.items()}
    total = max((xi[s] + width[s] for s in xi), default=0)
    return Placement(xi, width, labels, total, strip)


def fit_placement(lay: Layering, width: int, cut: str, loop: str = "@") -> Placement:
    """The placement with the longest names that still fits `width` (else the narrowest one).

    Full names first; then, when every node is in one namespace, the names without it; then
    names cut shorter and shorter."""
    names = [s.node for layer in lay.layers for s in layer if s.node is not None]
    best = place(lay, max(map(len, names), default=MIN_LABEL), cut, loop)
    strip = common_namespace(names)
    if best.total_width <= width or not names:
        return best
    if strip:
        best = place(lay, max(len(n) - len(strip) for n in names), cut, loop, strip)
    limit = max(len(n) - len(strip) for n in names)
    while best.total_width > width and limit > MIN_LABEL:
        limit -= max(1, (best.total_width - width) // max(1, max(len(layer) for layer in lay.layers)))
        limit = max(limit, MIN_LABEL)
        best = place(lay, limit, cut, loop, strip)
    return best


# ------------------------------------------------------------------------------------ routing


@dataclass
class Hop:
    """One edge between two adjacent layers: from column `x0` (upper) to `x1` (lower)."""

    edge: int
    rank: int  # the upper layer
    x0: int
    x1: int
    last: bool  # ends at the edge's lower node
    first: bool  # starts at the edge's upper node
    track: int = -1


@dataclass
class Drawing:
    """The routed drawing: cells of characters, and which edge (or node) each cell belongs to."""

    width: int
    height: int
    chars: list[list[str]]
    owner: list[list[int | str | None]]  # edge index, node name, or None
    node_rows: dict[str, int] = field(default_factory=dict)
    node_cols: dict[str, tuple[int, int]] = field(default_factory=dict)
    labels: dict[str, str] = field(default_factory=dict)
    stripped: str = ""
    arrows: dict[int, tuple[int, int]] = field(default_factory=dict)  # edge -> (row, column) of its head

    def text(self) -> str:
        return "\n".join("".join(row).rstrip() for row in self.chars)


def _inner(p: Placement, s: Slot) -> tuple[int, int]:
    """The columns of a slot a line may attach to (a node's text, not its padding)."""
    w = p.width[s]
    return (p.x[s] + 1, p.x[s] + w - 2) if w > 2 else (p.x[s], p.x[s] + w - 1)


def _assign_ports(p: Placement, ends: dict[Slot, list[tuple[int, float]]]) -> dict[tuple[Slot, int], int]:
    """Columns on each slot for the hops at one of its sides: spread over the slot, in the order
    of the columns at their other ends (so they do not cross right at the node)."""
    ports: dict[tuple[Slot, int], int] = {}
    for s, items in ends.items():
        items.sort(key=lambda it: (it[1], it[0]))
        lo, hi = _inner(p, s)
        k = len(items)
        for j, (hop_id, _) in enumerate(items):
            if k == 1:
                col = (lo + hi) // 2
            else:
                col = (
                    lo + round(j * (hi - lo) / (k - 1)) if 2 * k - 1 > hi - lo + 1 else (lo + hi) // 2 - (k - 1) + 2 * j
                )  # one blank between neighbours, centred
            ports[(s, hop_id)] = col
    return ports


def _above_cost(a: Hop, b: Hop) -> int:
    """What putting `a`'s horizontal run above `b`'s costs: a crossing wherever one's vertical
    part meets the other's run, and much more where two lines would share a column."""

    def inside(x: int, h: Hop) -> int:
        lo, hi = min(h.x0, h.x1), max(h.x0, h.x1)
        return 10 if x in (lo, hi) else 1 if lo < x < hi else 0

    # a above b: a's run (row ta) meets b's upper vertical at b.x0; b's run meets a's lower part at a.x1
    return inside(b.x0, a) + inside(a.x1, b)


def _tracks(hops: list[Hop]) -> int:
    """Channel routing: give each bent hop a track row. Hops sharing a row must not overlap; of
    two overlapping hops, the one whose run crosses fewer lines when it is higher goes higher
    (nested fans, no avoidable crossings); then each takes the first row free for it."""
    bent = sorted((h for h in hops if h.x0 != h.x1), key=lambda h: (min(h.x0, h.x1), max(h.x0, h.x1), h.x0))

    def overlap(a: Hop, b: Hop) -> bool:
        return min(a.x0, a.x1) <= max(b.x0, b.x1) + 1 and min(b.x0, b.x1) <= max(a.x0, a.x1) + 1

    above: dict[int, set[int]] = {k: set() for k in range(len(bent))}  # hop -> hops that go above it
    for i, a in enumerate(bent):
        for j in range(i + 1, len(bent)):
            b = bent[j]
            if overlap(a, b):
                ab, ba = _above_cost(a, b), _above_cost(b, a)
                if ab < ba:
                    above[j].add(i)
                elif ba < ab:
                    above[i].add(j)
    track: dict[int, int] = {}
    rows: list[list[tuple[int, int]]] = []
    pending = list(range(len(bent)))
    while pending:
        k = next((k for k in pending if above[k] <= track.keys()), pending[0])  # a cycle: the leftmost
        pending.remove(k)
        h = bent[k]
        lo, hi = min(h.x0, h.x1), max(h.x0, h.x1)
        t = max((track[a] + 1 for a in above[k] if a in track), default=0)
        while t < len(rows) and any(lo <= b + 1 and a - 1 <= hi for a, b in rows[t]):
            t += 1
        while len(rows) <= t:
            rows.append([])
        rows[t].append((lo, hi))
        track[k] = h.track = t
    return len(rows)


def route(lay: Layering, p: Placement, lines: LineSet) -> Drawing:
    """Rows for layers and channels, and every edge drawn through them."""
    hops_by_rank: dict[int, list[Hop]] = {}
    downs: dict[Slot, list[tuple[int, float]]] = {}
    ups: dict[Slot, list[tuple[int, float]]] = {}
    raw: list[tuple[int, int, Slot, Slot, bool, bool]] = []
    for i, chain in lay.chains.items():
        for k, (a, b) in enumerate(itertools.pairwise(chain)):
            hid = len(raw)
            raw.append((i, lay.rank[a], a, b, k == len(chain) - 2, k == 0))
            downs.setdefault(a, []).append((hid, p.center(b)))
            ups.setdefault(b, []).append((hid, p.center(a)))
    out_ports = _assign_ports(p, downs)
    in_ports = _assign_ports(p, ups)
    for hid, (_, _, a, b, _, _) in enumerate(raw):  # a lone hop between two slots: straight if they overlap
        if len(downs[a]) == 1 and len(ups[b]) == 1:
            lo = max(_inner(p, a)[0], _inner(p, b)[0])
            hi = min(_inner(p, a)[1], _inner(p, b)[1])
            if lo <= hi:
                col = min(hi, max(lo, round((p.center(a) + p.center(b)) / 2)))
                out_ports[(a, hid)] = in_ports[(b, hid)] = col
    for hid, (i, r, a, b, last, first) in enumerate(raw):
        hops_by_rank.setdefault(r, []).append(Hop(i, r, out_ports[(a, hid)], in_ports[(b, hid)], last, first))
    n_layers = len(lay.layers)
    tracks = {r: _tracks(hops_by_rank.get(r, [])) for r in range(n_layers - 1)}
    # a channel where an edge closing a cycle arrives upward gets a row for those arrowheads first
    ups_row = {
        r: int(any(h.first and h.edge in lay.flipped for h in hops_by_rank.get(r, []))) for r in range(n_layers - 1)
    }
    layer_row: list[int] = []
    y = 0
    for r in range(n_layers):
        layer_row.append(y)
        y += 1 + (ups_row[r] + tracks[r] + 1 if r < n_layers - 1 else 0)
    height = y
    w = p.total_width
    masks: list[list[dict[int, int]]] = [[{} for _ in range(w)] for _ in range(height)]
    d = Drawing(w, height, [[" "] * w for _ in range(height)], [[None] * w for _ in range(height)])
    d.labels = dict(p.labels)
    d.stripped = p.stripped

    def mark(yy: int, xx: int, edge: int, m: int) -> None:
        if 0 <= yy < height and 0 <= xx < w:
            cell = masks[yy][xx]
            cell[edge] = cell.get(edge, 0) | m

    arrows: list[tuple[int, int, int, str]] = []
    for r, hops in hops_by_rank.items():
        node_row = layer_row[r]  # the upper layer's row; the channel starts below it
        top = node_row + ups_row[r]  # tracks start below the row of upward arrowheads
        arrow_row = top + tracks[r] + 1
        for h in hops:
            flipped = h.edge in lay.flipped
            turn = top + 1 + h.track if h.x0 != h.x1 else None
            if turn is None:
                for yy in range(node_row + 1, arrow_row + 1):
                    mark(yy, h.x0, h.edge, N | S)
            else:
                for yy in range(node_row + 1, turn):
                    mark(yy, h.x0, h.edge, N | S)
                toward = E if h.x1 > h.x0 else W
                back = W if toward == E else E
                mark(turn, h.x0, h.edge, N | toward)
                for xx in range(min(h.x0, h.x1) + 1, max(h.x0, h.x1)):
                    mark(turn, xx, h.edge, E | W)
                mark(turn, h.x1, h.edge, S | back)
                for yy in range(turn + 1, arrow_row + 1):
                    mark(yy, h.x1, h.edge, N | S)
            if h.last and not flipped:
                arrows.append((arrow_row, h.x1, h.edge, lines.down))
            if h.first and flipped:
                arrows.append((node_row + 1, h.x0, h.edge, lines.up))
        # dummies: the edge passes straight through the lower layer's row
    for i, chain in lay.chains.items():
        for s in chain[1:-1]:
            mark(layer_row[lay.rank[s]], p.x[s], i, N | S)
    for yy in range(height):
        for xx in range(w):
            cell = masks[yy][xx]
            if not cell:
                continue
            if len(cell) == 1:
                ((edge, m),) = cell.items()
                d.chars[yy][xx] = lines.at(m)
                d.owner[yy][xx] = edge
                continue
            verticals = [e for e, m in cell.items() if m == N | S]
            union = 0
            for m in cell.values():
                union |= m
            d.chars[yy][xx] = lines.cross if verticals and union == N | E | S | W else lines.at(union)
            d.owner[yy][xx] = verticals[0] if verticals else next(iter(cell))
    for yy, xx, edge, ch in arrows:
        d.chars[yy][xx] = ch
        d.owner[yy][xx] = edge
        d.arrows[edge] = (yy, xx)
    for r, layer in enumerate(lay.layers):
        for s in layer:
            if s.node is None:
                continue
            text = f" {p.labels[s.node]} ".center(p.width[s])
            for k, ch in enumerate(text):
                d.chars[layer_row[r]][p.x[s] + k] = ch
                d.owner[layer_row[r]][p.x[s] + k] = s.node
            d.node_rows[s.node] = layer_row[r]
            d.node_cols[s.node] = (p.x[s], p.x[s] + len(text))
    return d


def draw_graph(
    nodes: list[str],
    edges: list[tuple[str, str]],
    width: int,
    lines: LineSet,
    cut: str = "…",
    layering: Layering | None = None,
) -> Drawing:
    """The whole pipeline: layer (or reuse `layering`), place to fit `width`, route."""
    lay = layering or layer_graph(nodes, edges)
    return route(lay, fit_placement(lay, width, cut, lines.loop), lines)
