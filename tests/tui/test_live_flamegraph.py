"""The flame graph over the real path: a busy C program sampled by the embedded Vizier's eBPF
profiler, symbolised, queried with px/perf_flamegraph over sealed gRPC, drawn by the real app."""

from __future__ import annotations

import shutil
import subprocess
import time
from pathlib import Path

import pytest

from pxtui.app import PxApp
from pxtui.scripts import find
from pxtui.widgets.flame_graph import FlameGraph, Frame
from tests.conftest import Vizier
from tests.tui.screen import screen_text

pytestmark = pytest.mark.ebpf
FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "profiler"


def find_frame(node: Frame, name: str) -> Frame | None:
    if node.name == name:
        return node
    for child in node.children.values():
        found = find_frame(child, name)
        if found is not None:
            return found
    return None


async def test_hot_function_tops_the_live_flame_graph(vizier: Vizier, tmp_path: Path) -> None:
    gcc = shutil.which("gcc")
    if gcc is None:
        pytest.fail("gcc is needed to build tests/fixtures/profiler/busy.c (apt-get install gcc)")
    busy = tmp_path / "busy"
    subprocess.run([gcc, "-O2", "-fno-omit-frame-pointer", "-mno-omit-leaf-frame-pointer", "-o", str(busy),
                    str(FIXTURES / "busy.c")], check=True)  # fmt: skip
    proc = subprocess.Popen([str(busy), "8"], stdout=subprocess.PIPE, text=True)
    client = vizier.client()
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
        app = PxApp(client, find("px/perf_flamegraph"), {"start_time": "-1m"}, refresh_s=1, save_dir=tmp_path)
        async with app.run_test(size=(160, 48)) as pilot:
            flame = app.query_one(FlameGraph)
            deadline = time.monotonic() + 30
            hot = None
            while hot is None or hot.count < 50:
                assert time.monotonic() < deadline, f"hot_spin never reached the flame graph:\n{screen_text(app)}"
                await pilot.pause(0.5)
                hot = find_frame(flame.root, "hot_spin")
            assert hot.path[-3:] == ["main", "run_workload", "hot_spin"]
            # the busy program's hot path carries nearly all of its own samples
            program = hot.parent.parent.parent  # type: ignore[union-attr]
            assert program is not None and hot.count >= 0.8 * program.count
            # drawn: the graph's status line counts the samples it shows
            assert "samples" in screen_text(app)
    finally:
        client.close()
        proc.kill()
        proc.wait()
