"""The live view: runs a script every few seconds and draws its vis.json widgets.

The event loop never waits on the cluster: each run (and the formatting of its tables, which is
pure Arrow work) happens in a Textual thread worker, and only the hand-over of ready-made display
text happens on the loop. At most one run is in flight; a refresh asked for meanwhile is queued,
and timer ticks that find a run still going are skipped rather than piled up.

Errors from the runner are part of normal life here (a broker restarting, a script being edited):
they show in a red panel above the widgets while the data already on screen stays, and the next
tick tries again.
"""

from __future__ import annotations

import contextlib
import os
import time
from dataclasses import dataclass
from datetime import datetime, tzinfo
from pathlib import Path
from typing import ClassVar

from textual import on, work
from textual.app import App, ComposeResult
from textual.binding import Binding, BindingType
from textual.timer import Timer
from textual.widget import Widget
from textual.widgets import Footer

from cluster.pxl.vis import VisError
from pxtui.format import FormattedTable, format_table
from pxtui.runner import ClusterStatus, ScriptError, ScriptRunner, VizierUnavailable
from pxtui.screens.help import HelpScreen
from pxtui.screens.row_detail import RowDetailScreen
from pxtui.scripts import Script
from pxtui.widgets.error_panel import ErrorPanel
from pxtui.widgets.header_bar import HeaderBar
from pxtui.widgets.status_bar import StatusBar, StatusInfo
from pxtui.widgets.table_panel import TablePanel
from pxtui.widgets.vis_layout import VisLayout


@dataclass
class RunOutcome:
    """What a worker hands back to the loop: formatted tables or an error, plus cluster status."""

    tables: dict[str, FormattedTable] | None
    error: tuple[str, str] | None  # (title, message)
    status: ClusterStatus | None
    run_s: float
    warnings: list[str]


def default_save_dir() -> Path:
    """Where `w` writes rows: $PXTUI_SAVE_DIR, else the directory pxtui was started in."""
    return Path(os.environ.get("PXTUI_SAVE_DIR") or os.getcwd())


class PxApp(App[None]):
    """`pxtui live SCRIPT`: header, vis widgets, status line, key footer."""

    CSS_PATH = "app.tcss"
    TITLE = "pxtui"

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("q", "quit", "Quit"),
        Binding("question_mark", "help", "Keys"),
        Binding("space", "toggle_pause", "Pause"),
        Binding("r", "refresh_now", "Refresh"),
        Binding("ctrl+r", "refresh_now", "Refresh", show=False),
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
    ) -> None:
        super().__init__()
        self.runner = runner
        self.script = script
        self.args = dict(args)
        self.refresh_s = refresh_s
        self.save_dir = save_dir or default_save_dir()
        self.tz = tz
        self.paused = False
        self.run_count = 0  # completed runs, successful or not (tests poll this)
        self.last_apply_s = 0.0  # event-loop time spent showing the last result
        self._in_flight = False
        self._rerun = False
        self._timer: Timer | None = None
        self._status = StatusInfo(refresh_s=refresh_s)
        try:
            self._vis = script.vis
            self._vis_error: str | None = None
            shown_args = self._vis.resolve_args(self.args)
        except VisError as e:
            self._vis = None
            self._vis_error = str(e)
            shown_args = self.args

        self._header_args = shown_args

    # ---------------------------------------------------------------- layout

    def compose(self) -> ComposeResult:
        yield HeaderBar(self.script.id, self._header_args, id="header")
        yield ErrorPanel(id="error")
        yield VisLayout(self._vis.widgets if self._vis is not None else (), id="body")
        yield StatusBar(id="status")
        yield Footer()

    def on_mount(self) -> None:
        if self._vis_error is not None:
            self.error_panel.show_error("vis.json", self._vis_error)
        self._focus_first_table()
        self._timer = self.set_interval(self.refresh_s, self._tick)
        self._show_status()
        self.refresh_now()

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
    def header_bar(self) -> HeaderBar:
        return self.query_one("#header", HeaderBar)

    def _focus_first_table(self) -> None:
        panels = self.body.table_panels
        if panels and self.focused is None:
            panels[0].grid.focus()

    def _current_panel(self) -> TablePanel | None:
        """The panel holding focus, else the first: its rows are the ones the status line counts."""
        node: Widget | None = self.focused
        while node is not None:
            if isinstance(node, TablePanel):
                return node
            node = node.parent if isinstance(node.parent, Widget) else None
        panels = self.body.table_panels
        return panels[0] if panels else None

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
        self._run_in_thread()

    @work(thread=True, group="script-run", exit_on_error=False)
    def _run_in_thread(self) -> None:
        """Run the script and format its tables off the event loop, then hand over."""
        t0 = time.perf_counter()
        tables: dict[str, FormattedTable] | None = None
        error: tuple[str, str] | None = None
        warnings: list[str] = []
        try:
            result = self.runner.run(self.script, self.args)
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
        run_s = time.perf_counter() - t0
        status: ClusterStatus | None = None
        try:
            status = self.runner.status()
        except Exception:  # status is decoration; the run's own error (if any) is what matters
            status = None
        outcome = RunOutcome(tables, error, status, run_s, warnings)
        with contextlib.suppress(RuntimeError):  # the app is shutting down
            self.call_from_thread(self._apply, outcome)

    async def _apply(self, outcome: RunOutcome) -> None:
        t0 = time.perf_counter()
        try:
            if outcome.error is not None:
                note = "paused: r retries" if self.paused else f"retrying every {self.refresh_s:g} s"
                self.error_panel.show_error(outcome.error[0], outcome.error[1], note)
            else:
                if self._vis_error is None:
                    self.error_panel.clear_error()
                assert outcome.tables is not None
                await self.body.update_tables(outcome.tables)
                self._focus_first_table()
                for w in outcome.warnings:
                    self.notify(w, severity="warning", timeout=6)
            if outcome.status is not None:
                self._status.cluster = outcome.status
            self._status.refreshed_at = datetime.now()
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
        panel = self._current_panel()
        if panel is not None and panel.model is not None:
            self._status.shown_rows = panel.shown_rows
            self._status.total_rows = panel.total_rows
        self._status.paused = self.paused
        self.status_bar.show(self._status)

    # ---------------------------------------------------------------- events and actions

    @on(TablePanel.ViewChanged)
    def _view_changed(self, event: TablePanel.ViewChanged) -> None:
        self._show_status()

    @on(TablePanel.RowOpened)
    def _open_row(self, event: TablePanel.RowOpened) -> None:
        model = event.model
        self.push_screen(RowDetailScreen(model.name, model.raw.schema, model.row_values(event.index),
                                         self.save_dir))

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

    def action_help(self) -> None:
        """`?`: the active bindings grouped by action, the ones the footer shows first."""
        by_desc: dict[str, list[str]] = {}
        shown: dict[str, bool] = {}
        for active in self.active_bindings.values():
            b = active.binding
            if not b.description:
                continue
            keys = by_desc.setdefault(b.description, [])
            label = self.get_key_display(b)
            if label not in keys:
                keys.append(label)
            shown[b.description] = shown.get(b.description, False) or b.show
        order = sorted(by_desc, key=lambda d: not shown[d])  # stable: footer keys, then the rest
        self.push_screen(HelpScreen([(" ".join(by_desc[d]), d) for d in order]))
