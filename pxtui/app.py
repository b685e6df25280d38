"""The live view: runs a script every few seconds and draws its vis.json widgets.

The event loop never waits on the cluster: each run (and the formatting of its tables, which is
pure Arrow work) happens in a Textual thread worker, and only the hand-over of ready-made display
text happens on the loop. At most one run is in flight; a refresh asked for meanwhile is queued,
and timer ticks that find a run still going are skipped rather than piled up. Every run carries
the generation of the script it was started for, so a result that lands after the user switched
scripts (palette, drill-down, Esc back) is dropped instead of drawn into the wrong widgets.

Errors from the runner are part of normal life here (a broker restarting, a script being edited):
they show in a red panel above the widgets while the data already on screen stays, and the next
tick tries again; a compile error is also marked at its line in the editor pane.

Keys follow k9s and px live: `?` keys, `:` or ctrl+k scripts, `/` filter, Enter open (or follow
a script reference), Esc back, j/k move, q quit.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, tzinfo
from pathlib import Path
from typing import ClassVar

from textual import on, work
from textual.app import App, ComposeResult
from textual.binding import Binding, BindingType
from textual.scrollbar import ScrollBar, ScrollBarRender
from textual.timer import Timer
from textual.widget import Widget
from textual.widgets import Footer

from cluster.pxl.vis import Vis, VisError
from cluster.schemas import semantic_type
from pxtui.format import FormattedTable, format_table
from pxtui.runner import ClusterStatus, ScriptError, ScriptRunner, VizierUnavailable
from pxtui.screens.diagnostics import DiagnosticsScreen
from pxtui.screens.help import HelpScreen
from pxtui.screens.row_detail import RowDetailScreen
from pxtui.screens.script_palette import ScriptPalette
from pxtui.scripts import Script, ScriptNotFound, bundled
from pxtui.widgets.error_panel import ErrorPanel
from pxtui.widgets.glyphs import ASCII, UNICODE, ascii_from_env
from pxtui.widgets.header_bar import HeaderBar
from pxtui.widgets.script_editor import ScriptEditor
from pxtui.widgets.status_bar import StatusBar, StatusInfo
from pxtui.widgets.table_panel import TablePanel
from pxtui.widgets.variables_bar import VariablesBar
from pxtui.widgets.vis_layout import VisLayout
from pxtui.widgets.vis_panel import VisPanel
from pxtui.widgets.warning_bar import WarningBar

COMMANDS = {":diagnostics": "agents, probes, kernel headers, lost events, tables: why is there no data"}
"""Palette entries that open a view instead of running a script."""


@dataclass
class RunOutcome:
    """What a worker hands back to the loop: formatted tables or an error, plus cluster status."""

    tables: dict[str, FormattedTable] | None
    error: tuple[str, str] | None  # (title, message)
    status: ClusterStatus | None
    run_s: float
    warnings: list[str]
    generation: int = 0


class AsciiScrollBarRender(ScrollBarRender):
    """Scrollbars drawn with spaces only (Textual's use block characters for sub-cell thumbs)."""

    VERTICAL_BARS: ClassVar[list[str]] = [" "] * 8
    HORIZONTAL_BARS: ClassVar[list[str]] = [" "] * 8


def default_save_dir() -> Path:
    """Where `w` writes rows: $PXTUI_SAVE_DIR, else the directory pxtui was started in."""
    return Path(os.environ.get("PXTUI_SAVE_DIR") or os.getcwd())


class PxApp(App[None]):
    """`pxtui live SCRIPT`: header, vis widgets, status line, key footer."""

    CSS_PATH = Path(__file__).with_name("app.tcss")  # absolute: subclasses live in other folders
    TITLE = "pxtui"
    ENABLE_COMMAND_PALETTE = False  # ctrl+k / `:` open the script palette instead
    AUTO_FOCUS = None  # the first panel gets focus once it exists, never the hidden editor

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("q", "quit", "Quit"),
        Binding("question_mark", "help", "Keys"),
        Binding("colon,ctrl+k", "palette", "Scripts"),
        Binding("space", "toggle_pause", "Pause"),
        Binding("r", "refresh_now", "Refresh"),
        Binding("ctrl+r", "refresh_now", "Refresh", show=False),
        Binding("a", "edit_args", "Args"),
        Binding("e", "edit_script", "Edit"),
        Binding("d", "diagnostics", "Diagnostics", show=False),
        Binding("escape", "back", "Back", show=False),
        Binding("ctrl+c", "quit", "Quit", show=False),
    ]

    def __init__(
        self,
        runner: ScriptRunner,
        script: Script,
        args: dict[str, str],
        refresh_s: float = 2.0,
        *,
        save_dir: Path | None = None,
        tz: tzinfo | None = None,
        ascii_only: bool | None = None,
        clock: Callable[[], datetime] | None = None,
        timer: Callable[[], float] | None = None,
        scripts: dict[str, Script] | None = None,
    ) -> None:
        super().__init__()
        self.runner = runner
        self.script = script
        self.args = dict(args)
        self.refresh_s = refresh_s
        self.save_dir = save_dir or default_save_dir()
        self.tz = tz
        self.clock = clock or datetime.now  # "at HH:MM:SS" in the status line
        self.timer = timer or time.perf_counter  # how long a run took (tests pin both)
        self.ascii_only = ascii_from_env() if ascii_only is None else ascii_only
        self.glyphs = ASCII if self.ascii_only else UNICODE
        self.set_class(self.ascii_only, "-ascii")
        ScrollBar.renderer = AsciiScrollBarRender if self.ascii_only else ScrollBarRender
        self._scripts = scripts
        self.history: list[tuple[Script, dict[str, str]]] = []  # drill-down trail, for Esc
        self.paused = False
        self.run_count = 0  # completed runs, successful or not (tests poll this)
        self.last_apply_s = 0.0  # event-loop time spent showing the last result
        self._generation = 0
        self._in_flight = False
        self._rerun = False
        self._timer: Timer | None = None
        self._status = StatusInfo(refresh_s=refresh_s, tz=tz)
        self._vis: Vis | None
        self._vis_error: str | None
        self._header_args = self._load_vis(script, self.args)

    def _load_vis(self, script: Script, args: dict[str, str]) -> dict[str, str]:
        """Parse the script's vis and resolve args; a problem is kept to show in place, not raised
        (bad arguments still draw the widgets: the runner's own error will say the rest)."""
        self._vis_error = None
        try:
            self._vis = script.vis
        except VisError as e:
            self._vis, self._vis_error = None, str(e)
            return args
        try:
            return self._vis.resolve_args(args)
        except VisError as e:
            self._vis_error = str(e)
            return args

    @property
    def scripts(self) -> dict[str, Script]:
        """The bundled scripts, loaded on first use (the palette, a drill-down)."""
        if self._scripts is None:
            self._scripts = bundled()
        return self._scripts

    # ---------------------------------------------------------------- layout

    def compose(self) -> ComposeResult:
        yield HeaderBar(self.script.id, self._header_args, id="header")
        yield VariablesBar(id="vars")
        yield ScriptEditor(self.save_dir, id="editor")
        yield ErrorPanel(id="error")
        yield VisLayout(self._vis.widgets if self._vis is not None else (), id="body")
        yield WarningBar(id="warnings")
        yield StatusBar(id="status")
        yield Footer()

    def on_mount(self) -> None:
        if self._vis_error is not None:
            self.error_panel.show_error("vis.json", self._vis_error)
        self.editor.load(self.script.id, self.script.pxl)
        self._focus_first_panel()
        self._timer = self.set_interval(self.refresh_s, self._tick)
        self._install_signal_handlers()
        self._show_status()
        self.refresh_now()

    def _install_signal_handlers(self) -> None:
        """SIGTERM and SIGHUP end the app through its normal exit, so the terminal is restored
        (alternate screen left, cursor shown, raw mode off) instead of left garbled."""
        if self.is_headless:
            return
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGTERM, signal.SIGHUP):
                loop.add_signal_handler(sig, self.exit)

    @property
    def body(self) -> VisLayout:
        return self.query_one("#body", VisLayout)

    @property
    def error_panel(self) -> ErrorPanel:
        return self.query_one("#error", ErrorPanel)

    @property
    def status_bar(self) -> StatusBar:
        return self.query_one("#status", StatusBar)

    @property
    def warning_bar(self) -> WarningBar:
        return self.query_one("#warnings", WarningBar)

    @property
    def header_bar(self) -> HeaderBar:
        return self.query_one("#header", HeaderBar)

    @property
    def editor(self) -> ScriptEditor:
        return self.query_one("#editor", ScriptEditor)

    @property
    def vars_bar(self) -> VariablesBar:
        return self.query_one("#vars", VariablesBar)

    def _focus_first_panel(self) -> None:
        """Focus the top-left widget (layout order), unless something already has focus."""
        if self.focused is not None:
            return
        for panel in self.body.query("TablePanel, VisPanel"):
            if isinstance(panel, TablePanel):
                panel.grid.focus(scroll_visible=False)
            else:
                panel.focus(scroll_visible=False)
            return

    def _current_panel(self) -> TablePanel | None:
        """The panel holding focus, else the first: its rows are the ones the status line counts."""
        node: Widget | None = self.focused
        while node is not None:
            if isinstance(node, TablePanel):
                return node
            node = node.parent if isinstance(node.parent, Widget) else None
        panels = self.body.table_panels
        return panels[0] if panels else None

    def _update_header(self, shown_args: dict[str, str]) -> None:
        self.header_bar.set_script(self.script.id, shown_args, [s.id for s, _ in self.history])

    # ---------------------------------------------------------------- running

    def _tick(self) -> None:
        if not self.paused and not self._in_flight:
            self.refresh_now()

    def refresh_now(self) -> None:
        """Start a run now, or queue one if a run is in flight (so `r` is never lost)."""
        if self._in_flight:
            self._rerun = True
            return
        self._in_flight = True
        self.header_bar.running = True
        self._run_in_thread(self.script, dict(self.args), self._generation)

    @work(thread=True, group="script-run", exit_on_error=False)
    def _run_in_thread(self, script: Script, args: dict[str, str], generation: int) -> None:
        """Run the script and format its tables off the event loop, then hand over."""
        t0 = self.timer()
        tables: dict[str, FormattedTable] | None = None
        error: tuple[str, str] | None = None
        warnings: list[str] = []
        try:
            result = self.runner.run(script, args)
            warnings = list(result.warnings)
            tables = {}
            for name, table in result.tables:
                if name not in tables:  # first wins, as vis outputs are unique names
                    tables[name] = format_table(name, table, self.tz)
        except ScriptError as e:
            error = ("Script error", str(e))
        except VizierUnavailable as e:
            error = ("Vizier unavailable", str(e))
        except Exception as e:  # a runner bug must not end the live view
            error = ("Unexpected error", f"{type(e).__name__}: {e}")
        run_s = self.timer() - t0
        status: ClusterStatus | None = None
        try:
            status = self.runner.status()
        except Exception:  # status is decoration; the run's own error (if any) is what matters
            status = None
        outcome = RunOutcome(tables, error, status, run_s, warnings, generation)
        with contextlib.suppress(RuntimeError):  # the app is shutting down
            self.call_from_thread(self._apply, outcome)

    async def _apply(self, outcome: RunOutcome) -> None:
        t0 = time.perf_counter()
        try:
            if outcome.generation != self._generation:
                return  # started for a script no longer shown
            if outcome.error is not None:
                note = "paused: r retries" if self.paused else f"retrying every {self.refresh_s:g} s"
                self.error_panel.show_error(outcome.error[0], outcome.error[1], note)
                if outcome.error[0] == "Script error":
                    self.editor.mark_error(outcome.error[1])
            else:
                if self._vis_error is None:
                    self.error_panel.clear_error()
                self.editor.clear_error()
                assert outcome.tables is not None
                await self.body.update_tables(outcome.tables)
                self._focus_first_panel()
                # a partial result keeps its rows on screen and says what they lack, until a
                # result without warnings (an error keeps the rows, so it keeps their warnings too)
                self.warning_bar.show_warnings(outcome.warnings)
            if outcome.status is not None:
                self._status.cluster = outcome.status
            self._status.refreshed_at = self.clock()
            self._status.run_s = outcome.run_s
            self._status.failing = outcome.error is not None
            self._show_status()
        finally:
            self.last_apply_s = time.perf_counter() - t0
            self.run_count += 1
            self._in_flight = False
            self.header_bar.running = False
            if self._rerun:
                self._rerun = False
                self.refresh_now()

    def _show_status(self) -> None:
        if not self.screen_stack:  # a late message while the app shuts down
            return
        panel = self._current_panel()
        if panel is not None and panel.model is not None:
            self._status.shown_rows = panel.shown_rows
            self._status.total_rows = panel.total_rows
        else:
            self._status.shown_rows = self._status.total_rows = None
        self._status.paused = self.paused
        self.status_bar.show(self._status)

    # ---------------------------------------------------------------- switching scripts

    async def switch_script(self, script: Script, args: dict[str, str], *, push: bool = True) -> bool:
        """Show another script's widgets and run it; False (and the reason shown) if its vis or
        the arguments do not fit. `push` keeps the current one for Esc (drill-down, palette)."""
        try:
            vis = script.vis
            shown = vis.resolve_args(args)
        except VisError as e:
            self.error_panel.show_error(f"Cannot run {script.id}", str(e))
            return False
        if push:
            self.history.append((self.script, self.args))
        self.script, self.args = script, dict(args)
        self._vis, self._vis_error = vis, None
        self._generation += 1
        self._rerun = self._in_flight  # the run in flight is for the old script: go again after
        await self.body.remove()
        await self.mount(VisLayout(vis.widgets, id="body"), before=self.warning_bar)
        self.warning_bar.show_warnings([])
        self._update_header(shown)
        self.editor.load(script.id, script.pxl)
        self.vars_bar.close()
        self.error_panel.clear_error()
        self._status.shown_rows = self._status.total_rows = None
        self.set_focus(None)
        self._focus_first_panel()
        self._show_status()
        if not self._in_flight:
            self.refresh_now()
        return True

    async def follow_reference(self, cell: str) -> None:
        """Enter on a px.script_reference cell: run the linked bundled script with its args."""
        try:
            doc = json.loads(cell)
            target, args = str(doc["script"]), doc.get("args") or {}
            if not isinstance(args, dict):
                raise TypeError("args is not an object")
        except (TypeError, ValueError, KeyError) as e:
            self.error_panel.show_error("Script reference", f"cannot follow {cell!r}: {e}")
            return
        script = self.scripts.get(target)
        if script is None:
            known = ", ".join(sorted(self.scripts)) or "none"
            self.error_panel.show_error("Script reference", f"{doc.get('label', target)!r} links to "
                                        f"{target}, which is not bundled (bundled: {known})")
            return
        await self.switch_script(script, {str(k): "" if v is None else str(v) for k, v in args.items()})

    async def action_back(self) -> None:
        """Esc: back to the script before the last drill-down or palette pick."""
        if self.vars_bar.is_open:
            self.vars_bar.close()
            self._focus_back()
            return
        if not self.history:
            return
        script, args = self.history.pop()
        await self.switch_script(script, args, push=False)

    def _focus_back(self) -> None:
        self.set_focus(None)
        self._focus_first_panel()

    # ---------------------------------------------------------------- events and actions

    @on(TablePanel.ViewChanged)
    def _view_changed(self, event: TablePanel.ViewChanged) -> None:
        self._show_status()

    @on(TablePanel.RowOpened)
    async def _open_row(self, event: TablePanel.RowOpened) -> None:
        model = event.model
        values = model.row_values(event.index)
        if event.column is not None:
            fld = model.raw.schema.field(event.column)
            cell = values.get(event.column)
            if semantic_type(fld) == "ST_SCRIPT_REFERENCE" and isinstance(cell, str) and cell:
                await self.follow_reference(cell)
                return
        self.push_screen(RowDetailScreen(model.name, model.raw.schema, values, self.save_dir))

    def action_toggle_pause(self) -> None:
        """Space: freeze the data to read it; the timer stops, `r` still refreshes once."""
        self.paused = not self.paused
        if self._timer is not None:
            if self.paused:
                self._timer.pause()
            else:
                self._timer.resume()
        self.header_bar.paused = self.paused
        self._show_status()
        if not self.paused:
            self.refresh_now()

    def action_refresh_now(self) -> None:
        self.refresh_now()

    def action_palette(self) -> None:
        """`:` / ctrl+k: fuzzy-pick a bundled script (and args) to run in place."""
        try:
            scripts = self.scripts
        except (ScriptNotFound, OSError, VisError) as e:
            self.error_panel.show_error("Scripts", f"cannot list bundled scripts: {e}")
            return

        async def chosen(choice: tuple[str, dict[str, str]] | None) -> None:
            if choice is not None:
                sid, args = choice
                if sid == ":diagnostics":
                    self.action_diagnostics()
                    return
                await self.switch_script(scripts[sid], args)

        self.push_screen(ScriptPalette(scripts, self.script.id, commands=COMMANDS), chosen)

    def action_diagnostics(self) -> None:
        """`d` / `:diagnostics`: every agent's state, probes, headers, loss and tables, live."""
        if isinstance(self.screen, DiagnosticsScreen):
            return
        source = getattr(self.runner, "get_status", None)  # a recording (LocalRunner) has no agents
        self.push_screen(DiagnosticsScreen(source if callable(source) else None, refresh_s=self.refresh_s,
                                           tz=self.tz, clock=self.clock, glyphs=self.glyphs))

    async def action_edit_args(self) -> None:
        """`a`: the variables bar, filled with the current values."""
        if self._vis is None:
            self.notify("this script's vis.json could not be read: no arguments to edit", severity="warning")
            return
        values = self._header_args_now()
        await self.vars_bar.open(self._vis.variables, values)

    def _header_args_now(self) -> dict[str, str]:
        if self._vis is None:
            return dict(self.args)
        try:
            return self._vis.resolve_args(self.args)
        except VisError:
            known = {v.name for v in self._vis.variables}
            return {k: v for k, v in self.args.items() if k in known}

    @on(VariablesBar.Applied)
    def _args_applied(self, event: VariablesBar.Applied) -> None:
        assert self._vis is not None
        try:
            shown = self._vis.resolve_args(event.values)
        except VisError as e:
            self.vars_bar.show_error(str(e))
            return
        self.args = dict(event.values)
        self._vis_error = None
        self.error_panel.clear_error()
        self._update_header(shown)
        self.vars_bar.close()
        self._focus_back()
        self.refresh_now()

    @on(VariablesBar.Closed)
    def _args_closed(self, event: VariablesBar.Closed) -> None:
        self._focus_back()

    def action_edit_script(self) -> None:
        """`e`: open the editor pane on the current script's PxL."""
        self.editor.open()

    @on(ScriptEditor.RunRequested)
    def _run_edited(self, event: ScriptEditor.RunRequested) -> None:
        self.script = self.script.with_source(event.source)
        self.editor.clear_error()
        self.refresh_now()

    @on(ScriptEditor.Closed)
    def _editor_closed(self, event: ScriptEditor.Closed) -> None:
        self._focus_back()

    def action_help(self) -> None:
        """`?`: the active bindings grouped by action, the ones the footer shows first."""
        by_desc: dict[str, list[str]] = {}
        shown: dict[str, bool] = {}
        # Every binding along the focus chain, not only the innermost per key: Esc means "clear
        # filter" in a table and "back" in the app, and both belong in the list.
        everything = [b for _, bindings in self.screen._binding_chain
                      for per_key in bindings.key_to_bindings.values() for b in per_key]
        for b in everything or [a.binding for a in self.active_bindings.values()]:
            if not b.description:
                continue
            keys = by_desc.setdefault(b.description, [])
            label = self.get_key_display(b)
            if label not in keys:
                keys.append(label)
            shown[b.description] = shown.get(b.description, False) or b.show
        order = sorted(by_desc, key=lambda d: not shown[d])  # stable: footer keys, then the rest
        self.push_screen(HelpScreen([(" ".join(by_desc[d]), d) for d in order]))


__all__ = ["PxApp", "RunOutcome", "VisPanel", "default_save_dir"]
