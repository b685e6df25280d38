"""Record and replay, all real: curl -> an HTTP server -> eBPF in the embedded Vizier -> `pxtui record`
over sealed gRPC -> a recording directory -> `pxtui run --data` in this process (the path that needs
no root, no agent and no network) with no Vizier in reach, which must print the same rows the live
query printed."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from pxtui.cli import main
from tests.conftest import ROOT, Vizier, free_port, wait_until

pytestmark = pytest.mark.ebpf
PEERS = [sys.executable, str(Path(__file__).with_name("http_peers.py"))]
CLI = [sys.executable, "-m", "pxtui.cli"]
REQUESTS = 3


@pytest.fixture(scope="module")
def http_server() -> Iterator[int]:
    port = free_port()
    proc = subprocess.Popen([*PEERS, "serve", str(port)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
    yield port
    proc.terminate()
    proc.wait(timeout=10)


def _json_rows(stdout: str) -> list[dict]:
    return json.loads(stdout)["tables"]["http_data"]["rows"]


def test_recorded_http_data_replays_to_the_live_rows(vizier: Vizier, http_server: int, tmp_path: Path) -> None:
    marker = uuid.uuid4().hex
    for i in range(REQUESTS):
        subprocess.run(["curl", "-s", "-o", "/dev/null", f"http://127.0.0.1:{http_server}/rec/{marker}/{i}"],
                       check=True, timeout=30)
    query = ["px/http_data", "-o", "json", "--", "--start_time=-5m", f"--path_filter={marker}"]

    def live_rows() -> list[dict] | None:
        out = subprocess.run([*CLI, "run", *query], cwd=ROOT, env=vizier.env(), capture_output=True, text=True,
                             timeout=60)
        assert out.returncode == 0, out.stderr
        rows = _json_rows(out.stdout)
        return rows if len(rows) >= 2 * REQUESTS else None  # client and server side of each request

    live = wait_until(live_rows, 20, f"{2 * REQUESTS} http_events rows for {marker}")

    rec = tmp_path / "rec"
    out = subprocess.run([*CLI, "record", str(rec)], cwd=ROOT, env=vizier.env(), capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr
    manifest = json.loads((rec / "manifest.json").read_text())
    assert manifest["tables"]["http_events"] >= 2 * REQUESTS

    # The replay: in this process, no API key, the Vizier address pointing at nothing.
    env = {"PXTUI_VIZIER": f"127.0.0.1:{free_port()}", "PXTUI_API_KEY": "", "XDG_CONFIG_HOME": str(tmp_path / "cfg")}
    replay = CliRunner().invoke(main, ["run", "--data", str(rec), *query], env=env)
    assert replay.exit_code == 0, replay.output
    replayed = _json_rows(replay.stdout)
    assert replayed == live
    assert {r["path"] for r in replayed} == {f"/rec/{marker}/{i}" for i in range(REQUESTS)}
    assert all(r["pod"].startswith("host/") for r in replayed if r["trace_role"] == 2)
