"""Where a failed run says what went wrong, in place, without taking the data off the screen.

Runs repeat every few seconds, so errors are expected to be transient (a restarting broker) or
persistent (a script bug); either way the app keeps running and retrying, and the panel goes
away on the next successful run.
"""

from __future__ import annotations

from textual.widgets import Static


class ErrorPanel(Static):
    """A red box above the widgets; hidden while there is no error."""

    DEFAULT_CSS = """
    ErrorPanel {
        border: heavy $error;
        border-title-color: $error;
        border-title-style: bold;
        color: $text;
        background: $error 15%;
        height: auto;
        max-height: 8;
        padding: 0 1;
        display: none;
    }
    ErrorPanel.-visible { display: block; }
    """

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__("", markup=False, id=id)
        self.message = ""

    def show_error(self, title: str, message: str, retry_note: str = "") -> None:
        """Show `message` (plain text: compiler messages contain brackets that are not markup)."""
        self.message = message
        self.border_title = title
        self.border_subtitle = retry_note
        self.update(message)
        self.add_class("-visible")

    def clear_error(self) -> None:
        self.message = ""
        self.update("")
        self.remove_class("-visible")

    @property
    def visible_error(self) -> bool:
        return self.has_class("-visible")
