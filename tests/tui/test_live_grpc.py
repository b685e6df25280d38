"""The live view over the real path: a child-process HTTP exchange traced by eBPF in the embedded
Vizier, queried over gRPC with sealed results, drawn by the real app under Textual's pilot."""

from __future__ import annotations

import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from pxtui.app import PxApp
from pxtui.screens.row_detail import RowDetailScreen
from pxtui.scripts import find
from pxtui.widgets.table_panel import TablePanel
from tests.conftest import Vizier, free_port
from tests.tui.test_live_app import text_of

pytestmark = pytest.mark.ebpf
PEERS = [sys.executable, str(Path(__file__).resolve().parent.parent / "integration" / "http_peers.py")]


async def test_http_data_view_shows_traced_requests_and_their_bodies(vizier: Vizier, tmp_path: Path) -> None:
    port = free_port()
    server = subprocess.Popen([*PEERS, "serve", str(port)], stdout=subprocess.PIPE, text=True)
    try:
        assert server.stdout is not None and server.stdout.readline().strip() == "ready"
        marker = uuid.uuid4().hex
        subprocess.run([*PEERS, "post", str(port), f"/tui/{marker}", '{"order": "' + marker + '"}'],
                       check=True, timeout=30)
        client = vizier.client()
        app = PxApp(client, find("px/http_data"), {"path_filter": marker}, refresh_s=0.5, save_dir=tmp_path)
        try:
            async with app.run_test(size=(160, 48)) as pilot:
                panel = app.query_one(TablePanel)

                def screen_text() -> str:
                    return "\n".join(panel.grid.render_line(y).text for y in range(panel.shown_rows + 1))

                deadline = time.monotonic() + 20
                while marker[:8] not in screen_text() or panel.total_rows < 4:
                    assert time.monotonic() < deadline, "the traced requests never reached the screen"
                    await pilot.pause(0.2)
                assert app.error_panel.visible_error is False
                assert "agents 1/1" in app.status_bar.plain
                # filter to this test's requests, then open the newest: its bodies are in the detail
                await pilot.press("slash", *marker, "enter")
                await pilot.pause(0.3)
                assert panel.shown_rows == 4, screen_text()
                assert "POST" in screen_text() and "GET" in screen_text()
                await pilot.press("enter")
                await pilot.pause(0.3)
                assert isinstance(app.screen, RowDetailScreen)
                shown = "\n".join(text_of(w.content) for w in app.screen.query(".detail-field"))
                assert marker in shown and "/tui/" in shown
        finally:
            client.close()
    finally:
        server.terminate()
        server.wait(timeout=10)
