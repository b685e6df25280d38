"""The top line: which script runs with which arguments, and whether the view is live.

Like `px live`'s "Script : <name> --arg=value" bar, so a screenshot says what produced it. After
a drill-down (Enter on a script reference) the scripts that led here come first, as
breadcrumbs: "px/http_data › Script: px/pod --pod=default/frontend-1"; Esc walks back.
"""

from __future__ import annotations

from rich.text import Text
from textual.reactive import reactive
from textual.widgets import Static

from pxtui.widgets.glyphs import glyphs_for


def script_line(script_id: str, args: dict[str, str]) -> str:
    """"Script: px/http_data --start_time=-5m --max_num_records=1000" (empty values left out)."""
    parts = [f"--{k}={v}" for k, v in args.items() if v != ""]
    return " ".join([f"Script: {script_id}", *parts])


class HeaderBar(Static):
    """One line, breadcrumbs, script and args on the left, LIVE/PAUSED on the right."""

    DEFAULT_CSS = """
    HeaderBar {
        dock: top;
        height: 1;
        background: $primary;
        color: $text;
        text-style: bold;
        padding: 0 1;
    }
    """

    paused: reactive[bool] = reactive(False)
    running: reactive[bool] = reactive(False)

    def __init__(self, script_id: str, args: dict[str, str], *, id: str | None = None) -> None:
        super().__init__(id=id)
        self._line = script_line(script_id, args)
        self.crumbs: list[str] = []

    def set_script(self, script_id: str, args: dict[str, str], crumbs: list[str] | None = None) -> None:
        """Show another script (palette, drill-down, edited arguments)."""
        self._line = script_line(script_id, args)
        self.crumbs = list(crumbs or [])
        self.refresh()

    @property
    def line(self) -> str:
        g = glyphs_for(self)
        return g.crumb.join([*self.crumbs, self._line])

    def render(self) -> Text:
        g = glyphs_for(self)
        state = "PAUSED" if self.paused else ("LIVE" + g.running if self.running else "LIVE")
        width = max(0, self.size.width - 2)
        left = self.line
        room = max(0, width - len(state) - 1)
        if len(left) > room:
            # keep the end (the current script) when breadcrumbs make the line too long
            keep = max(0, room - len(g.ellipsis))
            left = (g.ellipsis + left[-keep:]) if self.crumbs and keep else left[:keep] + g.ellipsis
        text = Text(left, no_wrap=True, overflow="crop")
        text.pad_right(max(1, width - len(left) - len(state)))
        text.append(state, style="reverse" if self.paused else "")
        return text
