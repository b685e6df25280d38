"""`pxtui up --pems 2 --netns --kelvins 1`: a simulated cluster on this host, through the real CLI.

Two PEM processes, each in its own network namespace with its own address, load their eBPF probes
and own only their namespace's processes; a Kelvin merges. A server in node 1's namespace, called
from node 0's, is seen from both ends by the two PEMs; `pxtui down` leaves no process or namespace.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from tests.vizier_proc import ROOT, free_port, wait_until

pytestmark = pytest.mark.ebpf
PXTUI = [sys.executable, "-m", "pxtui.cli"]


def test_simulated_cluster_in_network_namespaces(tmp_path: Path) -> None:
    env = {**os.environ, "PXTUI_STATE_DIR": str(tmp_path / "state"), "XDG_CONFIG_HOME": str(tmp_path / "cfg")}
    addr = f"127.0.0.1:{free_port()}"

    def cli(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
        return subprocess.run([*PXTUI, *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)

    up = cli("up", "--pems", "2", "--netns", "--kelvins", "1", "--addr", addr)
    server = None
    try:
        assert up.returncode == 0, up.stdout + up.stderr
        assert "3 agent(s) healthy" in up.stdout
        netns = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
        assert "pxtui-node-0" in netns and "pxtui-node-1" in netns
        server = subprocess.Popen(["ip", "netns", "exec", "pxtui-node-1", sys.executable, "-m", "http.server",
                                   "8080", "--bind", "10.77.1.2"], stdout=subprocess.DEVNULL,
                                  stderr=subprocess.DEVNULL)
        marker = uuid.uuid4().hex
        url = f"http://10.77.1.2:8080/{marker}"
        wait_until(lambda: subprocess.run(["ip", "netns", "exec", "pxtui-node-0", "curl", "-s", "-o", "/dev/null",
                                           url]).returncode == 0, 20, "the server in node 1")

        def rows() -> list[dict]:
            out = cli("run", "px/http_data", "-o", "json", "--", "--path_filter", marker)
            assert out.returncode == 0, out.stderr
            doc = json.loads(out.stdout)
            assert doc["warnings"] == []
            return doc["tables"]["http_data"]["rows"]

        def called() -> list[dict] | None:  # call again each time: an early call may beat the probes' warm-up
            subprocess.run(["ip", "netns", "exec", "pxtui-node-0", "curl", "-s", "-o", "/dev/null", url])
            found = rows()
            return found if {r["trace_role"] for r in found} == {1, 2} else None

        found = wait_until(called, 60, "both ends of the call", interval=1)
        assert isinstance(found, list)
        roles = sorted(r["trace_role"] for r in found)
        assert roles[0] == 1 and roles[-1] == 2  # the client end (node 0) and the server end (node 1)
        client_row = next(r for r in found if r["trace_role"] == 1)
        server_row = next(r for r in found if r["trace_role"] == 2)
        assert client_row["remote_addr"] == "10.77.1.2" and server_row["remote_addr"] == "10.77.0.2"
        status = cli("status", "-o", "json")
        assert status.returncode == 0, status.stderr
        hosts = sorted(a["hostname"] for a in json.loads(status.stdout)["agents"])
        assert hosts == ["kelvin-0", "node-0", "node-1"]
    finally:
        if server is not None:
            server.kill()
            server.wait()
        down = cli("down")
        assert down.returncode == 0, down.stderr
    assert "pxtui-node-" not in subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    assert subprocess.run(["pgrep", "-f", "--", f"--broker {addr}"], capture_output=True).returncode == 1
