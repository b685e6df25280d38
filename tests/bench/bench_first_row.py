"""Time to the first data row of `pxtui live px/http_data` in a real terminal (tmux), goal 1 s.

Run as root:  .venv/bin/python -m tests.bench.bench_first_row [--runs 5]

It starts an embedded Vizier (as tests/conftest.py does: own PXTUI_STATE_DIR, an API key from
ApiKeyStore), a small HTTP server (python -m http.server) and, before every run, a few curl
requests against it, so http_events holds fresh rows inside the script's default window (-30s).
Then, per run, in the same run of this bench:
  - once: wall time of `pxtui live px/http_data --once -o json` (same data path, no TUI);
  - TUI: `pxtui live px/http_data` in a new tmux session (160x48), polling `tmux capture-pane -p`
    every 20 ms: first frame = any text on screen, first row = a line with one of the generated
    requests (its method and its path) visible.
Prints median, min, max of each and the ratios first row / 1 s goal and first row / --once.
A warm-up run of each (page cache, bytecode) precedes the timed runs and is not counted.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from tests.vizier_proc import ROOT, cleanup_on_signals, free_port, log, running_vizier, stop_group

GOAL_S = 1.0
PXTUI = ROOT / ".venv" / "bin" / "pxtui"
PATH = "/first-row-bench"  # the generated requests' path, to tell our rows from other traffic on the host
POLL_S = 0.02


def http_rows(client: Any) -> int:
    st = client.get_status()
    return sum(t.rows + t.rows_evicted for a in st.agents for t in a.tables if t.name == "http_events")


def wait_for(pred: Any, timeout: float, what: str, interval: float = 0.1) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return
        time.sleep(interval)
    raise RuntimeError(f"timed out after {timeout:g} s waiting for {what}")


def make_traffic(client: Any, port: int, n: int = 6) -> None:
    """n curl requests (GETs and a POST, each a child process), then wait until the agent has stored them."""
    before = http_rows(client)
    url = f"http://127.0.0.1:{port}{PATH}"
    for i in range(n):
        cmd = ["curl", "-s", "-o", "/dev/null", f"{url}?i={i}"]
        if i % 3 == 2:
            cmd[1:1] = ["-X", "POST", "-d", f"n={i}"]
        subprocess.run(cmd, check=False, timeout=10, stdin=subprocess.DEVNULL)
    # each request gives two rows (curl client side, server side); wait for most of them
    wait_for(lambda: http_rows(client) >= before + n, 15, "http_events to hold the curl requests")


class Tmux:
    """A private tmux server (own socket), so cleanup never touches anyone else's sessions."""

    def __init__(self, sock: str):
        self.sock = sock
        # a long-lived session keeps the server up: each timed run then pays only for its own session
        self.cmd("new-session", "-d", "-s", "keep", "-x", "80", "-y", "24", "sleep 3600")

    def cmd(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        return subprocess.run(["tmux", "-L", self.sock, "-f", "/dev/null", *args], capture_output=True,
                              text=True, check=check, timeout=10, stdin=subprocess.DEVNULL)

    def capture(self, name: str) -> str | None:
        r = self.cmd("capture-pane", "-p", "-t", name, check=False)
        return r.stdout if r.returncode == 0 else None

    def kill_session(self, name: str) -> None:
        self.cmd("kill-session", "-t", name, check=False)

    def kill_server(self) -> None:
        self.cmd("kill-server", check=False)


def time_once(env: dict[str, str]) -> float:
    t0 = time.perf_counter()
    out = subprocess.run([str(PXTUI), "live", "px/http_data", "--once", "-o", "json"], env=env,
                         capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
    dt = time.perf_counter() - t0
    if out.returncode != 0:
        raise RuntimeError(f"pxtui live --once failed ({out.returncode}): {out.stderr[-2000:]}")
    rows = json.loads(out.stdout)["tables"]["http_data"]["rows"]
    if not any(PATH in str(r.get("path", "")) for r in rows):
        raise RuntimeError(f"--once returned {len(rows)} rows, none for {PATH}")
    return dt


def time_tui(tmux: Tmux, name: str, vizier: str, api_key: str, timeout: float) -> tuple[float, float]:
    """(first frame s, first row s) from `tmux new-session` to the screen showing them."""
    live = (f"env PXTUI_VIZIER={shlex.quote(vizier)} PXTUI_API_KEY={shlex.quote(api_key)} "
            f"XDG_CONFIG_HOME={shlex.quote(os.environ.get('XDG_CONFIG_HOME', '/nonexistent'))} "
            f"{shlex.quote(str(PXTUI))} live px/http_data")
    # on an early exit, keep the pane (and pxtui's message) on screen for the error report
    shell = f"{live}; echo \"[pxtui exited $?]\"; sleep 60"
    row_re = re.compile(r"\b(GET|POST)\b.*" + re.escape(PATH))
    first_frame: float | None = None
    t0 = time.perf_counter()
    tmux.cmd("new-session", "-d", "-s", name, "-x", "160", "-y", "48", shell)
    try:
        screen = ""
        while (now := time.perf_counter() - t0) < timeout:
            screen = tmux.capture(name) or ""
            if first_frame is None and screen.strip():
                first_frame = now
            if any(row_re.search(line) for line in screen.splitlines()):
                assert first_frame is not None
                return first_frame, now
            if "[pxtui exited" in screen:
                break
            time.sleep(POLL_S)
        raise RuntimeError(f"no {PATH} row on screen after {time.perf_counter() - t0:.1f} s; screen:\n{screen}")
    finally:
        tmux.kill_session(name)


def stats(xs: list[float]) -> str:
    return f"median {statistics.median(xs) * 1e3:7.0f} ms   min {min(xs) * 1e3:7.0f} ms   max {max(xs) * 1e3:7.0f} ms"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--timeout", type=float, default=30.0, help="per TUI run, seconds")
    a = ap.parse_args()
    if os.geteuid() != 0:
        sys.exit("run as root: the Vizier loads eBPF")
    cleanup_on_signals()

    tmp = Path(tempfile.mkdtemp(prefix="pxtui-bench-first-row-"))
    srv: subprocess.Popen | None = None
    tmux: Tmux | None = None
    once: list[float] = []
    frame: list[float] = []
    row: list[float] = []
    try:
        port = free_port()
        (tmp / "www").mkdir()
        (tmp / "www" / PATH.strip("/")).write_text("ok\n")
        srv = subprocess.Popen([sys.executable, "-m", "http.server", "-b", "127.0.0.1", "-d", str(tmp / "www"),
                                str(port)], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL, start_new_session=True)
        with running_vizier(tmp / "state") as viz:
            addr, key, client = viz.addr, viz.api_key, viz.client()
            env = viz.env()  # its own PXTUI_VIZIER, API key and config dir (no key pinned elsewhere)
            os.environ["XDG_CONFIG_HOME"] = env["XDG_CONFIG_HOME"]  # and the TUI runs' too
            tmux = Tmux(f"pxtui-bench-{os.getpid()}")
            try:
                for i in range(a.runs + 1):  # run 0 is the warm-up
                    make_traffic(client, port)
                    o = time_once(env)
                    f, r = time_tui(tmux, f"run{i}", addr, key, a.timeout)
                    log(f"run {i}{' (warm-up)' if i == 0 else ''}: --once {o * 1e3:.0f} ms, "
                        f"first frame {f * 1e3:.0f} ms, first row {r * 1e3:.0f} ms")
                    if i:
                        once.append(o)
                        frame.append(f)
                        row.append(r)
            finally:
                client.close()
    finally:
        if tmux is not None:
            tmux.kill_server()
        stop_group(srv, grace=5)
        shutil.rmtree(tmp, ignore_errors=True)

    print(f"pxtui live px/http_data: launch to first data row (tmux 160x48, {a.runs} runs after 1 warm-up)")
    print(f"  --once -o json returns : {stats(once)}")
    print(f"  TUI first frame        : {stats(frame)}")
    print(f"  TUI first data row     : {stats(row)}")
    med_row = statistics.median(row)
    print(f"  first row / goal 1 s   : {med_row / GOAL_S:.2f}x")
    print(f"  first row / --once     : {med_row / statistics.median(once):.2f}x   (medians)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
