"""Pilot tests of every drawn vis widget, the grid layout, drill-down, palette, args and editor
(UI tests over the fake runner and the test data in widget_data.py)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from pxtui.app import PxApp
from pxtui.runner import ScriptError
from pxtui.screens.help import HelpScreen
from pxtui.screens.script_palette import ScriptPalette
from pxtui.widgets.bar_chart import BarChart
from pxtui.widgets.flame_graph import FlameGraph
from pxtui.widgets.histogram_chart import HistogramChart
from pxtui.widgets.service_graph import ServiceGraph
from pxtui.widgets.table_panel import TablePanel
from pxtui.widgets.timeseries_chart import TimeseriesChart
from tests.tui.screen import non_ascii_drawing, screen_text
from tests.tui.widget_data import WIDGETS, dashboard_script, make_widget_app, widget_runner, widget_script


async def wait_runs(app: PxApp, pilot, n: int, timeout: float = 10.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while app.run_count < n:
        assert time.monotonic() < deadline, f"only {app.run_count} of {n} runs completed"
        await pilot.pause(0.01)
    await pilot.pause()


async def test_timeseries_legend_axes_and_stacking(tmp_path: Path) -> None:
    app = make_widget_app(widget_script("TimeseriesChart"), tmp_path)
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_runs(app, pilot, 1)
        chart = app.query_one(TimeseriesChart)
        assert chart.border_title == "Request rate by service"
        assert [s.name for s in chart.series] == ["cart", "catalog", "frontend"]
        # stacked: each series' points sit on top of the previous series' at the same time
        first_t = chart.series[0].points[0][0]
        tops = [dict(s.points)[first_t] for s in chart.series]
        assert tops == sorted(tops) and chart.series[1].base is not None
        text = screen_text(app)
        assert "req/s:" in text and "● cart" in text and "◆ catalog" in text
        assert "22:13:20" in text and "22:18:10" in text  # first and last time on the x axis
        assert "░" in text  # MODE_AREA fills


async def test_bar_chart_stacks_and_values(tmp_path: Path) -> None:
    app = make_widget_app(widget_script("BarChart"), tmp_path)
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_runs(app, pilot, 1)
        chart = app.query_one(BarChart)
        assert chart.stack_keys == ["2xx", "4xx", "5xx"]
        text = screen_text(app)
        assert "█ 2xx" in text and "▓ 4xx" in text
        frontend = next(ln for ln in text.splitlines() if "frontend" in ln)
        assert "1098" in frontend and "▓" in frontend


async def test_histogram_bins_and_range(tmp_path: Path) -> None:
    app = make_widget_app(widget_script("HistogramChart"), tmp_path)
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_runs(app, pilot, 1)
        chart = app.query_one(HistogramChart)
        assert len(chart.pairs) == 400
        text = screen_text(app)
        assert "requests by latency" in text and "180 µs" in text and " ms" in text


async def test_graph_layers_weights_and_threshold_marks(tmp_path: Path) -> None:
    app = make_widget_app(widget_script("Graph"), tmp_path)
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_runs(app, pilot, 1)
        graph = app.query_one(ServiceGraph)
        text = screen_text(app)
        rows = {n: next(i for i, ln in enumerate(text.splitlines()) if f" {n} " in ln) for n in ("frontend", "payment")}
        assert rows["frontend"] < rows["payment"]  # layered: callers above what they call
        checkout = next(ln for ln in text.splitlines() if "▶ checkout" in ln)
        assert "!!" in checkout and "bytes_total 1.7 MiB" in checkout  # 180 ms > high threshold 100
        catalog = next(ln for ln in text.splitlines() if "▶ catalog" in ln)
        assert " ! " in catalog  # 12.5 ms: medium
        graph.focus()
        assert graph.selected_edge is not None and graph.selected_edge.dst == "catalog"  # list order: left to right
        await pilot.press("j", "j")
        assert graph.selected_edge.dst == "cart"
        await pilot.press("k")
        assert graph.selected_edge.dst == "checkout"


async def test_request_graph_labels_and_error_colouring(tmp_path: Path) -> None:
    app = make_widget_app(widget_script("RequestGraph"), tmp_path)
    async with app.run_test(size=(160, 40)) as pilot:
        await wait_runs(app, pilot, 1)
        text = screen_text(app)
        line = next(ln for ln in text.splitlines() if "▶ default/checkout" in ln)
        assert "p50 180 ms" in line and "p99 900 ms" in line and "err 12.00 %" in line and "rps 40" in line
        assert "!!" in line  # 12 % errors
        assert "default/payment-1" in text  # no responder service: the pod names the node


async def test_flame_graph_navigation_zoom_and_percentages(tmp_path: Path) -> None:
    app = make_widget_app(widget_script("StackTraceFlameGraph"), tmp_path)
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_runs(app, pilot, 1)
        flame = app.query_one(FlameGraph)
        assert app.focused is flame
        assert flame.root.count == 400 + 133
        assert "all: 533 samples, 100.0 % of all" in screen_text(app)
        await pilot.press("j", "j", "j", "j")  # frontend-1 > main > serve > handle_request
        assert flame.selected.path == ["default/frontend-1", "main", "serve", "handle_request"]
        assert "handle_request: 310 samples, 58.2 % of all" in screen_text(app)
        await pilot.press("enter")  # zoom into handle_request
        assert flame.zoom.name == "handle_request"
        await pilot.press("j", "l")  # parse_json, then its right neighbour query_db
        assert flame.selected.name == "query_db"
        text = screen_text(app)
        assert "query_db: 150 samples, 28.1 % of all, 48.4 % of handle_request" in text
        assert "▏handle_request" in text.splitlines()[2]  # the zoomed frame is the top row now
        await pilot.press("escape")
        assert flame.zoom is flame.root
        await pilot.press("escape")  # nothing to zoom out of: goes on to the app (no history: stays)
        assert app.script.id == "test/StackTraceFlameGraph"


async def test_table_gutter_shows_status_icons(tmp_path: Path) -> None:
    app = make_widget_app(widget_script("Table"), tmp_path)
    async with app.run_test(size=(100, 24)) as pilot:
        await wait_runs(app, pilot, 1)
        panel = app.query_one(TablePanel)
        assert panel.grid.data.headers[0] == "" and panel.grid.data.cells[0] == ["●", "◐", "✖", "●", "●"]
        assert panel.grid.data.styles[0] == ["green", "yellow", "bold red", "green", "green"]
        await pilot.press("right", "right", "s")  # sort by pod: the gutter does not shift columns
        assert panel.sort == ("pod", False)


async def test_grid_layout_wide_and_narrow(tmp_path: Path) -> None:
    app = make_widget_app(dashboard_script(), tmp_path)
    async with app.run_test(size=(160, 48)) as pilot:
        await wait_runs(app, pilot, 1)
        body = app.body
        assert body.narrow is False
        ts, hist = app.query_one(TimeseriesChart), app.query_one(HistogramChart)
        assert ts.region.y == hist.region.y and ts.region.x < hist.region.x  # side by side
        table = app.query_one(TablePanel)
        assert table.region.width > ts.region.width  # 12 columns wide vs 6
        await pilot.resize_terminal(80, 24)
        await pilot.pause(0.2)
        assert body.narrow is True
        assert hist.region.y > ts.region.y and ts.region.x == hist.region.x  # stacked
        assert app.focused is ts  # top-left widget first
        for _ in range(7):
            await pilot.press("tab")
        await pilot.pause(0.1)
        assert app.focused is not None and app.focused.region.y < 24  # focus scrolls into view


async def test_drill_down_through_script_reference_and_back(tmp_path: Path) -> None:
    runner = widget_runner()
    app = make_widget_app(widget_script("Table"), tmp_path, runner=runner)
    async with app.run_test(size=(100, 24)) as pilot:
        await wait_runs(app, pilot, 1)
        await pilot.press("down", "down", "right", "right")  # catalog row, pod column
        n = app.run_count
        await pilot.press("enter")
        await wait_runs(app, pilot, n + 1)
        assert app.script.id == "test/pod"
        assert runner.seen[-1][1] == {"pod": "default/catalog-7d9f"}
        header = app.header_bar.render().plain
        assert "test/Table › Script: test/pod --pod=default/catalog-7d9f" in header
        await pilot.press("escape")
        await wait_runs(app, pilot, n + 2)
        assert app.script.id == "test/Table" and app.history == []
        await pilot.press("left", "enter")  # enter on a plain cell: the detail screen
        await pilot.pause()
        assert type(app.screen).__name__ == "RowDetailScreen"


async def test_drill_down_to_unknown_script_says_why(tmp_path: Path) -> None:
    app = make_widget_app(widget_script("Table"), tmp_path)
    app._scripts = {}
    async with app.run_test(size=(100, 24)) as pilot:
        await wait_runs(app, pilot, 1)
        await pilot.press("right", "right", "enter")
        await pilot.pause()
        assert app.error_panel.visible_error and "test/pod, which is not bundled" in app.error_panel.message


@pytest.mark.parametrize("key", ["colon", "ctrl+k"])
async def test_palette_fuzzy_search_runs_script(tmp_path: Path, key: str) -> None:
    runner = widget_runner()
    app = make_widget_app(widget_script("Table"), tmp_path, runner=runner)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_runs(app, pilot, 1)
        await pilot.press(key)
        await pilot.pause()
        assert isinstance(app.screen, ScriptPalette)
        await pilot.press(*"flmgr")
        await pilot.pause()
        assert app.screen.matches[0] == "test/StackTraceFlameGraph"
        n = app.run_count
        await pilot.press("space", *"--start_time=-1m", "enter")
        await wait_runs(app, pilot, n + 1)
        assert app.script.id == "test/StackTraceFlameGraph"
        assert runner.seen[-1][1] == {"start_time": "-1m"}
        assert app.query_one(FlameGraph).root.count > 0


async def test_palette_escape_keeps_script(tmp_path: Path) -> None:
    app = make_widget_app(widget_script("Table"), tmp_path)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_runs(app, pilot, 1)
        await pilot.press("colon", "x", "escape")
        await pilot.pause()
        assert not isinstance(app.screen, ScriptPalette) and app.script.id == "test/Table"


async def test_variables_bar_edits_args_and_reruns(tmp_path: Path) -> None:
    runner = widget_runner()
    app = make_widget_app(widget_script("BarChart"), tmp_path, runner=runner)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_runs(app, pilot, 1)
        await pilot.press("a")
        await pilot.pause()
        assert app.vars_bar.is_open and app.focused is not None and app.focused.id == "var-start_time"
        await pilot.press("tab")
        for _ in range(10):
            await pilot.press("backspace")
        n = app.run_count
        await pilot.press(*"kube-system", "enter")
        await wait_runs(app, pilot, n + 1)
        assert runner.seen[-1][1] == {"start_time": "-5m", "namespace": "kube-system"}
        assert not app.vars_bar.is_open
        assert "--namespace=kube-system" in app.header_bar.render().plain


async def test_variables_bar_refuses_bad_values(tmp_path: Path) -> None:
    from tests.tui.widget_data import pod_script

    app = make_widget_app(pod_script(), tmp_path)
    app.args = {"pod": "p1"}
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_runs(app, pilot, 1)
        await pilot.press("a")
        await pilot.pause()
        for _ in range(5):
            await pilot.press("backspace")
        await pilot.press("enter")  # pod is required and now empty... still a value: "" is given
        await pilot.pause()
        await pilot.press("a")
        await pilot.pause()
        app.vars_bar.post_message(app.vars_bar.Applied({"pod": "x", "bogus": "1"}))
        await pilot.pause()
        text = str(app.vars_bar.query_one("#vars-error").render())
        assert "unknown argument(s) bogus" in text and app.vars_bar.is_open
        await pilot.press("escape")
        await pilot.pause()
        assert not app.vars_bar.is_open


async def test_editor_runs_edited_script_marks_errors_and_saves(tmp_path: Path) -> None:
    runner = widget_runner()

    def produce(n: int):  # type: ignore[no-untyped-def]
        script = runner.seen[-1][0]
        if "undefined_name" in script.pxl:
            raise ScriptError("Script compilation failed: L3 : C5  name 'undefined_name' is not defined")
        from tests.tui.widget_data import result

        return result(n)

    runner.produce = produce
    app = make_widget_app(widget_script("BarChart"), tmp_path, runner=runner)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_runs(app, pilot, 1)
        await pilot.press("e")
        await pilot.pause()
        editor = app.editor
        assert editor.is_open and app.focused is editor.text_area
        assert editor.text_area.text == app.script.pxl
        assert editor.text_area._highlights[0], "PxL is highlighted (import px)"
        editor.text_area.cursor_location = (2, 0)
        n = app.run_count
        await pilot.press(*"x = undefined_name", "enter", "ctrl+r")
        await wait_runs(app, pilot, n + 1)
        assert "undefined_name" in runner.seen[-1][0].pxl
        assert app.error_panel.visible_error
        assert editor.error is not None and editor.error[:2] == (3, 5)
        assert editor.text_area.selection.start[0] == 2  # line 3 is selected
        assert "L3 : C5" in str(editor.query_one("#editor-error").render())
        # fix it and run again: the error goes away, the edited script stays in use
        editor.text_area.load_text(app.script.pxl.replace("x = undefined_name\n", "x = 1\n"))
        await pilot.press("ctrl+r")
        await wait_runs(app, pilot, n + 2)
        assert not app.error_panel.visible_error and editor.error is None
        assert "x = 1" in app.script.pxl
        await pilot.press("ctrl+s")
        await pilot.pause()
        assert editor.saved_path is not None and editor.saved_path.read_text() == editor.text_area.text
        await pilot.press("escape")
        await pilot.pause()
        assert not editor.is_open and app.focused is not None


async def test_help_lists_every_binding(tmp_path: Path) -> None:
    app = make_widget_app(widget_script("Table"), tmp_path)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_runs(app, pilot, 1)
        await pilot.press("question_mark")
        await pilot.pause()
        assert isinstance(app.screen, HelpScreen)
        keys = dict((d, k) for k, d in app.screen.keys)
        assert {"Scripts", "Args", "Edit", "Back", "Pause", "Refresh", "Quit", "Sort", "Filter", "Details"} <= set(keys)
        assert ":" in keys["Scripts"] and "^k" in keys["Scripts"]


@pytest.mark.parametrize("kind", [*WIDGETS, "dashboard"])
async def test_ascii_mode_draws_no_box_or_block_characters(tmp_path: Path, kind: str) -> None:
    script = dashboard_script() if kind == "dashboard" else widget_script(kind)
    app = make_widget_app(script, tmp_path, ascii_only=True)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_runs(app, pilot, 1)
        assert non_ascii_drawing(screen_text(app)) == set()
        if kind == "Table":
            for keys in (["e"], ["escape", "a"], ["escape", "question_mark"], ["escape", "colon"]):
                await pilot.press(*keys)
                await pilot.pause(0.1)
                assert non_ascii_drawing(screen_text(app)) == set(), keys


async def test_ascii_mode_from_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PXTUI_ASCII", "1")
    app = PxApp(widget_runner(), widget_script("Graph"), {}, refresh_s=3600, save_dir=tmp_path)
    assert app.ascii_only and app.glyphs.arrow == ">"


async def test_no_color_keeps_every_state_readable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NO_COLOR", "1")
    app = make_widget_app(widget_script("Graph"), tmp_path)
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_runs(app, pilot, 1)
        assert app.no_color
        text = screen_text(app)
        assert "!!" in text and " ! " in text  # thresholds shown as marks, not only as colour
