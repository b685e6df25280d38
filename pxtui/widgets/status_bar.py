"""The status line: cluster health, loss, the data window, freshness and row counts.

Loss is shown on every screen because a table that silently misses events is worse than one that
says so; the data window and the refresh time tell the user how current the rows are.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, tzinfo

from rich.text import Text
from textual.widgets import Static

from pxtui.format import format_duration, format_time_short
from pxtui.runner import ClusterStatus


@dataclass
class StatusInfo:
    """Everything the line shows; the app fills it in and calls `StatusBar.show`."""

    cluster: ClusterStatus | None = None
    refreshed_at: datetime | None = None
    run_s: float | None = None
    shown_rows: int | None = None
    total_rows: int | None = None
    paused: bool = False
    refresh_s: float = 2.0
    failing: bool = False
    tz: tzinfo | None = None  # the data window's zone (tests pin it; None = local)


def status_parts(info: StatusInfo) -> list[tuple[str, str]]:
    """(text, style) pieces in priority order; the bar drops from the end when it is too narrow."""
    parts: list[tuple[str, str]] = []
    c = info.cluster
    if c is not None:
        healthy = "green" if c.agents_total and c.agents_healthy == c.agents_total else "yellow"
        parts.append((f"agents {c.agents_healthy}/{c.agents_total}", healthy))
        parts.append((f"lost {c.events_lost}", "bold red" if c.events_lost else ""))
    if info.shown_rows is not None:
        total = info.total_rows if info.total_rows is not None else info.shown_rows
        rows = f"rows {total}" if info.shown_rows == total else f"rows {info.shown_rows}/{total}"
        parts.append((rows, ""))
    if info.refreshed_at is not None:
        took = f" in {info.run_s:.2f} s" if info.run_s is not None else ""
        parts.append((f"at {info.refreshed_at:%H:%M:%S}{took}", "red" if info.failing else ""))
    if c is not None and c.window is not None:
        start, end = c.window
        span = format_duration(max(0, end - start))
        first, last = format_time_short(start, info.tz)[:8], format_time_short(end, info.tz)[:8]
        parts.append((f"data {first}-{last} ({span})", ""))
    mode = "PAUSED (space)" if info.paused else f"every {info.refresh_s:g} s"
    parts.append((mode, "reverse" if info.paused else "dim"))
    return parts


class StatusBar(Static):
    """One line above the key footer."""

    DEFAULT_CSS = """
    StatusBar {
        height: 1;
        background: $panel;
        color: $text;
        padding: 0 1;
    }
    """

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.info = StatusInfo()

    def show(self, info: StatusInfo) -> None:
        self.info = info
        self.refresh()

    def render(self) -> Text:
        width = max(0, self.size.width - 2)
        parts = status_parts(self.info)
        sep = " · "
        # Paused must stay visible whatever the width: keep the mode piece, drop from the middle.
        mode = parts[-1]
        body = parts[:-1]
        while body and len(sep.join(p for p, _ in [*body, mode])) > width:
            body.pop()
        text = Text(no_wrap=True, overflow="ellipsis")
        for i, (piece, style) in enumerate([*body, mode]):
            if i:
                text.append(sep, style="dim")
            text.append(piece, style=style)
        return text

    @property
    def plain(self) -> str:
        """The line as text (tests read this rather than the screen)."""
        return " · ".join(p for p, _ in status_parts(self.info))
