"""The top line: which script runs with which arguments, and whether the view is live.

Like `px live`'s "Script : <name> --arg=value" bar, so a screenshot says what produced it.
"""

from __future__ import annotations

from rich.text import Text
from textual.reactive import reactive
from textual.widgets import Static


def script_line(script_id: str, args: dict[str, str]) -> str:
    """"Script: px/http_data --start_time=-5m --max_num_records=1000" (empty values left out)."""
    parts = [f"--{k}={v}" for k, v in args.items() if v != ""]
    return " ".join([f"Script: {script_id}", *parts])


class HeaderBar(Static):
    """One line, script and args on the left, LIVE/PAUSED on the right."""

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

    def render(self) -> Text:
        state = "PAUSED" if self.paused else ("LIVE ⟳" if self.running else "LIVE")
        width = max(0, self.size.width - 2)
        left = self._line
        room = max(0, width - len(state) - 1)
        if len(left) > room:
            left = left[: max(0, room - 1)] + "…"
        text = Text(left, no_wrap=True, overflow="ellipsis")
        text.pad_right(max(1, width - len(left) - len(state)))
        text.append(state, style="reverse" if self.paused else "")
        return text
