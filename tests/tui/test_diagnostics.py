"""The diagnostics view (`d`, `:diagnostics`) and partial-result warnings, over a fake runner whose
GetStatus answers are fixed test data shaped like the broker's (cluster/api/vizier.proto).
Snapshots in snapshots/test_diagnostics/."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
from textual.color import Color

from cluster.api import vizier_pb2 as pb
from pxtui.app import PxApp
from pxtui.runner import ScriptResult, VizierUnavailable
from pxtui.screens.diagnostics import AgentView, DiagnosticsScreen
from pxtui.screens.script_palette import ScriptPalette
from tests.tui.fakes import FakeRunner
from tests.tui.screen import non_ascii_drawing, screen_text
from tests.tui.widget_data import FIXED_NOW, make_widget_app, result, widget_script

NOW_NS = int(FIXED_NOW.timestamp() * 1e9)
SEC = 10**9
PROBES = [
    f"tracepoint:syscalls:sys_enter_{s}" for s in ("connect", "accept4", "read", "write", "sendto", "recvfrom", "close")
] + ["process_stats:/proc"]


def healthy_agent(events_seen: int = 120_345) -> pb.AgentStatus:
    return pb.AgentStatus(
        agent_id="1a2b3c4d-0000-4000-8000-000000000001",
        asid=1,
        hostname="node-1",
        state="AGENT_STATE_HEALTHY",
        last_heartbeat_ns=NOW_NS - 2 * SEC,
        probes=PROBES,
        kernel_headers="exact (/lib/modules/6.1.0-18-amd64/build)",
        events_seen=events_seen,
        events_lost=0,
        parse_errors=2,
        conns_active=14,
        tables=[
            pb.TableStatus(
                name="http_events",
                rows=4_210,
                bytes=3_400_000,
                max_bytes=64 * 2**20,
                min_time_ns=NOW_NS - 300 * SEC,
                max_time_ns=NOW_NS - SEC,
            ),
            pb.TableStatus(
                name="redis_events",
                rows=950,
                bytes=210_000,
                max_bytes=64 * 2**20,
                min_time_ns=NOW_NS - 120 * SEC,
                max_time_ns=NOW_NS - 3 * SEC,
            ),
            pb.TableStatus(name="mysql_events", rows=0, bytes=0, max_bytes=64 * 2**20),
        ],
    )


def sick_agent() -> pb.AgentStatus:
    """Unresponsive, fallback headers, lost events, a failed connector and a full table."""
    return pb.AgentStatus(
        agent_id="9f8e7d6c-0000-4000-8000-000000000002",
        asid=2,
        hostname="node-2",
        state="AGENT_STATE_UNRESPONSIVE",
        last_heartbeat_ns=NOW_NS - 45 * SEC,
        probes=PROBES[:3],
        kernel_headers="fallback: 6.1.0-18 headers for kernel 6.1.0-21-amd64",
        events_seen=88_000,
        events_lost=1_532,
        parse_errors=0,
        conns_active=3,
        error="jvm_stats: PermissionError: [Errno 13] /tmp/hsperfdata_app",
        tables=[
            pb.TableStatus(
                name="http_events",
                rows=250_000,
                bytes=64 * 2**20,
                max_bytes=64 * 2**20,
                min_time_ns=NOW_NS - 60 * SEC,
                max_time_ns=NOW_NS - 46 * SEC,
                rows_evicted=81_200,
            )
        ],
    )


class StatusRunner(FakeRunner):
    """The widget runner plus GetStatus; `statuses` are returned in turn (the last one repeats),
    an exception in the list is raised instead. Calls are counted and may be made to block."""

    def __init__(self, statuses: list[pb.StatusResponse | Exception]) -> None:
        super().__init__(produce=result)
        self.statuses = statuses
        self.status_calls = 0
        self.gate = threading.Event()
        self.gate.set()

    def get_status(self) -> pb.StatusResponse:
        self.gate.wait(10)
        k = min(self.status_calls, len(self.statuses) - 1)
        self.status_calls += 1
        item = self.statuses[k]
        if isinstance(item, Exception):
            raise item
        return item


def two_agents(seen: int = 120_345) -> pb.StatusResponse:
    return pb.StatusResponse(agents=[healthy_agent(seen), sick_agent()], vizier_version="0.1.0")


def app_with(runner: FakeRunner, tmp_path: Path | None = None, ascii_only: bool = False) -> PxApp:
    return make_widget_app(widget_script("Table"), tmp_path, runner=runner, ascii_only=ascii_only)


async def wait_for(pilot, cond, timeout: float = 10.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, "condition never held"
        await pilot.pause(0.01)
    await pilot.pause()


async def open_diagnostics(app: PxApp, pilot, key: str = "d") -> DiagnosticsScreen:  # type: ignore[no-untyped-def]
    await wait_for(pilot, lambda: app.run_count >= 1)
    await pilot.press(key)
    await wait_for(pilot, lambda: isinstance(app.screen, DiagnosticsScreen) and app.screen.fetch_count >= 1)
    await pilot.pause(0.1)
    screen = app.screen
    assert isinstance(screen, DiagnosticsScreen)
    return screen


async def test_d_shows_every_agent_and_why_it_may_have_no_data(tmp_path: Path) -> None:
    app = app_with(StatusRunner([two_agents()]), tmp_path)
    async with app.run_test(size=(160, 48)) as pilot:
        await open_diagnostics(app, pilot)
        text = screen_text(app)
        assert "agents 1/2" in text and "lost 1,532" in text
        assert "node-1" in text and "HEALTHY" in text and "heartbeat 2.0 s ago" in text
        assert "exact (/lib/modules/6.1.0-18-amd64/build)" in text
        assert "seen 120,345" in text and "parse errors 2" in text
        http = next(ln for ln in text.splitlines() if "http_events" in ln and "4,210" in ln)
        assert "3.2 MiB" in http and "64.0 MiB" in http and "22:08:30-22:13:29" in http
        assert "probes attached (8)" in text and "sys_enter_connect" not in text  # collapsed at first
        # the sick agent's reasons, worst first
        assert "agent is UNRESPONSIVE" in text and "no heartbeat for 45.0 s" in text
        assert "error: jvm_stats: PermissionError" in text
        assert "1532 events lost" in text and "81200 oldest rows evicted" in text
        assert "fallback: 6.1.0-18 headers" in text


async def test_probe_list_expands_and_survives_a_refresh(tmp_path: Path) -> None:
    runner = StatusRunner([two_agents(100), two_agents(200)])
    app = app_with(runner, tmp_path)
    async with app.run_test(size=(160, 48)) as pilot:
        screen = await open_diagnostics(app, pilot)
        await pilot.press("tab")  # the first agent's probe list title
        await pilot.press("enter")
        await pilot.pause(0.1)
        assert "sys_enter_connect" in screen_text(app)
        first = list(app.screen.query(AgentView))
        await pilot.press("r")
        await wait_for(pilot, lambda: screen.fetch_count >= 2)
        text = screen_text(app)
        assert "seen 200" in text and "sys_enter_connect" in text  # new numbers, still expanded
        assert list(app.screen.query(AgentView)) == first  # updated in place, not rebuilt


async def test_status_runs_off_the_event_loop(tmp_path: Path) -> None:
    runner = StatusRunner([two_agents()])
    app = app_with(runner, tmp_path)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: app.run_count >= 1)
        runner.gate.clear()  # GetStatus now blocks, like a Vizier that does not answer
        await pilot.press("d")
        await pilot.pause(0.2)
        assert isinstance(app.screen, DiagnosticsScreen) and app.screen.fetch_count == 0
        t0 = time.perf_counter()
        await pilot.press("j")  # keys are still handled while the call hangs
        assert time.perf_counter() - t0 < 1.0
        runner.gate.set()
        await wait_for(pilot, lambda: app.screen.fetch_count >= 1)
        assert "node-2" in screen_text(app)


async def test_unreachable_vizier_is_said_and_last_status_kept(tmp_path: Path) -> None:
    runner = StatusRunner([two_agents(), VizierUnavailable("cannot reach the Vizier at 127.0.0.1:1 (is it up?)")])
    app = app_with(runner, tmp_path)
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await open_diagnostics(app, pilot)
        await pilot.press("r")
        await wait_for(pilot, lambda: screen.fetch_count >= 2)
        text = screen_text(app)
        assert "cannot reach the Vizier at 127.0.0.1:1" in text and "node-1" in text


async def test_scrolls_at_80x24_and_escape_goes_back(tmp_path: Path) -> None:
    app = app_with(StatusRunner([two_agents()]), tmp_path)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await open_diagnostics(app, pilot)
        assert "node-1" in screen_text(app) and "250,000" not in screen_text(app)
        for _ in range(30):
            await pilot.press("j")
        await pilot.pause(0.1)
        assert "250,000" in screen_text(app)  # node-2's table, at the bottom
        assert screen.query_one("#diag-body").scroll_y > 0
        await pilot.press("escape")
        await pilot.pause()
        assert not isinstance(app.screen, DiagnosticsScreen) and "Pods" in screen_text(app)


async def test_palette_opens_diagnostics(tmp_path: Path) -> None:
    app = app_with(StatusRunner([two_agents()]), tmp_path)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: app.run_count >= 1)
        await pilot.press("colon", *"diag")
        await pilot.pause()
        assert isinstance(app.screen, ScriptPalette) and app.screen.matches[0] == ":diagnostics"
        await pilot.press("enter")
        await wait_for(pilot, lambda: isinstance(app.screen, DiagnosticsScreen) and app.screen.fetch_count >= 1)
        assert "node-1" in screen_text(app)


async def test_help_lists_diagnostics(tmp_path: Path) -> None:
    app = app_with(StatusRunner([two_agents()]), tmp_path)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: app.run_count >= 1)
        await pilot.press("question_mark")
        await pilot.pause()
        keys = {d: k for k, d in app.screen.keys}
        assert keys["Diagnostics"] == "d"


async def test_without_agents_to_ask_it_says_why(tmp_path: Path) -> None:
    app = app_with(FakeRunner(produce=result), tmp_path)  # no get_status: like a recording's runner
    async with app.run_test(size=(80, 24)) as pilot:
        await open_diagnostics(app, pilot)
        assert "Diagnostics need a live Vizier" in screen_text(app)


async def test_no_registered_agents(tmp_path: Path) -> None:
    app = app_with(StatusRunner([pb.StatusResponse()]), tmp_path)
    async with app.run_test(size=(100, 24)) as pilot:
        await open_diagnostics(app, pilot)
        assert "no agents have registered with the broker" in screen_text(app)


async def test_ascii_mode_diagnostics(tmp_path: Path) -> None:
    app = app_with(StatusRunner([two_agents()]), tmp_path, ascii_only=True)
    async with app.run_test(size=(80, 24)) as pilot:
        await open_diagnostics(app, pilot)
        await pilot.press("tab", "enter")
        await pilot.pause(0.1)
        assert non_ascii_drawing(screen_text(app)) == set()


# ------------------------------------------------------------------------------ partial results

WARNING = (
    "agent node-2 (1a2b3c4d) at 10.77.2.2:51401 is missing from these results: it is unreachable "
    "(UNAVAILABLE: connection refused)"
)


async def test_partial_result_warning_stays_with_the_rows(tmp_path: Path) -> None:
    def produce(n: int) -> ScriptResult:
        res = result(n)
        res.warnings = [WARNING] if n == 1 else []
        return res

    app = make_widget_app(widget_script("Table"), tmp_path, runner=FakeRunner(produce=produce))
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: app.run_count >= 1)
        bar = app.warning_bar
        assert bar.display and bar.warnings == [WARNING]
        text = screen_text(app)
        assert "warning: agent node-2 (1a2b3c4d) at 10.77.2.2:51401 is missing" in text
        assert "default/frontend-7d9f" in text  # the rows are still shown
        assert not app.error_panel.visible_error  # a warning, not an error
        assert "results: it is unreachable (UNAVAILABLE: connection refused)" in text  # wrapped, whole
        assert bar.region.bottom == app.status_bar.region.y  # right above the status line
        assert bar.styles.color == Color.parse(app.get_css_variables()["warning"])  # warning, not error, colour
        await pilot.press("r")
        await wait_for(pilot, lambda: app.run_count >= 2)
        assert not bar.display and "warning:" not in screen_text(app)  # gone with the next full result


@pytest.mark.parametrize("size", [(80, 24), (160, 48)], ids=lambda s: f"{s[0]}x{s[1]}")
def test_diagnostics_snapshot(snap_compare, size: tuple[int, int]) -> None:  # type: ignore[no-untyped-def]
    async def run_before(pilot) -> None:  # type: ignore[no-untyped-def]
        await open_diagnostics(pilot.app, pilot)

    assert snap_compare(app_with(StatusRunner([two_agents()])), terminal_size=size, run_before=run_before)


def test_partial_result_snapshot(snap_compare) -> None:  # type: ignore[no-untyped-def]
    def produce(n: int) -> ScriptResult:
        res = result(n)
        res.warnings = [WARNING]
        return res

    async def run_before(pilot) -> None:  # type: ignore[no-untyped-def]
        await wait_for(pilot, lambda: pilot.app.run_count >= 1)
        await pilot.pause(0.2)

    app = make_widget_app(widget_script("Table"), runner=FakeRunner(produce=produce))
    assert snap_compare(app, terminal_size=(80, 24), run_before=run_before)
