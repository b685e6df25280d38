"""Shared fixtures: a real embedded Vizier (eBPF, parsing, store, broker) in a child process.

The Vizier filters its own process's traffic in the kernel, so it must not share a process with
the traffic a test makes; and running it as `python -m cluster.vizier.embedded` tests the same
entry point `pxtui up` uses. It loads once per session: a BCC load costs seconds.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(pred: Callable[[], object], timeout: float, what: str, interval: float = 0.1) -> object:
    """Poll with a deadline instead of sleeping for a guessed time."""
    deadline = time.monotonic() + timeout
    last: object = None
    while time.monotonic() < deadline:
        last = pred()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:g} s waiting for {what} (last: {last!r})")


@dataclass
class Vizier:
    addr: str
    api_key: str
    state_dir: Path
    proc: subprocess.Popen

    def env(self) -> dict[str, str]:
        return {**os.environ, "PXTUI_VIZIER": self.addr, "PXTUI_API_KEY": self.api_key,
                "PXTUI_STATE_DIR": str(self.state_dir), "XDG_CONFIG_HOME": str(self.state_dir / "cfg")}

    def client(self):
        from pxtui.client import VizierClient

        return VizierClient(self.addr, self.api_key)


@pytest.fixture(scope="session")
def vizier(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Vizier]:
    if os.geteuid() != 0:
        pytest.fail("the embedded Vizier loads eBPF and needs root: run the suite as root (sudo ./scripts/test.sh)")
    from cluster.auth.api_keys import ApiKeyStore

    state = tmp_path_factory.mktemp("vizier-state")
    _, key = ApiKeyStore(state / "api_keys.json").create("tests")
    addr = f"127.0.0.1:{free_port()}"
    log = open(state / "vizier.log", "wb")  # noqa: SIM115
    env = {**os.environ, "PXTUI_STATE_DIR": str(state)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "cluster.vizier.embedded", "--addr", addr, "--conn-stats-period", "1"],
        cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
    )
    v = Vizier(addr, key, state, proc)
    client = v.client()

    def ready() -> bool:
        if proc.poll() is not None:
            pytest.fail("the Vizier exited during start-up:\n" + (state / "vizier.log").read_text())
        try:
            client.get_status()
            return True
        except Exception:
            return False

    try:
        wait_until(ready, 90, "the Vizier to load its probes and answer")
        yield v
    finally:
        client.close()
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()
