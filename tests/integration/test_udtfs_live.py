"""The UDTF scripts against the real embedded Vizier: px.GetAgentStatus and px.GetSchemas answer
from the running PEM, through the broker, over sealed gRPC."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.conftest import ROOT, Vizier

pytestmark = pytest.mark.ebpf


def run_json(vizier: Vizier, script: str) -> dict:
    out = subprocess.run([sys.executable, "-m", "pxtui.cli", "run", script, "-o", "json"], cwd=ROOT,
                         capture_output=True, text=True, env=vizier.env(), timeout=60)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def test_agent_status_reports_the_embedded_pem_and_the_kelvin(vizier: Vizier):
    doc = run_json(vizier, "px/agent_status")
    [rows] = [t["rows"] for t in doc["tables"].values()]
    assert len(rows) == 2  # the PEM, registered over gRPC, then the Kelvin (the broker's process)
    agent, kelvin = rows
    assert agent["agent_state"] == "AGENT_STATE_HEALTHY" and agent["asid"] == 1
    assert agent["kernel_headers_installed"] is True and agent["ip_address"] == "127.0.0.1"
    assert 0 <= agent["since_heartbeat"] < 5e9
    assert kelvin["agent_state"] == "AGENT_STATE_HEALTHY" and kelvin["kernel_headers_installed"] is False


def test_schemas_lists_the_collected_tables(vizier: Vizier):
    doc = run_json(vizier, "px/schemas")
    names = {r.get("table_name") for t in doc["tables"].values() for r in t["rows"]}
    assert {"http_events", "conn_stats"} <= names
