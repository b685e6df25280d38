"""A real embedded Vizier in a child process, for tests and benchmarks.

The Vizier filters its own process's traffic in the kernel, so it must not share a process with
the traffic a test makes; and `python -m cluster.vizier.embedded` is the entry point `pxtui up`
uses. The child gets its own process group so that cleanup reaches everything it started.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

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


def stop_group(proc: subprocess.Popen | None, grace: float) -> None:
    """SIGTERM the child's process group, SIGKILL it after `grace` seconds."""
    if proc is None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=grace)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)  # also anything that outlived its leader
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=5)


class VizierStartError(RuntimeError):
    pass


@dataclass
class Vizier:
    addr: str
    api_key: str
    state_dir: Path
    proc: subprocess.Popen

    @property
    def log_path(self) -> Path:
        return self.state_dir / "vizier.log"

    def env(self) -> dict[str, str]:
        return {**os.environ, "PXTUI_VIZIER": self.addr, "PXTUI_API_KEY": self.api_key,
                "PXTUI_STATE_DIR": str(self.state_dir), "XDG_CONFIG_HOME": str(self.state_dir / "cfg")}

    def client(self) -> Any:
        from pxtui.client import VizierClient

        return VizierClient(self.addr, self.api_key)


@contextlib.contextmanager
def running_vizier(state_dir: Path, extra_args: Sequence[str] = (), timeout: float = 90.0,
                   extra_env: dict[str, str] | None = None) -> Iterator[Vizier]:
    """Start a Vizier with its own state dir and API key; wait until it answers; stop it afterwards."""
    from cluster.auth.api_keys import ApiKeyStore

    state_dir.mkdir(parents=True, exist_ok=True)
    _, key = ApiKeyStore(state_dir / "api_keys.json").create("tests")
    addr = f"127.0.0.1:{free_port()}"
    with open(state_dir / "vizier.log", "wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "cluster.vizier.embedded", "--addr", addr, *extra_args],
            cwd=ROOT, env={**os.environ, "PXTUI_STATE_DIR": str(state_dir), **(extra_env or {})},
            stdin=subprocess.DEVNULL,
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )
    v = Vizier(addr, key, state_dir, proc)
    client = v.client()
    try:
        deadline = time.monotonic() + timeout
        while True:
            if proc.poll() is not None:
                raise VizierStartError(f"the Vizier exited ({proc.returncode}) during start-up:\n"
                                       + v.log_path.read_text(errors="replace")[-3000:])
            try:
                if any(a.state == "AGENT_STATE_HEALTHY" for a in client.get_status().agents):
                    break  # the broker answers before its PEM has loaded the probes
                if time.monotonic() > deadline:
                    raise VizierStartError(f"no healthy agent within {timeout:g} s:\n"
                                           + v.log_path.read_text(errors="replace")[-3000:])
                time.sleep(0.1)
                continue
            except VizierStartError:
                raise
            except Exception:
                if time.monotonic() > deadline:
                    raise VizierStartError(f"the Vizier did not answer within {timeout:g} s:\n"
                                           + v.log_path.read_text(errors="replace")[-3000:]) from None
                time.sleep(0.1)
        yield v
    finally:
        client.close()
        stop_group(proc, grace=20)


class Terminated(Exception):
    """SIGTERM/SIGHUP turned into an exception, so `finally` blocks clean children up."""


def _raise_terminated(signum: int, _frame: object) -> None:
    raise Terminated(f"signal {signum}")


def cleanup_on_signals() -> None:
    """For benchmark scripts: a `timeout` or a closed terminal still unwinds through `finally`."""
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, _raise_terminated)


def log(msg: str) -> None:
    print(f"[bench] {msg}", file=sys.stderr, flush=True)
