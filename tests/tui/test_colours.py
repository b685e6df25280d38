"""16-colour terminals and NO_COLOR.

In a real terminal (a pty): with TERM=xterm and no COLORTERM, Textual's console picks the
16-colour system, and every colour the app writes must be one of the 16 (no 256-colour or
truecolour escapes a console would show as garbage); with NO_COLOR, no colour with a hue is
written at all. In process: the theme's truecolour styles are downgraded to the 16 colours the
way Textual writes them, and no text may end up in the same colour as its background (it would
vanish) on any widget or screen. UI tests over the fake data in widget_data.py.
"""

from __future__ import annotations

import os
import pty
import re
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from rich.color import ColorSystem
from textual.geometry import Region
from textual.screen import ModalScreen

from pxtui.app import PxApp
from pxtui.runner import ScriptResult
from tests.tui.fakes import FakeRunner
from tests.tui.test_diagnostics import WARNING, StatusRunner, two_agents
from tests.tui.widget_data import WIDGETS, dashboard_script, make_widget_app, result, widget_script

ROOT = Path(__file__).resolve().parents[2]
SGR = re.compile(rb"\x1b\[([0-9;:]*)m")
HUES_16 = {31, 32, 33, 34, 35, 36, 91, 92, 93, 94, 95, 96, 41, 42, 43, 44, 45, 46, 101, 102, 103, 104, 105, 106}


def _sgr_colours(out: bytes) -> tuple[set[int], list[tuple[int, ...]]]:
    """The 16-colour codes used, and every extended colour (38/48 ;5;n or ;2;r;g;b) as a tuple."""
    basic: set[int] = set()
    extended: list[tuple[int, ...]] = []
    for m in SGR.finditer(out):
        params = [int(p) if p else 0 for p in re.split(rb"[;:]", m.group(1))]
        i = 0
        while i < len(params):
            p = params[i]
            if p in (38, 48) and i + 1 < len(params):
                n = 3 if params[i + 1] == 5 else 5
                extended.append(tuple(params[i : i + n]))
                i += n
                continue
            if 30 <= p <= 37 or 40 <= p <= 47 or 90 <= p <= 97 or 100 <= p <= 107:
                basic.add(p)
            i += 1
    return basic, extended


def _run_in_pty(env_changes: dict[str, str | None], timeout: float = 30) -> bytes:
    """The dashboard app on a pty with this environment; everything it wrote until it drew the
    first chart and then ended on SIGTERM."""
    env = {**os.environ, "COLUMNS": "120", "LINES": "40", "PYTHONPATH": str(ROOT)}
    for k, v in env_changes.items():
        if v is None:
            env.pop(k, None)
        else:
            env[k] = v
    master, slave = pty.openpty()
    os.set_blocking(master, False)
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.tui.pty_app"],
        cwd=ROOT,
        env=env,
        stdin=slave,
        stdout=slave,
        stderr=slave,
        start_new_session=True,
    )
    os.close(slave)
    out = bytearray()
    try:
        deadline = time.monotonic() + timeout
        while b"Request rate" not in out and time.monotonic() < deadline:
            if select.select([master], [], [], 0.1)[0]:
                try:
                    out += os.read(master, 65536)
                except OSError:
                    break
        assert b"Request rate" in out, out[-2000:]
        time.sleep(1.0)  # a full frame, charts included
        proc.send_signal(signal.SIGTERM)
        end = time.monotonic() + 15
        while time.monotonic() < end:
            if select.select([master], [], [], 0.1)[0]:
                try:
                    chunk = os.read(master, 65536)
                except OSError:
                    break
                if not chunk:
                    break
                out += chunk
            elif proc.poll() is not None:
                break
        assert proc.wait(timeout=15) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
        os.close(master)
    return bytes(out)


def test_16_colour_terminal_gets_only_16_colours() -> None:
    out = _run_in_pty({"TERM": "xterm", "COLORTERM": None, "NO_COLOR": None, "TEXTUAL_COLOR_SYSTEM": None})
    basic, extended = _sgr_colours(out)
    assert extended == [], f"256-colour or truecolour escapes on a 16-colour terminal: {extended[:5]}"
    assert basic & HUES_16, "no colour at all: the 16-colour palette should still be used"


def test_truecolour_terminal_for_comparison() -> None:
    """The same app on a truecolour terminal does write 24-bit colours (so the test above can fail)."""
    out = _run_in_pty(
        {"TERM": "xterm-256color", "COLORTERM": "truecolor", "NO_COLOR": None, "TEXTUAL_COLOR_SYSTEM": None}
    )
    _, extended = _sgr_colours(out)
    assert any(e[1] == 2 for e in extended)


def test_no_color_writes_no_hue() -> None:
    out = _run_in_pty(
        {"TERM": "xterm-256color", "COLORTERM": "truecolor", "NO_COLOR": "1", "TEXTUAL_COLOR_SYSTEM": None}
    )
    basic, extended = _sgr_colours(out)
    assert not (basic & HUES_16), f"16-colour hues under NO_COLOR: {sorted(basic & HUES_16)}"
    hued = [e for e in extended if e[1] == 2 and len(set(e[2:])) > 1]
    assert hued == [], f"coloured (non-grey) escapes under NO_COLOR: {hued[:5]}"
    assert b"Request rate" in out and b"Network flow" in out  # and the app drew everything anyway


# ------------------------------------------------------------------------------ in process


def _invisible_text(app: PxApp, region: Region | None = None) -> set[tuple[str, int]]:
    """Text (inside `region`, else anywhere) whose colour, once downgraded to the 16 colours as
    Textual writes it, equals its background's: (text, colour number) pairs."""
    bad: set[tuple[str, int]] = set()
    for y, strip in enumerate(app.screen._compositor.render_strips()):
        x = 0
        for seg in strip:
            st = seg.style
            x0, x = x, x + seg.cell_length
            if region is not None and not (region.y <= y < region.bottom and region.x <= x0 < region.right):
                continue
            if st is None or not seg.text.strip() or st.color is None or st.bgcolor is None:
                continue
            fg, bg = st.color.downgrade(ColorSystem.STANDARD), st.bgcolor.downgrade(ColorSystem.STANDARD)
            if fg.number == bg.number:
                bad.add((seg.text.strip()[:30], fg.number or 0))
    return bad


async def _ready(app: PxApp, pilot) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + 10
    while app.run_count < 1:
        assert time.monotonic() < deadline
        await pilot.pause(0.01)
    await pilot.pause(0.2)


VIEWS = [*WIDGETS, "dashboard", "diagnostics", "warnings", "help", "palette", "editor", "graph-selected"]


@pytest.mark.parametrize("view", VIEWS)
async def test_16_colour_downgrade_keeps_all_text_visible(tmp_path: Path, view: str) -> None:
    script = dashboard_script() if view == "dashboard" else widget_script(view if view in WIDGETS else "Table")
    runner: FakeRunner = FakeRunner(produce=result)
    if view == "diagnostics":
        runner = StatusRunner([two_agents()])
    if view == "warnings":
        runner = FakeRunner(produce=lambda n: ScriptResult(tables=result(n).tables, warnings=[WARNING]))
    if view == "graph-selected":
        script = widget_script("RequestGraph")
    app = make_widget_app(script, tmp_path, runner=runner)
    async with app.run_test(size=(120, 40)) as pilot:
        await _ready(app, pilot)
        keys = {
            "diagnostics": ["d", "tab", "enter"],
            "help": ["question_mark"],
            "palette": ["colon", "c"],
            "editor": ["e"],
            "graph-selected": ["j"],
            "Table": ["down"],
        }.get(view, [])
        for key in keys:
            await pilot.press(key)
            await pilot.pause(0.1)
        await pilot.pause(0.3)
        # behind a modal the screen is dimmed on purpose: only the modal itself must stay readable
        region = app.screen.children[0].region if isinstance(app.screen, ModalScreen) else None
        assert _invisible_text(app, region) == set()
