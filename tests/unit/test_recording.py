"""Record and replay without eBPF: the recording format, the metadata snapshot, the in-process
runner, the CLI's --data option, and the broker's RecordTables RPC over real gRPC with sealed
payloads. The broker's data side here is a table store filled by tests/datagen.py (synthetic)."""

from __future__ import annotations

import json
from pathlib import Path

import grpc
import pyarrow as pa
import pytest
from click.testing import CliRunner

from cluster.api import vizier_pb2 as pb
from cluster.api import vizier_pb2_grpc as pb_grpc
from cluster.auth.api_keys import API_KEY_HEADER
from cluster.auth.e2e import E2EError, new_client_key, public_bytes, unseal
from cluster.metadata.recorded import RecordedMetadata
from cluster.pem.agent import PemStatus
from cluster.pem.process_info import make_upid
from cluster.schemas import TABLES, UINT128
from cluster.store.recording import (
    METADATA_SCHEMA,
    AgentInfo,
    Manifest,
    RecordingError,
    load_recording,
    write_recording,
)
from cluster.store.table_store import TableStore
from pxtui.cli import main
from pxtui.local_runner import LocalRunner
from pxtui.recorder import record
from pxtui.runner import ScriptError, VizierUnavailable
from pxtui.scripts import Script, find
from tests import datagen
from tests.cluster_harness import running_cluster
from tests.util import as_rows

NS = 1_000_000_000
DAY_AGO = 1_700_000_000 * NS  # a fixed instant long before any test runs


@pytest.fixture(scope="module")
def rec_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("rec") / "synthetic"
    datagen.write(d, seed=7, end_time_ns=DAY_AGO, rows=500)
    return d


# ---- format ----------------------------------------------------------------------------------
def test_every_table_round_trips_with_its_schema_and_field_metadata(rec_dir: Path) -> None:
    rec = load_recording(rec_dir)
    assert set(rec.store.names()) == set(TABLES)
    for name, spec in TABLES.items():
        got = rec.store.get(name).schema
        assert got.equals(spec.schema, check_metadata=True), name
        assert rec.store.get(name).stats().rows == rec.manifest.tables[name] > 0
    assert rec.manifest.end_time_ns == DAY_AGO
    assert rec.manifest.start_time_ns is not None and rec.manifest.start_time_ns >= DAY_AGO - 300 * NS
    assert rec.manifest.max_time_ns is not None and rec.manifest.max_time_ns <= DAY_AGO
    assert rec.manifest.vizier_version == datagen.SYNTHETIC_VERSION
    assert [a.hostname for a in rec.manifest.agents] == list(datagen.NODES)


def test_manifest_is_plain_json_with_time_range_agents_host_and_version(rec_dir: Path) -> None:
    doc = json.loads((rec_dir / "manifest.json").read_text())
    assert doc["format"] == "pxtui-recording" and doc["version"] == 1
    assert {"end_time_ns", "start_time_ns", "agents", "hostname", "vizier_version", "tables"} <= set(doc)
    assert (rec_dir / "metadata.arrow").exists() and (rec_dir / "kafka_events.beta.arrow").exists()


def test_recording_into_a_non_empty_directory_is_refused(rec_dir: Path) -> None:
    with pytest.raises(RecordingError, match="not empty"):
        write_recording(rec_dir, {}, METADATA_SCHEMA.empty_table(), DAY_AGO, [])


@pytest.mark.parametrize("setup, message", [
    (lambda d: None, "no such directory"),
    (lambda d: d.mkdir(), "no manifest.json"),
    (lambda d: (d.mkdir(), (d / "manifest.json").write_text("{")), "not JSON"),
    (lambda d: (d.mkdir(), (d / "manifest.json").write_text('{"format": "x"}')), "not a pxtui recording"),
    (lambda d: (d.mkdir(), (d / "manifest.json").write_text(
        Manifest(end_time_ns=1, tables={"http_events": 3}).to_json())), "http_events.arrow: missing"),
])
def test_unusable_directories_say_which_file_and_why(tmp_path: Path, setup, message: str) -> None:
    d = tmp_path / "r"
    setup(d)
    with pytest.raises(RecordingError, match=message):
        load_recording(d)


def test_table_names_cannot_escape_the_directory(tmp_path: Path) -> None:
    with pytest.raises(RecordingError, match="not a table name"):
        write_recording(tmp_path / "r", {"../evil": TABLES["http_events"].schema.empty_table()},
                        METADATA_SCHEMA.empty_table(), 1, [])


# ---- metadata snapshot -----------------------------------------------------------------------
def test_recorded_metadata_answers_by_upid_and_by_entity() -> None:
    gen = datagen.generate(seed=1, end_time_ns=DAY_AGO, rows=10)
    md = RecordedMetadata(gen.metadata, "synthetic-node-1")
    p = datagen.cluster_processes()[0]
    unknown = make_upid(9, 9, 9)
    upids = pa.array([p.upid, unknown, p.upid], UINT128)
    assert md.upid_attr("pod_name", upids).to_pylist() == [f"{p.namespace}/{p.pod}", "", f"{p.namespace}/{p.pod}"]
    assert md.upid_attr("node_name", upids).to_pylist()[0] == p.node
    assert md.entity_attr("pod_id", "service_name", pa.array([p.pod_id, "nope"])).to_pylist() == [
        f"{p.namespace}/{p.service}", ""]
    assert md.entity_attr("ip", "pod_id", pa.array([p.ip])).to_pylist() == [""]  # the snapshot keeps no IPs
    assert md.hostname() == "synthetic-node-1"
    with pytest.raises(KeyError, match="unknown metadata attribute"):
        md.upid_attr("colour", upids)


# ---- replay ----------------------------------------------------------------------------------
def test_relative_windows_count_back_from_the_recordings_end(rec_dir: Path) -> None:
    runner = LocalRunner.open(rec_dir)
    src = ("import px\n"
           "df = px.DataFrame(table='http_events', start_time='-1m')\n"
           "df = df.agg(n=('latency', px.count), first=('time_', px.min))\n"
           "px.display(df)\n")
    res = runner.execute(src)
    (row,) = as_rows(res.tables[0][1])
    assert row["n"] > 0  # the recording ended long ago, yet -1m selects its last minute
    assert row["first"] >= DAY_AGO - 60 * NS


def test_replay_resolves_pods_from_the_snapshot(rec_dir: Path) -> None:
    runner = LocalRunner.open(rec_dir)
    res = runner.run(find("px/http_data"), {"start_time": "-5m", "max_num_records": "50"})
    rows = as_rows(res.table("http_data"))
    pods = {f"{p.namespace}/{p.pod}" for p in datagen.cluster_processes()}
    assert len(rows) == 50 and all(r["pod"] in pods for r in rows)


def test_replay_errors_are_script_errors_with_locations(rec_dir: Path) -> None:
    runner = LocalRunner.open(rec_dir)
    with pytest.raises(ScriptError, match=r"Script compilation failed: L2 : C\d+"):
        runner.execute("import px\ndf = px.DataFrame(table='no_such_table')\npx.display(df)\n")
    with pytest.raises(ScriptError, match="Missing required argument"):
        runner.run(find("px/pod"), {})
    with pytest.raises(ScriptError, match="takes no arguments"):
        runner.run(Script("adhoc", "import px\n"), {"x": "1"})


def test_status_reports_the_recorded_window(rec_dir: Path) -> None:
    st = LocalRunner.open(rec_dir).status()
    assert st.agents_total == 2 and st.events_lost == 0
    assert st.window is not None and st.window[1] == DAY_AGO


# ---- CLI -------------------------------------------------------------------------------------
def test_cli_run_with_data_prints_json_without_a_vizier(rec_dir: Path) -> None:
    env = {"PXTUI_VIZIER": "127.0.0.1:1", "PXTUI_API_KEY": ""}  # nothing listens there
    res = CliRunner().invoke(main, ["run", "--data", str(rec_dir), "px/http_data", "-o", "json", "--",
                                    "--max_num_records=5"], env=env)
    assert res.exit_code == 0, res.output
    doc = json.loads(res.stdout)
    assert len(doc["tables"]["http_data"]["rows"]) == 5
    live = CliRunner().invoke(main, ["live", "--data", str(rec_dir), "px/services", "--once", "-o", "json"], env=env)
    assert live.exit_code == 0, live.output
    assert json.loads(live.stdout)["tables"]["services"]["rows"]


def test_cli_data_errors_and_help(tmp_path: Path) -> None:
    res = CliRunner().invoke(main, ["run", "--data", str(tmp_path / "none"), "px/http_data"])
    assert res.exit_code == 2 and "--data:" in res.stderr and "no such directory" in res.stderr
    for cmd in ("run", "live"):
        text = CliRunner().invoke(main, [cmd, "--help"]).output
        assert "--data DIR" in text and "recording's end time" in " ".join(text.split())


# ---- the RecordTables RPC --------------------------------------------------------------------
class RecordedDataSide:
    """The broker's data side (what cluster.pem.agent.Pem offers it) over a synthetic table store."""

    def __init__(self, gen: datagen.Generated):
        self.agent_id = "3f2a6a52-7d1c-4b4e-9a51-0c3e2d7f1a10"
        self.hostname = "synthetic-node-1"
        self.asid = 1
        self.started_ns = 0
        self.store = TableStore()
        for name, table in gen.tables.items():
            self.store.create(name, table.schema)
            self.store.append(name, table)
        self.metadata = RecordedMetadata(gen.metadata, self.hostname)

    def status(self) -> PemStatus:
        return PemStatus(self.agent_id, 1, self.hostname, "AGENT_STATE_HEALTHY", [], "exact", 0, 0, 0, 0,
                         self.store.stats(), "")


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory):
    import time

    gen = datagen.generate(seed=3, end_time_ns=time.time_ns(), rows=400)
    with running_cluster(tmp_path_factory.mktemp("keys"), [RecordedDataSide(gen)]) as cluster:
        yield cluster.addr, cluster.api_key, gen


def test_record_then_replay_gives_the_live_rows(broker, tmp_path: Path) -> None:
    from pxtui.client import VizierClient

    addr, key, gen = broker
    m = record(addr, key, tmp_path / "rec")
    assert m.tables == {n: t.num_rows for n, t in gen.tables.items()}
    assert m.agents == [AgentInfo("3f2a6a52-7d1c-4b4e-9a51-0c3e2d7f1a10", 1, "synthetic-node-1", "AGENT_STATE_HEALTHY")]
    rec = load_recording(tmp_path / "rec")
    for name, spec in TABLES.items():
        assert rec.store.get(name).schema.equals(spec.schema, check_metadata=True)
    # the snapshot holds every process the tables mention, with its attributes as the agent gave them
    assert rec.metadata.num_rows == gen.metadata.num_rows
    client = VizierClient(addr, key)
    try:
        args = {"start_time": "-10m", "max_num_records": "100000"}
        live = client.run(find("px/http_data"), args)
    finally:
        client.close()
    replay = LocalRunner(rec).run(find("px/http_data"), args)
    assert as_rows(live.table("http_data")) == as_rows(replay.table("http_data"))
    assert len(as_rows(replay.table("http_data"))) == gen.tables["http_events"].num_rows


def test_record_payloads_are_sealed_for_the_requesting_key_only(broker) -> None:
    addr, key, _ = broker
    mine, other = new_client_key(), new_client_key()
    with grpc.insecure_channel(addr) as ch:
        stub = pb_grpc.VizierServiceStub(ch)
        req = pb.RecordTablesRequest(client_public_key=public_bytes(mine), tables=["http_events"])
        parts = [r.part for r in stub.RecordTables(req, metadata=[(API_KEY_HEADER, key)])
                 if r.WhichOneof("result") == "part"]
    assert {p.table_name for p in parts if not p.metadata} == {"http_events"}
    assert all(b"req_path" not in p.sealed_ipc for p in parts)  # no schema, no rows in the clear
    assert pa.ipc.open_stream(unseal(mine, parts[0].sealed_ipc)).schema.names[0] == "time_"
    with pytest.raises(E2EError):
        unseal(other, parts[0].sealed_ipc)


def test_record_refuses_a_bad_key_and_unknown_tables(broker, tmp_path: Path) -> None:
    addr, key, _ = broker
    with pytest.raises(VizierUnavailable, match="refused the API key"):
        record(addr, "pxtui_wrong", tmp_path / "a")
    with pytest.raises(VizierUnavailable, match="no table 'nope'"):
        record(addr, key, tmp_path / "b", ["nope"])


def test_cli_record_writes_a_replayable_directory(broker, tmp_path: Path) -> None:
    addr, key, _ = broker
    res = CliRunner().invoke(main, ["record", str(tmp_path / "r"), "--vizier", addr, "--api-key", key])
    assert res.exit_code == 0, res.output
    assert f"recorded {len(TABLES)} tables" in res.stdout
    again = CliRunner().invoke(main, ["record", str(tmp_path / "r"), "--vizier", addr, "--api-key", key])
    assert again.exit_code == 2 and "not empty" in again.stderr
    down = CliRunner().invoke(main, ["record", str(tmp_path / "x"), "--vizier", "127.0.0.1:1", "--api-key", key])
    assert down.exit_code == 3
