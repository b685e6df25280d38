"""Snapshots of every widget type at 80x24 and 160x48 (SVGs in snapshots/test_snapshots/).

Deterministic: fixed data (widget_data.py), UTC, a fixed clock and a zero run timer. After an
intended change to the look, review and accept with `pytest tests/tui/test_snapshots.py
--snapshot-update`.
"""

from __future__ import annotations

import pytest

from tests.tui.widget_data import WIDGETS, dashboard_script, make_widget_app, widget_script

SIZES = [(80, 24), (160, 48)]


async def _first_run(pilot) -> None:  # type: ignore[no-untyped-def]
    app = pilot.app
    for _ in range(500):
        if app.run_count >= 1:
            break
        await pilot.pause(0.01)
    await pilot.pause(0.2)


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
@pytest.mark.parametrize("kind", list(WIDGETS))
def test_widget_snapshot(snap_compare, kind: str, size: tuple[int, int]) -> None:  # type: ignore[no-untyped-def]
    assert snap_compare(make_widget_app(widget_script(kind)), terminal_size=size, run_before=_first_run)


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_dashboard_snapshot(snap_compare, size: tuple[int, int]) -> None:  # type: ignore[no-untyped-def]
    assert snap_compare(make_widget_app(dashboard_script()), terminal_size=size, run_before=_first_run)


def test_dashboard_ascii_snapshot(snap_compare) -> None:  # type: ignore[no-untyped-def]
    app = make_widget_app(dashboard_script(), ascii_only=True)
    assert snap_compare(app, terminal_size=(80, 24), run_before=_first_run)
