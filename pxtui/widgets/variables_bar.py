"""`a`: edit the script's vis.json variables in place; Enter re-runs with them, Esc closes.

One row per variable (name, input, description) so it fits 80 columns whatever the count; the
header line already shows the values while the bar is closed, which saves the screen lines for
data. Values are checked by the app against the vis (required, validValues) and a refusal is
shown here, on the bar's last line, while the old values keep running.
"""

from __future__ import annotations

from typing import ClassVar

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, VerticalScroll
from textual.message import Message
from textual.widgets import Input, Label, Static

from cluster.pxl.vis import Variable


class VariablesBar(VerticalScroll, can_focus=False):
    """Hidden until `open`; posts `Applied` with every value when Enter is pressed in any input."""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "cancel", "Close args")]

    DEFAULT_CSS = """
    VariablesBar {
        dock: top; height: auto; max-height: 50%; display: none;
        background: $panel; border-bottom: solid $primary; padding: 0 1;
    }
    VariablesBar.-open { display: block; }
    VariablesBar > Horizontal { height: 1; }
    VariablesBar Label { width: 20; text-style: bold; }
    VariablesBar Input, VariablesBar Input:focus { width: 1fr; height: 1; border: none; padding: 0; }
    VariablesBar .var-desc { width: 1fr; color: $text-muted; }
    VariablesBar #vars-error { color: $error; height: auto; }
    VariablesBar #vars-hint { color: $text-muted; height: 1; }
    """

    class Applied(Message):
        """Enter: the values of every variable, as typed."""

        def __init__(self, values: dict[str, str]) -> None:
            super().__init__()
            self.values = values

    class Closed(Message):
        """Esc: nothing applied."""

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.variables: tuple[Variable, ...] = ()

    def compose(self) -> ComposeResult:
        yield Static("Enter runs with these arguments, Esc closes", id="vars-hint")
        yield Static("", id="vars-error")

    async def open(self, variables: tuple[Variable, ...], values: dict[str, str]) -> None:
        """Show one input per variable filled with the current values, and focus the first."""
        self.variables = variables
        for row in list(self.query(Horizontal)):
            await row.remove()
        rows = []
        for v in variables:
            placeholder = "(required)" if v.required else (f"default {v.default!r}" if v.default else "")
            inp = Input(values.get(v.name, v.default or ""), placeholder=placeholder, id=f"var-{v.name}")
            desc = v.description + (f" [{', '.join(v.valid_values)}]" if v.valid_values else "")
            rows.append(Horizontal(Label(v.name), inp, Static(desc, classes="var-desc", markup=False)))
        if rows:
            await self.mount_all(rows, before=self.query_one("#vars-error"))
        self.show_error("" if variables else "this script takes no arguments")
        self.add_class("-open")
        inputs = list(self.query(Input))
        if inputs:
            inputs[0].focus()

    def close(self) -> None:
        self.remove_class("-open")

    @property
    def is_open(self) -> bool:
        return self.has_class("-open")

    def values(self) -> dict[str, str]:
        return {v.name: self.query_one(f"#var-{v.name}", Input).value for v in self.variables}

    def show_error(self, message: str) -> None:
        self.query_one("#vars-error", Static).update(message)

    @on(Input.Submitted)
    def _submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self.post_message(self.Applied(self.values()))

    def action_cancel(self) -> None:
        self.close()
        self.post_message(self.Closed())
