"""vis.json `StackTraceFlameGraph` as a navigable text icicle (root on top, callees below).

Stacks arrive folded ("main;handle;parse", `stacktraceColumn`) with a sample count
(`countColumn`); with `podColumn` the pod is the first frame, so each pod is its own tower, as in
Pixie. Each row is one stack depth; a frame's width is its share of the samples of the frame
zoomed into. Arrows or h/j/k/l move between frames, Enter zooms into the selected frame, Esc
zooms back out (and, at the top, lets Esc go back to the previous script). The last line names
the selected frame with its samples and its share of all samples and of the zoomed frame.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass, field
from typing import ClassVar

from rich.text import Text
from textual.actions import SkipAction
from textual.binding import Binding, BindingType

from pxtui.format import FormattedTable
from pxtui.widgets.chart_canvas import fit
from pxtui.widgets.vis_panel import VisPanel

FRAME_STYLES = ("on dark_red", "on red3", "on dark_orange3", "on orange3", "on gold3", "on dark_goldenrod")


@dataclass
class Frame:
    """One node of the call tree: samples in it and everything it called."""

    name: str
    count: int = 0
    children: dict[str, Frame] = field(default_factory=dict)
    parent: Frame | None = field(default=None, repr=False)

    def sorted_children(self) -> list[Frame]:
        """Biggest first, then by name: the hot path is always at the left edge."""
        return sorted(self.children.values(), key=lambda f: (-f.count, f.name))

    @property
    def path(self) -> list[str]:
        names, node = [], self
        while node is not None and node.parent is not None:
            names.append(node.name)
            node = node.parent
        return names[::-1]


def build_tree(stacks: list[str], counts: list[int], prefixes: list[str] | None = None) -> Frame:
    """Merge folded stacks into one tree rooted at "all"."""
    root = Frame("all")
    for i, (stack, n) in enumerate(zip(stacks, counts, strict=True)):
        if not stack or not n:
            continue
        frames = [f for f in stack.split(";") if f]
        if prefixes is not None and prefixes[i]:
            frames = [prefixes[i], *frames]
        root.count += n
        node = root
        for name in frames:
            child = node.children.get(name)
            if child is None:
                child = node.children[name] = Frame(name, parent=node)
            child.count += n
            node = child
    return root


def layout(zoom: Frame, width: int) -> list[list[tuple[Frame, int, int]]]:
    """Rows of (frame, x, width) under `zoom`; frames narrower than one cell are left out."""
    rows: list[list[tuple[Frame, int, int]]] = []
    level = [(zoom, 0, width)]
    while level:
        rows.append(level)
        nxt = []
        for frame, x, w in level:
            if not frame.count:
                continue
            cx = x
            acc = 0
            for child in frame.sorted_children():
                acc += child.count
                end = x + round(w * acc / frame.count)
                if end - cx >= 1:
                    nxt.append((child, cx, end - cx))
                cx = end
        level = nxt
    return rows


class FlameGraph(VisPanel):
    """Icicle of the call tree with a frame cursor, zoom stack and a percentage line."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("down,j", "child", "Callee", show=False),
        Binding("up,k", "parent", "Caller", show=False),
        Binding("left,h", "sibling(-1)", "Left frame", show=False),
        Binding("right,l", "sibling(1)", "Right frame", show=False),
        Binding("enter", "zoom_in", "Zoom"),
        Binding("escape", "zoom_out", "Zoom out"),
    ]

    def __init__(self, widget, *, id: str | None = None) -> None:  # type: ignore[no-untyped-def]
        super().__init__(widget, id=id)
        self.root = Frame("all")
        self.zoom_path: list[list[str]] = []  # stack of zoomed frame paths ([] = root)
        self.selected_path: list[str] = []
        self.row_top = 0  # first depth shown when the tree is deeper than the box

    def prepare(self, model: FormattedTable) -> None:
        stacks = [str(s or "") for s in self.column(model, self.spec.get("stacktraceColumn")).to_pylist()]
        counts = [int(c or 0) for c in self.column(model, self.spec.get("countColumn")).to_pylist()]
        pod_col = self.spec.get("podColumn")
        prefixes = ([str(p or "") for p in model.raw.column(pod_col).to_pylist()]
                    if pod_col and pod_col in model.columns else None)
        self.root = build_tree(stacks, counts, prefixes)

    # ---------------------------------------------------------------- navigation

    def _find(self, path: list[str]) -> Frame | None:
        node = self.root
        for name in path:
            child = node.children.get(name)
            if child is None:
                return None
            node = child
        return node

    @property
    def zoom(self) -> Frame:
        """The frame zoomed into (a refresh that drops it falls back to the nearest caller)."""
        path = self.zoom_path[-1] if self.zoom_path else []
        while path and self._find(path) is None:
            path = path[:-1]
        return self._find(path) or self.root

    @property
    def selected(self) -> Frame:
        path = list(self.selected_path)
        zoom_path = self.zoom.path
        if path[: len(zoom_path)] != zoom_path:
            path = zoom_path
        while len(path) > len(zoom_path) and self._find(path) is None:
            path = path[:-1]
        return self._find(path) or self.zoom

    def _select(self, frame: Frame) -> None:
        self.selected_path = frame.path
        self.refresh()

    def action_child(self) -> None:
        kids = self.selected.sorted_children()
        if kids:
            self._select(kids[0])

    def action_parent(self) -> None:
        sel = self.selected
        if sel is not self.zoom and sel.parent is not None:
            self._select(sel.parent)

    def action_sibling(self, delta: int) -> None:
        """Move along the selected frame's row (across callers, as it is drawn)."""
        sel = self.selected
        for row in layout(self.zoom, 10_000):
            frames = [f for f, _, _ in row]
            if sel in frames:
                i = frames.index(sel) + delta
                if 0 <= i < len(frames):
                    self._select(frames[i])
                return

    def action_zoom_in(self) -> None:
        sel = self.selected
        if sel is not self.zoom:
            self.zoom_path.append(sel.path)
            self.refresh()

    def action_zoom_out(self) -> None:
        if not self.zoom_path:
            raise SkipAction()  # nothing to undo here: Esc goes on to the app (back)
        self.zoom_path.pop()
        self.refresh()

    # ---------------------------------------------------------------- drawing

    def info_line(self) -> str:
        sel, zoom, total = self.selected, self.zoom, self.root.count or 1
        name = ";".join(sel.path[-3:]) if sel.path else "all"
        share_zoom = sel.count / (zoom.count or 1) * 100
        zoom_note = f", {share_zoom:.1f} % of {zoom.name}" if zoom is not self.root else ""
        return f"{name}: {sel.count} samples, {sel.count / total * 100:.1f} % of all{zoom_note}"

    def draw(self, width: int, height: int) -> list[Text]:
        g = self.glyphs
        if not self.root.count:
            return [Text("no samples in this window", style="dim italic")]
        sel = self.selected
        rows = layout(self.zoom, width)
        lines: list[Text] = []
        sel_row = 0
        for depth, row in enumerate(rows):
            line = Text(no_wrap=True, overflow="crop")
            cursor = 0
            for frame, x, w in row:
                if x > cursor:
                    line.append(" " * (x - cursor))
                label = g.frame_edge + fit(frame.name, w - 1, g.ellipsis) if w > 1 else g.frame_edge
                style = FRAME_STYLES[zlib.crc32(frame.name.encode()) % len(FRAME_STYLES)] + " white"
                if frame is sel:
                    style = "reverse bold"
                    sel_row = depth
                line.append(label.ljust(w)[:w], style=style)
                cursor = x + w
            lines.append(line)
        room = max(1, height - 1)
        if sel_row < self.row_top:
            self.row_top = sel_row
        elif sel_row >= self.row_top + room:
            self.row_top = sel_row - room + 1
        self.row_top = max(0, min(self.row_top, max(0, len(lines) - room)))
        shown = lines[self.row_top : self.row_top + room]
        info = Text(fit(self.info_line(), width, g.ellipsis), style="bold", no_wrap=True, overflow="crop")
        # exactly one screen, so VisPanel's own line scrolling has nothing left to do
        return [*shown, *([Text("")] * (room - len(shown))), info]
