"""The warnings of the last result, kept on screen above the status line while they hold.

A partial result (an agent unreachable, an export that failed) still has rows worth reading, so
it is not an error: the rows stay, and this bar says, in the warning colour, what they lack. A
toast would vanish after a few seconds and come back at every refresh; this stays exactly as
long as the results carry the warning and goes with the first result that does not.
"""

from __future__ import annotations

from rich.text import Text
from textual.widgets import Static

MAX_LINES = 3  # the rest is counted; `d` (diagnostics) has the whole story per agent


class WarningBar(Static):
    """Hidden when there is nothing to say."""

    DEFAULT_CSS = """
    WarningBar {
        height: auto;
        max-height: 4;
        color: $warning;
        background: $warning 15%;
        padding: 0 1;
        display: none;
    }
    WarningBar.-shown { display: block; }
    """

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.warnings: list[str] = []

    def show_warnings(self, warnings: list[str], mark: str = "!") -> None:
        """Show these warnings (an empty list hides the bar)."""
        self.warnings = list(dict.fromkeys(warnings))  # the same warning from two tables once
        self.set_class(bool(self.warnings), "-shown")
        text = Text()  # wraps: the whole of a warning is worth its two lines
        shown = self.warnings[:MAX_LINES]
        for i, w in enumerate(shown):
            if i:
                text.append("\n")
            text.append(f"{mark} warning: ", style="bold")
            text.append(" ".join(w.split()))
        extra = len(self.warnings) - len(shown)
        if extra:
            text.append(f"\n{mark} and {extra} more warning(s): d shows every agent's state", style="bold")
        self.update(text)
