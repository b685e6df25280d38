"""Pilot tests of the live view over a fake runner (UI unit tests; no cluster, no gRPC)."""

from __future__ import annotations

import json
import time
from datetime import UTC
from pathlib import Path

import pyarrow as pa
from rich.console import Console

from pxtui.app import PxApp
from pxtui.runner import ScriptError, ScriptResult, VizierUnavailable
from pxtui.screens.help import HelpScreen
from pxtui.screens.row_detail import RowDetailScreen
from pxtui.scripts import Script, find
from pxtui.widgets.error_panel import ErrorPanel
from pxtui.widgets.placeholder_panel import PlaceholderPanel
from pxtui.widgets.table_panel import TablePanel
from tests.tui.fakes import HTTP_DATA_SCHEMA, FakeRunner, http_rows

SIZE = (120, 40)
HTTP_DATA = find("px/http_data")


def make_app(runner: FakeRunner, tmp_path: Path | None = None, refresh_s: float = 3600.0,
             script: Script = HTTP_DATA) -> PxApp:
    """Refresh far in the future unless a test is about auto-refresh: runs happen on `r`."""
    return PxApp(runner, script, {"start_time": "-5m"}, refresh_s=refresh_s, save_dir=tmp_path, tz=UTC)


async def wait_runs(app: PxApp, pilot, n: int, timeout: float = 10.0) -> None:  # type: ignore[no-untyped-def]
    """Poll (never sleep blindly) until `n` runs have been shown."""
    deadline = time.monotonic() + timeout
    while app.run_count < n:
        assert time.monotonic() < deadline, f"only {app.run_count} of {n} runs completed"
        await pilot.pause(0.01)
    await pilot.pause()


async def press_and_wait(app: PxApp, pilot, *keys: str) -> None:  # type: ignore[no-untyped-def]
    """Press keys that start a run and wait for it; the count is read before the run can land."""
    n = app.run_count
    await pilot.press(*keys)
    await wait_runs(app, pilot, n + 1)


def panel(app: PxApp) -> TablePanel:
    return app.query_one(TablePanel)


def line(app: PxApp, y: int) -> str:
    """Text of grid line y (0 = header) as drawn."""
    return panel(app).grid.render_line(y).text


def text_of(renderable: object, width: int = 100) -> str:
    console = Console(width=width, record=True, color_system=None, file=open("/dev/null", "w"))  # noqa: SIM115
    console.print(renderable)
    return console.export_text()


async def test_rows_render_newest_first(tmp_path: Path) -> None:
    app = make_app(FakeRunner(rows=30), tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await wait_runs(app, pilot, 1)
        p = panel(app)
        assert p.total_rows == 30 and p.shown_rows == 30
        header = line(app, 0)
        assert header.split()[:4] == ["time_", "source", "destination", "method"]
        # BASE_NS is 22:13:20 UTC; row 29 is the newest (+29 ms) and comes first.
        assert line(app, 1).lstrip().startswith("22:13:20.029")
        assert line(app, 2).lstrip().startswith("22:13:20.028")
        assert "rows 30" in app.status_bar.plain
        assert "agents 2/2" in app.status_bar.plain and "lost 3" in app.status_bar.plain
        assert "Script: px/http_data --start_time=-5m --max_num_records=1000" in app.header_bar.render().plain


async def test_formatting_in_cells(tmp_path: Path) -> None:
    app = make_app(FakeRunner(rows=6), tmp_path)
    async with app.run_test(size=(400, 20)) as pilot:
        await wait_runs(app, pilot, 1)
        grid = panel(app).grid
        cols = grid.data.headers
        row = {c: grid.data.cells[i][0] for i, c in enumerate(cols)}  # newest = row 5
        assert row["status"] == "500"
        assert row["latency"].endswith((" ms", " µs", " s"))
        assert row["req_body_size"].endswith((" B", " KiB"))
        assert row["upid"].count("-") == 4 and len(row["upid"]) == 36
        assert max(len(c) for col in grid.data.cells for c in col) == 50
        assert any(c.endswith("…") for col in grid.data.cells for c in col)
        status_styles = grid.data.styles[cols.index("status")]
        assert status_styles is not None and status_styles[0] == "red"


async def test_enter_opens_detail_with_bodies_and_w_saves(tmp_path: Path) -> None:
    app = make_app(FakeRunner(rows=30), tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await wait_runs(app, pilot, 1)
        await pilot.press("down")  # row 28: JSON request body (28 % 3 != 0)
        await pilot.press("enter")
        await pilot.pause()
        screen = app.screen
        assert isinstance(screen, RowDetailScreen)
        shown = "\n".join(text_of(s.content) for s in screen.query(".detail-field"))
        assert '"order": "order-28"' in shown  # req_body pretty-printed, one key per line
        assert '"User-Agent": "curl/8.5"' in shown  # req_headers pretty-printed
        assert '"tag": "[bold]x[/]"' in shown  # brackets are not eaten as markup
        assert "2023-11-14T22:13:20.028000000Z" in shown  # full time in the detail
        await pilot.press("w")
        await pilot.pause()
        saved = list(tmp_path.glob("pxtui-http_data-*.json"))
        assert len(saved) == 1 and screen.saved_path == saved[0].resolve()
        doc = json.loads(saved[0].read_text())
        assert doc["_tableName_"] == "http_data"
        assert json.loads(doc["req_body"])["order"] == "order-28"
        assert doc["time_"] == "2023-11-14T22:13:20.028000000Z"
        assert doc["status"] == 404 and doc["upid"].count("-") == 4
        await pilot.press("escape")
        await pilot.pause()
        assert not isinstance(app.screen, RowDetailScreen)


async def test_plain_text_body_in_detail(tmp_path: Path) -> None:
    app = make_app(FakeRunner(rows=31), tmp_path)  # newest row 30: plain-text body
    async with app.run_test(size=SIZE) as pilot:
        await wait_runs(app, pilot, 1)
        await pilot.press("enter")
        await pilot.pause()
        shown = "\n".join(text_of(s.content) for s in app.screen.query(".detail-field"))
        assert "order-30 plain" in shown


async def test_slash_filters_and_escape_clears(tmp_path: Path) -> None:
    app = make_app(FakeRunner(rows=30), tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await wait_runs(app, pilot, 1)
        await pilot.press("slash")
        await pilot.press(*"delete")  # case-insensitive; method DELETE is rows 3, 7, ..., 27
        await pilot.pause()
        p = panel(app)
        assert p.shown_rows == 7 and p.total_rows == 30
        assert all("DELETE" in line(app, y) for y in range(1, 8))
        assert "rows 7/30" in app.status_bar.plain
        await pilot.press("enter")  # back to the table, filter kept
        assert p.shown_rows == 7 and p.grid.has_focus
        await pilot.press("slash", "ctrl+u", *"no-such-thing")
        await pilot.pause()
        assert p.shown_rows == 0 and "no rows match" in line(app, 1)
        await pilot.press("escape")
        await pilot.pause()
        assert p.shown_rows == 30 and p.filter_text == ""


async def test_s_cycles_sort_on_cursor_column(tmp_path: Path) -> None:
    app = make_app(FakeRunner(rows=30), tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await wait_runs(app, pilot, 1)
        p = panel(app)
        lat = p.model.columns.index("latency")  # type: ignore[union-attr]
        await pilot.press(*["right"] * lat)
        assert p.grid.cursor_column == lat

        def latencies() -> list[int]:
            raw = p.model.raw.column("latency").to_pylist()  # type: ignore[union-attr]
            return [raw[p.raw_index(i)] for i in range(p.shown_rows)]  # type: ignore[index]

        await pilot.press("s")
        assert p.sort == ("latency", False) and latencies() == sorted(latencies())
        assert "latency ▲" in line(app, 0)
        await pilot.press("s")
        assert p.sort == ("latency", True) and latencies() == sorted(latencies(), reverse=True)
        assert "latency ▼" in line(app, 0)
        await pilot.press("s")
        assert p.sort is None and line(app, 1).lstrip().startswith("22:13:20.029")


async def test_space_pauses_auto_refresh(tmp_path: Path) -> None:
    runner = FakeRunner(rows=10, grow=1)
    app = make_app(runner, tmp_path, refresh_s=0.1)
    async with app.run_test(size=SIZE) as pilot:
        await wait_runs(app, pilot, 3)
        await pilot.press("space")
        assert app.paused and "PAUSED" in app.status_bar.plain
        await pilot.pause(0.05)  # let a run already in flight land
        calls = runner.calls
        await pilot.pause(0.5)
        assert runner.calls == calls, "timer kept running while paused"
        await press_and_wait(app, pilot, "r")  # an explicit refresh still works while paused
        assert runner.calls == calls + 1
        await pilot.press("space")
        assert not app.paused
        await wait_runs(app, pilot, app.run_count + 3)
        assert runner.calls >= calls + 4


async def test_runner_errors_shown_in_place_and_app_survives(tmp_path: Path) -> None:
    runner = FakeRunner(rows=30)
    app = make_app(runner, tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await wait_runs(app, pilot, 1)
        errors = [
            (ScriptError("L3 : C5  name 'foo' is not defined [x]"), "Script error", "L3 : C5"),
            (VizierUnavailable("connection refused: 127.0.0.1:50300"), "Vizier unavailable", "refused"),
            (RuntimeError("boom"), "Unexpected error", "RuntimeError: boom"),
        ]
        err_panel = app.query_one(ErrorPanel)
        for exc, title, text in errors:
            runner.errors.append(exc)
            await press_and_wait(app, pilot, "r")
            assert err_panel.visible_error and err_panel.border_title == title
            assert text in err_panel.message
            assert panel(app).total_rows == 30  # old data stays on screen
            assert line(app, 1).lstrip().startswith("22:13:20.029")
        await press_and_wait(app, pilot, "r")
        assert not err_panel.visible_error
        assert panel(app).total_rows == 30


async def test_refresh_keeps_cursor_on_its_row(tmp_path: Path) -> None:
    runner = FakeRunner(rows=30, grow=5)
    app = make_app(runner, tmp_path)
    async with app.run_test(size=(80, 24)) as pilot:  # small: 30 rows do not fit
        await wait_runs(app, pilot, 1)
        p = panel(app)
        await pilot.press("down", "down", "down")
        before = line(app, 4)
        picked = p.grid.data.cells[0][3]
        await pilot.press("r")
        await wait_runs(app, pilot, 2)
        assert p.total_rows == 35
        assert p.grid.data.cells[0][p.grid.cursor_row] == picked
        assert p.grid.cursor_row == 8  # 5 newer rows arrived above it
        assert line(app, 4) == before  # and it is still drawn on the same screen line
        await pilot.press("home")  # at the top the view follows the newest rows
        await pilot.press("r")
        await wait_runs(app, pilot, 3)
        assert p.grid.cursor_row == 0 and line(app, 1).lstrip().startswith("22:13:20.039")


async def test_empty_and_odd_tables_do_not_crash(tmp_path: Path) -> None:
    odd = pa.table({
        "time_": pa.array([5, 6], pa.int64()),  # INT64 named time_: shown as a time
        "nested": pa.array([{"a": 1}, {"a": 2}]),
        "tags": pa.array([["x"], []]),
        "dict": pa.array(["a", "b"]).dictionary_encode(),
        "naive": pa.array([1, 2], pa.timestamp("ns")),
        "dec": pa.array([1, 2], pa.decimal128(5, 2)),
        "bin": pa.array([b"\x00\x01", b""], pa.binary()),
        "nulls": pa.array([None, "x"], pa.string()),
    })
    results = [
        ScriptResult(tables=[("http_data", HTTP_DATA_SCHEMA.empty_table())]),
        ScriptResult(tables=[("http_data", odd)]),
        ScriptResult(tables=[]),  # the output is missing entirely
    ]
    runner = FakeRunner(produce=lambda n: results[min(n, len(results)) - 1])
    app = make_app(runner, tmp_path)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_runs(app, pilot, 1)
        assert panel(app).total_rows == 0 and "no rows" in line(app, 1)
        await pilot.press("enter", "s", "slash", "x", "escape")
        await pilot.press("r")
        await wait_runs(app, pilot, 2)
        assert panel(app).total_rows == 2
        for _ in panel(app).model.columns:  # type: ignore[union-attr]
            await pilot.press("s", "right")
        await pilot.press("enter")
        await pilot.pause()
        assert isinstance(app.screen, RowDetailScreen)
        await pilot.press("w", "escape")
        await pilot.press("r")
        await wait_runs(app, pilot, 3)
        assert panel(app).total_rows == 2  # nothing returned: the last data stays


async def test_placeholder_for_other_widget_types(tmp_path: Path) -> None:
    vis = {
        "widgets": [
            {"name": "Latency", "position": {"x": 0, "y": 0, "w": 6, "h": 3},
             "globalFuncOutputName": "http_data",
             "displaySpec": {"@type": "types.px.dev/px.vispb.PieChart"}},
            {"name": "Graph", "position": {"x": 6, "y": 0, "w": 6, "h": 3},
             "globalFuncOutputName": "http_data", "displaySpec": {"@type": "types.px.dev/px.vispb.VegaChart"}},
            {"name": "Rows", "position": {"x": 0, "y": 3, "w": 12, "h": 4},
             "globalFuncOutputName": "http_data", "displaySpec": {"@type": "types.px.dev/px.vispb.Table"}},
        ],
        "globalFuncs": [{"outputName": "http_data", "func": {"name": "http_data", "args": []}}],
        "variables": [{"name": "start_time", "type": "PX_STRING", "defaultValue": "-5m"}],
    }
    script = Script("test/mixed", HTTP_DATA.pxl, json.dumps(vis))
    app = make_app(FakeRunner(rows=5), tmp_path, script=script)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_runs(app, pilot, 1)
        holders = list(app.query(PlaceholderPanel))
        assert [h.vis_widget.type for h in holders] == ["PieChart", "VegaChart"]
        assert "PieChart" in str(holders[0].content)
        assert panel(app).total_rows == 5 and panel(app).border_title == "Rows"


async def test_script_without_vis_gets_a_table_per_output(tmp_path: Path) -> None:
    two = ScriptResult(tables=[("first", http_rows(3)), ("second", http_rows(4))])
    app = make_app(FakeRunner(produce=lambda n: two), tmp_path, script=Script("x.pxl", "import px"))
    app.args = {}
    async with app.run_test(size=SIZE) as pilot:
        await wait_runs(app, pilot, 1)
        await pilot.pause()
        panels = list(app.query(TablePanel))
        assert [(p.output_name, p.total_rows) for p in panels] == [("first", 3), ("second", 4)]
        await pilot.press("r")
        await wait_runs(app, pilot, 2)
        assert len(app.query(TablePanel)) == 2


async def test_help_lists_bindings_and_q_quits(tmp_path: Path) -> None:
    app = make_app(FakeRunner(rows=3), tmp_path)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_runs(app, pilot, 1)
        await pilot.press("question_mark")
        await pilot.pause()
        assert isinstance(app.screen, HelpScreen)
        descriptions = {d for _, d in app.screen.keys}
        assert {"Sort", "Filter", "Pause", "Refresh", "Quit", "Details"} <= descriptions
        await pilot.press("escape")
        await pilot.pause()
        assert not isinstance(app.screen, HelpScreen)
        await pilot.press("q")
        await pilot.pause()
    assert app.return_code == 0


async def test_render_time_of_1000_row_update(tmp_path: Path) -> None:
    """Measured, not asserted: the worker's run+format time and the loop's hand-over time."""
    runner = FakeRunner(rows=1000, grow=50)
    app = make_app(runner, tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await wait_runs(app, pilot, 1)
        for i in range(3):
            t0 = time.perf_counter()
            await press_and_wait(app, pilot, "r")
            total = time.perf_counter() - t0
            print(f"\n1000-row update {i}: worker {app._status.run_s * 1000:.1f} ms "
                  f"(run + format), on loop {app.last_apply_s * 1000:.1f} ms, "
                  f"press-to-painted {total * 1000:.1f} ms")
        assert panel(app).total_rows == 1000


async def test_bad_vis_arguments_shown_and_ctrl_r_still_runs(tmp_path: Path) -> None:
    runner = FakeRunner(rows=4)
    app = PxApp(runner, HTTP_DATA, {"no_such_arg": "1"}, refresh_s=3600, save_dir=tmp_path, tz=UTC)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_runs(app, pilot, 1)
        err = app.query_one(ErrorPanel)
        assert err.visible_error and "no_such_arg" in err.message
        await press_and_wait(app, pilot, "ctrl+r")
        assert runner.calls == 2 and err.visible_error
