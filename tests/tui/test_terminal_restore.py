"""The terminal comes back usable after SIGTERM and after a crash: the app runs on a real pty and
the bytes it writes must end by leaving the alternate screen and showing the cursor again."""

from __future__ import annotations

import os
import pty
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
ENTER_ALT = b"\x1b[?1049h"
LEAVE_ALT = b"\x1b[?1049l"
SHOW_CURSOR = b"\x1b[?25h"


def _start(*args: str) -> tuple[subprocess.Popen, int]:
    master, slave = pty.openpty()
    os.set_blocking(master, False)
    env = {**os.environ, "TERM": "xterm-256color", "COLUMNS": "100", "LINES": "30", "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, "-m", "tests.tui.pty_app", *args], cwd=ROOT, env=env,
                            stdin=slave, stdout=slave, stderr=slave, start_new_session=True)
    os.close(slave)
    return proc, master


def _read_until(master: int, needle: bytes, out: bytearray, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if needle in out:
            return True
        ready, _, _ = select.select([master], [], [], 0.1)
        if ready:
            try:
                out += os.read(master, 65536)
            except OSError:  # the child closed the pty
                return needle in out
    return needle in out


def _drain(master: int, out: bytearray, proc: subprocess.Popen, timeout: float = 15) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready, _, _ = select.select([master], [], [], 0.1)
        if ready:
            try:
                chunk = os.read(master, 65536)
            except OSError:
                break
            if not chunk:
                break
            out += chunk
        elif proc.poll() is not None:
            break


def _restored(out: bytes) -> bool:
    tail = out[out.rfind(ENTER_ALT):]
    return LEAVE_ALT in tail and SHOW_CURSOR in tail[tail.find(LEAVE_ALT) - 200:]


def test_sigterm_restores_terminal() -> None:
    proc, master = _start()
    out = bytearray()
    try:
        assert _read_until(master, b"Request rate", out, 30), out[-2000:]
        proc.send_signal(signal.SIGTERM)
        _drain(master, out, proc)
        assert proc.wait(timeout=15) == 0
        assert _restored(bytes(out)), out[-400:]
    finally:
        if proc.poll() is None:
            proc.kill()
        os.close(master)


def test_crash_restores_terminal_and_prints_the_error() -> None:
    proc, master = _start("crash")
    out = bytearray()
    try:
        assert _read_until(master, b"Request rate", out, 30), out[-2000:]
        os.write(master, b"x")
        _drain(master, out, proc)
        assert proc.wait(timeout=15) != 0
        assert _restored(bytes(out)), out[-400:]
        assert b"deliberate crash" in out
    finally:
        if proc.poll() is None:
            proc.kill()
        os.close(master)
