"""`e`: the script's PxL in an editor pane; ctrl+r re-runs the edited script in place.

PxL is Python syntax, so it is highlighted as Python. Textual's own highlighting needs
tree-sitter (an optional native dependency); Pygments, which Rich already brings, gives the same
colours here by filling the TextArea's highlight map from its Python lexer. Compile errors come
back as "L<line> : C<col>  message": the pane puts the cursor there, selects the line and
prints the message under the text, so the user sees where and why without leaving the editor.
ctrl+s writes the edited script to a file (the notification says where).
"""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import ClassVar

from pygments.lexers.python import PythonLexer
from pygments.token import Token, _TokenType
from textual import events
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.message import Message
from textual.widgets import Static, TextArea

ERROR_AT = re.compile(r"L(\d+)\s*:\s*C(\d+)\s*(.*)")

_TOKEN_NAMES: list[tuple[_TokenType, str]] = [
    (Token.Comment, "comment"),
    (Token.Literal.String.Doc, "string.documentation"),
    (Token.Literal.String, "string"),
    (Token.Literal.Number, "number"),
    (Token.Keyword.Constant, "boolean"),
    (Token.Keyword, "keyword"),
    (Token.Operator.Word, "keyword.operator"),
    (Token.Operator, "operator"),
    (Token.Name.Builtin, "function.call"),
    (Token.Name.Function, "function"),
    (Token.Name.Class, "class"),
    (Token.Name.Decorator, "function"),
    (Token.Punctuation, "punctuation.bracket"),
]


def highlight_name(token: _TokenType) -> str | None:
    """The TextArea theme's highlight name for a Pygments token type."""
    for kind, name in _TOKEN_NAMES:
        if token in kind:
            return name
    return None


def error_location(message: str) -> tuple[int, int, str] | None:
    """(line, column, text) from "... L3 : C5  name 'x' is not defined", 1-based; None if absent."""
    m = ERROR_AT.search(message)
    if m is None:
        return None
    return int(m.group(1)), int(m.group(2)), m.group(3).strip()


class PxlTextArea(TextArea):
    """A code TextArea whose highlights come from Pygments' Python lexer; Esc closes the pane
    (TextArea's own Esc only moves focus on, which would leave the pane open and hidden keys)."""

    async def _on_key(self, event: events.Key) -> None:
        close = getattr(self.parent, "action_close", None)
        if event.key == "escape" and close is not None:
            event.stop()
            event.prevent_default()
            close()
            return
        await super()._on_key(event)

    def _build_highlight_map(self) -> None:
        """Called by TextArea after every edit; PxL scripts are small, so re-lexing is cheap."""
        self._line_cache.clear()
        highlights = self._highlights
        highlights.clear()
        row, col = 0, 0  # columns are byte offsets, as the TextArea expects
        for token, value in PythonLexer(stripnl=False, ensurenl=False).get_tokens(self.text):
            name = highlight_name(token)
            pieces = value.split("\n")
            for k, piece in enumerate(pieces):
                if k:
                    row, col = row + 1, 0
                end = col + len(piece.encode())
                if name is not None and piece:
                    highlights[row].append((col, end, name))
                col = end


class ScriptEditor(Vertical, can_focus=False):
    """The editor pane above the widgets; hidden until `open`."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("ctrl+r", "run", "Run edited", priority=False),
        Binding("ctrl+s", "save", "Save .pxl"),
        Binding("escape", "close", "Close editor"),
    ]

    DEFAULT_CSS = """
    ScriptEditor { height: 50%; display: none; border: round $accent; }
    ScriptEditor.-open { display: block; }
    ScriptEditor > PxlTextArea, ScriptEditor > PxlTextArea:focus { height: 1fr; border: none; padding: 0; }
    ScriptEditor > #editor-error { height: auto; max-height: 3; color: $error; display: none; padding: 0 1; }
    ScriptEditor > #editor-error.-shown { display: block; }
    """

    class RunRequested(Message):
        """ctrl+r: run this PxL instead of the script's own."""

        def __init__(self, source: str) -> None:
            super().__init__()
            self.source = source

    class Closed(Message):
        """Esc: focus goes back to the widgets."""

    def __init__(self, save_dir: Path, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.save_dir = save_dir
        self.script_id = ""
        self.saved_path: Path | None = None
        self.error: tuple[int, int, str] | None = None

    def compose(self) -> ComposeResult:
        yield PxlTextArea("", show_line_numbers=True, tab_behavior="indent", soft_wrap=False, id="editor-text")
        yield Static("", id="editor-error", markup=False)

    @property
    def text_area(self) -> PxlTextArea:
        return self.query_one(PxlTextArea)

    def load(self, script_id: str, source: str) -> None:
        """Put a script's source in the editor (on open and when another script is chosen)."""
        self.script_id = script_id
        self.border_title = f"{script_id}.pxl  (ctrl+r run, ctrl+s save, Esc close)"
        if self.text_area.text != source:
            self.text_area.load_text(source)
        self.clear_error()

    def open(self) -> None:
        self.add_class("-open")
        self.text_area.focus()

    def close(self) -> None:
        self.remove_class("-open")

    @property
    def is_open(self) -> bool:
        return self.has_class("-open")

    def mark_error(self, message: str) -> bool:
        """Show a compile error at its line; False when the message carries no location."""
        where = error_location(message)
        box = self.query_one("#editor-error", Static)
        box.update(message)
        box.add_class("-shown")
        if where is None:
            self.error = None
            return False
        line, _col, _ = where
        self.error = where
        ta = self.text_area
        last = max(0, ta.document.line_count - 1)
        row = max(0, min(line - 1, last))
        ta.select_line(row)
        ta.scroll_cursor_visible(center=True)
        return True

    def clear_error(self) -> None:
        self.error = None
        box = self.query_one("#editor-error", Static)
        box.update("")
        box.remove_class("-shown")

    def action_run(self) -> None:
        self.post_message(self.RunRequested(self.text_area.text))

    def action_save(self) -> None:
        self.save_dir.mkdir(parents=True, exist_ok=True)
        safe = "".join(ch if ch.isalnum() or ch in "-_" else "_" for ch in self.script_id) or "script"
        path = self.save_dir / f"{safe}-{time.strftime('%Y%m%d-%H%M%S')}.pxl"
        n = 1
        while path.exists():
            n += 1
            path = self.save_dir / f"{safe}-{time.strftime('%Y%m%d-%H%M%S')}-{n}.pxl"
        try:
            path.write_text(self.text_area.text)
        except OSError as e:
            self.notify(f"could not save {path}: {e}", severity="error", timeout=8)
            return
        self.saved_path = path.resolve()
        self.notify(f"Script saved to {self.saved_path}", timeout=8)

    def action_close(self) -> None:
        self.close()
        self.post_message(self.Closed())
