"""ctrl+k or `:`: pick any bundled script by typing a few letters of its name.

Fuzzy like px live's palette and k9s' command line: the letters typed must appear in order
("htd" finds px/http_data), matches at word starts and runs of consecutive letters rank first.
Arguments may follow the name ("http --start_time=-1m"); Enter runs the highlighted script
with them, Esc closes. The app may add commands (":diagnostics") that open a view instead; one
is listed first only when it matches the typed letters better than every script.
"""

from __future__ import annotations

import shlex
from typing import ClassVar

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Input, OptionList, Static
from textual.widgets.option_list import Option

from pxtui.scripts import Script

BOUNDARY = "/_-. "


def fuzzy_score(query: str, candidate: str) -> int | None:
    """Higher is better; None when the letters of `query` do not all appear in order."""
    q, c = query.lower(), candidate.lower()
    if not q:
        return 0
    score, pos, prev = 0, 0, -2
    for ch in q:
        found = c.find(ch, pos)
        if found < 0:
            return None
        score += 1
        if found == prev + 1:
            score += 5  # a run of consecutive letters
        if found == 0 or c[found - 1] in BOUNDARY:
            score += 8  # the start of a word
        prev, pos = found, found + 1
    return score * 100 - len(c)  # shorter names win ties


def rank(query: str, scripts: dict[str, Script]) -> list[str]:
    """Script ids matching `query`, best first (all of them, alphabetically, for an empty query)."""
    scored = []
    for sid, s in scripts.items():
        best = fuzzy_score(query, sid)
        if best is None and s.short:
            by_title = fuzzy_score(query, s.short)
            best = None if by_title is None else by_title - 1000  # the id matters more than the title
        if best is not None:
            scored.append((-best, sid))
    return [sid for _, sid in sorted(scored)]


def split_query(text: str) -> tuple[str, dict[str, str]]:
    """"http --start_time=-1m" -> ("http", {"start_time": "-1m"}); unparsable quotes stay in the name."""
    try:
        tokens = shlex.split(text)
    except ValueError:
        return text.strip(), {}
    name = " ".join(t for t in tokens if not t.startswith("--"))
    args = {}
    for t in tokens:
        if t.startswith("--") and "=" in t:
            k, v = t[2:].split("=", 1)
            args[k] = v
    return name, args


class ScriptPalette(ModalScreen[tuple[str, dict[str, str]] | None]):
    """An input over a filtered list; returns (script id, args) or None."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "close", "Close"),
        Binding("down", "move(1)", "Next", show=False),
        Binding("up", "move(-1)", "Previous", show=False),
    ]

    DEFAULT_CSS = """
    ScriptPalette { align: center top; }
    ScriptPalette > Vertical {
        width: 80%; min-width: 40; max-width: 100; height: auto; max-height: 80%;
        margin-top: 2; border: round $primary; background: $surface;
    }
    ScriptPalette Input, ScriptPalette Input:focus { border: none; height: 1; padding: 0 1; }
    ScriptPalette OptionList { height: auto; max-height: 16; border: none; }
    ScriptPalette #palette-hint { color: $text-muted; padding: 0 1; height: 1; }
    """

    def __init__(self, scripts: dict[str, Script], current: str = "", commands: dict[str, str] | None = None) -> None:
        super().__init__()
        self.scripts = scripts
        self.current = current
        self.commands = dict(commands or {})  # ":name" -> what it shows
        self.matches: list[str] = []

    def compose(self) -> ComposeResult:
        with Vertical() as box:
            box.border_title = "Run script (Enter runs, Esc closes)"
            yield Input(placeholder="script name, then --arg=value ...", id="palette-input")
            yield OptionList(id="palette-list")
            yield Static("type to search, up/down choose, Enter runs", id="palette-hint")

    def on_mount(self) -> None:
        self._refill("")
        self.query_one(Input).focus()

    def _refill(self, text: str) -> None:
        name, _ = split_query(text)
        self.matches = rank(name, self.scripts)
        best_script = fuzzy_score(name, self.matches[0]) if self.matches else None
        for cmd in self.commands:
            score = fuzzy_score(name, cmd.lstrip(":"))
            if score is None:
                continue
            first = bool(name) and (best_script is None or score > best_script)
            self.matches.insert(0, cmd) if first else self.matches.append(cmd)
        options = self.query_one(OptionList)
        options.clear_options()
        for sid in self.matches:
            label = Text(sid, style="bold")
            short = self.commands[sid] if sid in self.commands else self.scripts[sid].short
            if short:
                label.append(f"  {short}", style="dim")
            options.add_option(Option(label, id=sid))
        if self.matches:
            options.highlighted = 0
        hint = f"{len(self.matches)} of {len(self.scripts)} scripts" if text else "type to search · Enter runs"
        self.query_one("#palette-hint", Static).update(hint)

    @on(Input.Changed, "#palette-input")
    def _changed(self, event: Input.Changed) -> None:
        self._refill(event.value)

    @on(Input.Submitted, "#palette-input")
    def _submitted(self, event: Input.Submitted) -> None:
        self._choose()

    @on(OptionList.OptionSelected)
    def _selected(self, event: OptionList.OptionSelected) -> None:
        self._choose()

    def _choose(self) -> None:
        options = self.query_one(OptionList)
        if not self.matches or options.highlighted is None:
            self.notify("no script matches", severity="warning")
            return
        _, args = split_query(self.query_one(Input).value)
        self.dismiss((self.matches[options.highlighted], args))

    def action_move(self, delta: int) -> None:
        options = self.query_one(OptionList)
        if self.matches:
            current = options.highlighted or 0
            options.highlighted = max(0, min(len(self.matches) - 1, current + delta))

    def action_close(self) -> None:
        self.dismiss(None)
