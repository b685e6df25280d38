"""Reading what the app drew, as plain text (UI test helper)."""

from __future__ import annotations

from textual.app import App

BOX_AND_BLOCK = [(0x2500, 0x259F), (0x2800, 0x28FF)]  # box drawing, block elements, braille


def screen_text(app: App) -> str:
    """The whole screen (including modal screens and the footer), one line per terminal row."""
    strips = app.screen._compositor.render_strips()
    return "\n".join(strip.text for strip in strips)


def non_ascii_drawing(text: str) -> set[str]:
    """Box-drawing, block and braille characters in `text` (must be none in ASCII mode)."""
    return {ch for ch in text if any(lo <= ord(ch) <= hi for lo, hi in BOX_AND_BLOCK)}
