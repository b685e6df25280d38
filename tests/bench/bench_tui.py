"""TUI costs on fake data (tests/tui/fakes.py FakeRunner: http_data-shaped UI test data, no cluster).

Run:  .venv/bin/python -m tests.bench.bench_tui [--runs 5] [--cpu-seconds 20]

Measures, and prints:
  - cold start to first frame (goal < 0.5 s): a fresh `python` process on a real pty running
    PxApp; "first frame" is the first compositor refresh after mount (header, empty widgets,
    footer), "first data" the first frame after the first run's tables were drawn. Taken from
    process start as seen by this parent (Popen), so interpreter start and imports are included.
  - a 1000-row table update: format_table in the worker (pure Arrow) and the hand-over on the
    event loop (TablePanel update + grid push), then press-`r`-to-painted, in-process, headless.
  - CPU of the app process, from /proc/<pid>/stat, over --cpu-seconds: idle (paused with no
    timer running) and live (refresh every 2 s of a 1000-row table growing by 50 rows a run).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import pty
import select
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CLK_TCK = os.sysconf("SC_CLK_TCK")


# ------------------------------------------------------------------------------------- child


def child(mode: str, out_path: str, refresh_s: float) -> None:
    """Runs inside the pty: the app, writing timestamps of its first frames to `out_path`."""
    from pxtui.app import PxApp
    from pxtui.scripts import find
    from tests.tui.fakes import FakeRunner

    class Timed(PxApp):
        def on_mount(self) -> None:
            super().on_mount()
            self.call_after_refresh(self._mark, "first_frame")
            if mode == "idle":
                self.action_toggle_pause()

        def _mark(self, what: str) -> None:
            with open(out_path, "a") as f:
                f.write(f"{what} {time.time()}\n")
            if mode == "start" and what == "first_data":
                self.exit()

        async def _apply(self, outcome) -> None:  # type: ignore[no-untyped-def]
            first = self.run_count == 0
            await super()._apply(outcome)
            if first:
                self.call_after_refresh(self._mark, "first_data")

    runner = FakeRunner(rows=1000, grow=50)
    Timed(runner, find("px/http_data"), {}, refresh_s=refresh_s, tz=UTC).run()


# ------------------------------------------------------------------------------------- parent


def _spawn(mode: str, refresh_s: float) -> tuple[subprocess.Popen, int, Path, float]:
    master, slave = pty.openpty()
    os.set_blocking(master, False)
    marks = Path(tempfile.mkstemp(prefix="bench-tui-")[1])
    env = {**os.environ, "TERM": "xterm-256color", "PYTHONPATH": str(ROOT)}
    t0 = time.time()
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.bench.bench_tui", "--child", mode, str(marks), str(refresh_s)],
        cwd=ROOT, env=env, stdin=slave, stdout=slave, stderr=slave, start_new_session=True)
    os.close(slave)
    return proc, master, marks, t0


def _pump(master: int, seconds: float, proc: subprocess.Popen) -> None:
    """Read the terminal output (as a terminal would) for `seconds` or until the child ends."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and proc.poll() is None:
        ready, _, _ = select.select([master], [], [], 0.05)
        if ready:
            try:
                os.read(master, 1 << 16)
            except OSError:
                return


def _marks(path: Path) -> dict[str, float]:
    out = {}
    for line in path.read_text().splitlines():
        what, t = line.split()
        out.setdefault(what, float(t))
    return out


def _cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK  # utime + stime


def cold_start(runs: int) -> None:
    firsts, datas = [], []
    for i in range(runs + 1):
        proc, master, marks, t0 = _spawn("start", 3600)
        _pump(master, 30, proc)
        proc.wait(timeout=10)
        os.close(master)
        m = _marks(marks)
        marks.unlink()
        if i == 0:
            continue  # warm-up: page cache and bytecode
        firsts.append(m["first_frame"] - t0)
        datas.append(m["first_data"] - t0)
    print(f"cold start to first frame: median {statistics.median(firsts):.3f} s "
          f"(min {min(firsts):.3f}, max {max(firsts):.3f}; goal < 0.5 s) over {runs} runs")
    print(f"cold start to first 1000-row table drawn: median {statistics.median(datas):.3f} s "
          f"(min {min(datas):.3f}, max {max(datas):.3f})")


def cpu(mode: str, seconds: float) -> None:
    proc, master, marks, _ = _spawn(mode, 2.0)
    try:
        _pump(master, 5, proc)  # start-up and the first run are not what is measured
        c0, w0 = _cpu_s(proc.pid), time.monotonic()
        _pump(master, seconds, proc)
        c1, w1 = _cpu_s(proc.pid), time.monotonic()
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        os.close(master)
        marks.unlink()
    what = "idle (paused)" if mode == "idle" else "refreshing every 2 s (1000 rows, +50 a run)"
    print(f"CPU {what}: {(c1 - c0) * 1000:.0f} ms over {w1 - w0:.1f} s = {(c1 - c0) / (w1 - w0) * 100:.1f} % of a core")


async def table_update(runs: int) -> None:
    from pxtui.app import PxApp
    from pxtui.format import format_table
    from pxtui.scripts import find
    from tests.tui.fakes import FakeRunner, http_rows

    t = http_rows(1000)
    fmt = []
    for _ in range(runs):
        t0 = time.perf_counter()
        format_table("http_data", t, UTC)
        fmt.append(time.perf_counter() - t0)
    app = PxApp(FakeRunner(rows=1000, grow=50), find("px/http_data"), {}, refresh_s=3600, tz=UTC)
    applies, painted = [], []
    async with app.run_test(size=(160, 48)) as pilot:
        while app.run_count < 1:
            await pilot.pause(0.01)
        for _ in range(runs):
            n = app.run_count
            t0 = time.perf_counter()
            await pilot.press("r")
            while app.run_count <= n:
                await pilot.pause(0.001)
            await pilot.pause()
            painted.append(time.perf_counter() - t0)
            applies.append(app.last_apply_s)
    print(f"1000-row update: format (worker) median {statistics.median(fmt) * 1000:.1f} ms, "
          f"hand-over on the event loop median {statistics.median(applies) * 1000:.1f} ms, "
          f"press r to painted median {statistics.median(painted) * 1000:.1f} ms over {runs} runs")


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        child(sys.argv[2], sys.argv[3], float(sys.argv[4]))
        return
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--cpu-seconds", type=float, default=20.0)
    opts = ap.parse_args()
    cold_start(opts.runs)
    asyncio.run(table_update(opts.runs))
    cpu("idle", opts.cpu_seconds)
    cpu("live", opts.cpu_seconds)


if __name__ == "__main__":
    main()
