"""The real CLI in a real terminal (tmux) against the embedded Vizier: traced HTTP requests reach
the screen, keys work, and `q` ends the program with the pane's shell prompt back."""

from __future__ import annotations

import shlex
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from tests.conftest import Vizier, free_port

pytestmark = pytest.mark.ebpf
ROOT = Path(__file__).resolve().parents[2]
PEERS = [sys.executable, str(ROOT / "tests" / "integration" / "http_peers.py")]
PXTUI = str(Path(sys.executable).with_name("pxtui"))


def _tmux(*args: str) -> str:
    return subprocess.run(["tmux", *args], check=True, capture_output=True, text=True, timeout=10).stdout


def _wait_for(session: str, text: str, timeout: float = 30) -> str:
    deadline = time.monotonic() + timeout
    screen = ""
    while time.monotonic() < deadline:
        screen = _tmux("capture-pane", "-p", "-t", session)
        if text in screen:
            return screen
        time.sleep(0.2)
    raise AssertionError(f"{text!r} never appeared; the pane shows:\n{screen}")


def _wait_gone(session: str, text: str, timeout: float = 10) -> None:
    """Wait until `text` left the screen (also lets a lone Escape be read as Escape, not Alt+key)."""
    deadline = time.monotonic() + timeout
    while text in _tmux("capture-pane", "-p", "-t", session):
        assert time.monotonic() < deadline, f"{text!r} is still on screen"
        time.sleep(0.2)


def test_cli_in_tmux_shows_traffic_and_obeys_keys(vizier: Vizier) -> None:
    port = free_port()
    server = subprocess.Popen([*PEERS, "serve", str(port)], stdout=subprocess.PIPE, text=True)
    session = f"pxtui-test-{uuid.uuid4().hex[:8]}"
    try:
        assert server.stdout is not None and server.stdout.readline().strip() == "ready"
        marker = uuid.uuid4().hex
        subprocess.run([*PEERS, "post", str(port), f"/tmux/{marker}", '{"m": 1}'], check=True, timeout=30)
        env = vizier.env()
        exports = " ".join(f"{k}={shlex.quote(env[k])}" for k in
                           ("PXTUI_VIZIER", "PXTUI_API_KEY", "PXTUI_STATE_DIR", "XDG_CONFIG_HOME"))
        # the shell stays after pxtui exits, so the test can see what was left on the terminal
        cmd = f"env {exports} {PXTUI} live px/http_data --refresh 1 -- --path_filter={marker}; echo PXTUI-EXITED=$?"
        _tmux("new-session", "-d", "-s", session, "-x", "120", "-y", "30", "bash", "--norc", "-c",
              f"{cmd}; sleep 30")
        screen = _wait_for(session, f"/tmux/{marker[:6]}")  # fits the path column even at 80 columns
        assert "HTTP traffic" in screen and "agents 1/1" in screen
        _tmux("send-keys", "-t", session, "?")
        _wait_for(session, "Keys (Esc closes)")
        _tmux("send-keys", "-t", session, "Escape")
        _wait_gone(session, "Keys (Esc closes)")
        _tmux("send-keys", "-t", session, ":")
        _wait_for(session, "Run script")
        _tmux("send-keys", "-t", session, "Escape")
        _wait_gone(session, "Run script")
        _tmux("send-keys", "-t", session, "space")
        _wait_for(session, "PAUSED")
        _tmux("send-keys", "-t", session, "q")
        screen = _wait_for(session, "PXTUI-EXITED=0")
        assert "HTTP traffic" not in screen  # the alternate screen is gone: the terminal is restored
    finally:
        subprocess.run(["tmux", "kill-session", "-t", session], capture_output=True, timeout=10)
        server.terminate()
        server.wait(timeout=10)
