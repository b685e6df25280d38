"""The characters widgets draw with: Unicode by default, plain ASCII on request.

Why a table of glyphs rather than literals in each widget: some terminals (serial consoles, old
PuTTY fonts, screen readers, log capture) mangle box-drawing and block characters, and
`PXTUI_ASCII=1` / `--ascii` must remove every one of them from every widget at once. Nothing a
widget says may depend on colour either (NO_COLOR, 16-colour terminals), so series and states
also get distinct marker characters here.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from textual.dom import DOMNode


@dataclass(frozen=True)
class Glyphs:
    """One character (or short string) per drawing role."""

    ascii: bool
    h_line: str  # chart axes, rules
    v_line: str
    corner: str  # where the x and y axes meet
    tick: str
    line_h: str  # segments joining a time series' points
    line_v: str
    line_up: str
    line_down: str
    markers: tuple[str, ...]  # one per series, so NO_COLOR still tells them apart
    area: str  # fill under an area series
    bar: str  # a full bar cell
    bar_eighths: tuple[str, ...]  # partial vertical bar heights, 1/8 .. 7/8 ("" = none)
    bar_fills: tuple[str, ...]  # stacked segments, one per stack key
    arrow: str  # graph edges
    branch: str  # tree lines in the graph edge list
    branch_last: str
    frame_edge: str  # left edge of a flame graph frame
    ellipsis: str
    sort_up: str
    sort_down: str
    running: str  # the header's "a run is in flight" mark
    crumb: str  # breadcrumb separator
    status: dict[str, str]  # pod/container states -> icon


UNICODE = Glyphs(
    ascii=False,
    h_line="─", v_line="│", corner="└", tick="┬",
    line_h="─", line_v="│", line_up="╱", line_down="╲",
    markers=("●", "◆", "▲", "■", "✚", "○", "◇", "△"),
    area="░", bar="█",
    bar_eighths=("", "▁", "▂", "▃", "▄", "▅", "▆", "▇"),
    bar_fills=("█", "▓", "▒", "░", "▚", "▞"),
    arrow="▶", branch="├─", branch_last="└─", frame_edge="▏",
    ellipsis="…", sort_up=" ▲", sort_down=" ▼", running=" ⟳", crumb=" › ",
    status={"ok": "●", "pending": "◐", "failed": "✖", "stopped": "○", "unknown": "?"},
)

ASCII = Glyphs(
    ascii=True,
    h_line="-", v_line="|", corner="+", tick="+",
    line_h="-", line_v="|", line_up="/", line_down="\\",
    markers=("*", "o", "+", "x", "#", "%", "@", "&"),
    area=":", bar="#",
    bar_eighths=("", "", "", "", "", "", "", ""),
    bar_fills=("#", "=", "+", ":", "%", "@"),
    arrow=">", branch="|-", branch_last="`-", frame_edge="|",
    ellipsis="~", sort_up=" ^", sort_down=" v", running=" *", crumb=" > ",
    status={"ok": "+", "pending": "~", "failed": "x", "stopped": "-", "unknown": "?"},
)


def ascii_from_env() -> bool:
    """PXTUI_ASCII=1 (or true/yes) turns ASCII-only drawing on."""
    return os.environ.get("PXTUI_ASCII", "").strip().lower() in ("1", "true", "yes", "on")


def glyphs_for(node: DOMNode) -> Glyphs:
    """The set the running app chose (PxApp.glyphs); Unicode for widgets outside a PxApp."""
    try:
        app = node.app
    except Exception:  # not mounted yet: no active app
        return UNICODE
    found = getattr(app, "glyphs", None)
    return found if isinstance(found, Glyphs) else UNICODE
