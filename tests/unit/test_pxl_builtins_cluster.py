"""Builtins that look outside the row: nslookup, CIDRs, asid/host CPUs, metadata status look-ups,
UPID/time conversions, and the UDTFs answered through a VizierInfo.  The fakes are test data."""

from __future__ import annotations

import json
import os
import threading

import pyarrow as pa
import pytest

from cluster import schemas
from cluster.pxl import PxlCompileError, PxlRuntimeError, compile_pxl, execute
from cluster.pxl.funcs import REGISTRY
from cluster.pxl.funcs.net_funcs import ReverseDNS, cidrs_contain_ip
from tests.unit.test_pxl_support import NOW, SCHEMAS, FakeMetadata, FakeTables, column, run, upid


def lit(expr: str, **kw):
    return column(expr, **kw)[0]


def times(expr: str, **kw) -> list[int]:
    src = f"import px\ndf = px.DataFrame('small')\ndf.out = {expr}\npx.display(df[['out']])\n"
    return run(src, **kw)["output"].column("out").cast(pa.int64()).to_pylist()


# ---- nslookup -------------------------------------------------------------------------------


def test_nslookup_caches_and_returns_address_without_name(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[str] = []

    def fake(addr: str) -> str:
        calls.append(addr)
        return {"10.0.0.1": "db.local"}.get(addr, addr)

    dns = ReverseDNS(timeout_s=1.0)
    monkeypatch.setattr(dns, "resolve", fake)
    assert dns.lookup_many(["10.0.0.1", "10.0.0.2"]) == {"10.0.0.1": "db.local", "10.0.0.2": "10.0.0.2"}
    assert dns.lookup_many(["10.0.0.1"]) == {"10.0.0.1": "db.local"}
    assert calls == ["10.0.0.1", "10.0.0.2"]


def test_nslookup_lru_evicts_oldest(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[str] = []
    dns = ReverseDNS(timeout_s=1.0, capacity=2)
    monkeypatch.setattr(dns, "resolve", lambda a: calls.append(a) or a)
    dns.lookup_many(["1.1.1.1"])
    dns.lookup_many(["2.2.2.2"])
    dns.lookup_many(["1.1.1.1"])  # refreshes 1.1.1.1
    dns.lookup_many(["3.3.3.3"])  # evicts 2.2.2.2
    dns.lookup_many(["1.1.1.1", "2.2.2.2"])
    assert calls == ["1.1.1.1", "2.2.2.2", "3.3.3.3", "2.2.2.2"]


def test_nslookup_timeout_returns_address_and_is_not_cached(monkeypatch: pytest.MonkeyPatch) -> None:
    release = threading.Event()

    def slow(addr: str) -> str:
        release.wait(5)
        return "late.name"

    dns = ReverseDNS(timeout_s=0.05)
    monkeypatch.setattr(dns, "resolve", slow)
    assert dns.lookup_many(["10.9.9.9"]) == {"10.9.9.9": "10.9.9.9"}
    release.set()
    monkeypatch.setattr(dns, "resolve", lambda a: "now.named")
    assert dns.lookup_many(["10.9.9.9"]) == {"10.9.9.9": "now.named"}


def test_nslookup_real_resolver_edges() -> None:
    assert ReverseDNS.resolve("-") == "-"  # not an IP: nothing to ask
    assert ReverseDNS.resolve("not an ip") == "not an ip"
    assert isinstance(ReverseDNS.resolve("127.0.0.1"), str)
    assert REGISTRY.scalar("nslookup").foldable is False
    assert column("px.nslookup(df.svc)") == ["a", "b", "a", "c", "b"]


# ---- CIDRs, asid, CPUs ------------------------------------------------------------------------


def test_cidrs_contain_ip() -> None:
    cidrs = '["10.0.0.0/8", "fd00::/8", "bad", 5]'
    assert cidrs_contain_ip(cidrs, "10.200.1.1")
    assert cidrs_contain_ip(cidrs, "fd00::1")
    assert not cidrs_contain_ip(cidrs, "11.0.0.1")
    assert not cidrs_contain_ip(cidrs, "not-ip")
    assert not cidrs_contain_ip("not json", "10.0.0.1")
    assert column("px.cidrs_contain_ip('[\"10.0.0.0/30\"]', '10.0.0.' + px.itoa(df.n))") == [
        True, False, True, False, False]


class ClusterMetadata(FakeMetadata):
    """FakeMetadata plus the optional asid()/cidrs() extras."""

    def asid(self) -> int:
        return 42

    def cidrs(self) -> list[str]:
        return ["10.244.0.0/16", "10.96.0.0/12"]


def test_get_cidrs_and_asid_come_from_the_metadata_source() -> None:
    assert lit("px.get_cidrs()") == "[]"
    assert lit("px.asid()") == 0
    md = ClusterMetadata()
    assert json.loads(lit("px.get_cidrs()", metadata=md)) == ["10.244.0.0/16", "10.96.0.0/12"]
    assert lit("px.asid()", metadata=md) == 42
    assert lit("px.cidrs_contain_ip(px.get_cidrs(), '10.96.0.10')", metadata=md) is True
    assert lit("px._exec_host_num_cpus()") == (os.cpu_count() or 1)


# ---- metadata status look-ups -----------------------------------------------------------------


def test_pod_and_container_status_lookups() -> None:
    md = FakeMetadata(entities={
        ("pod_name", "start_time", "a"): "1600000000000000000",
        ("pod_name", "start_time", "b"): "garbage",
        ("pod_name", "status", "a"): '{"phase":"Running","message":"","reason":"","ready":true}',
        ("pod_name", "pod_ip", "c"): "10.1.2.3",
        ("container_id", "status", "b"): '{"state":"Waiting","message":"","reason":"x"}',
        ("ip", "service_id", "c"): "svc-uid",
        ("ip", "pod_id", "a"): "pod-uid",
    })
    assert times("px.pod_name_to_start_time(df.svc)", metadata=md) == [1600000000000000000, 0,
                                                                     1600000000000000000, 0, 0]
    assert json.loads(lit("px.pod_name_to_status(df.svc)", metadata=md))["phase"] == "Running"
    assert column("px.pod_name_to_pod_ip(df.svc)", metadata=md) == ["", "", "", "10.1.2.3", ""]
    assert column("px.container_id_to_status(df.svc)", metadata=md)[1].startswith('{"state":"Waiting"')
    assert column("px.ip_to_service_id(df.svc)", metadata=md)[3] == "svc-uid"
    assert column("px.ip_to_pod_id(df.svc, df.time_)", metadata=md)[0] == "pod-uid"


# ---- conversions --------------------------------------------------------------------------------


def test_upid_helpers_and_uint128() -> None:
    assert lit("px.upid_to_string(px.make_upid(7, 100, 1234))") == "7:100:1234"
    assert lit("px.upid_to_pid(px.make_upid(7, 100, 1234))") == 100
    assert lit("px.upid_to_asid(px.make_upid(7, 100, 1234))") == 7
    assert times("px.upid_to_start_ts(px.make_upid(1, 2, 3))")[0] == 3
    assert lit("px.upid_to_string(px.make_upid(-1, 2, -1))") == f"{2**32 - 1}:2:{2**64 - 1}"
    assert lit("px.make_upid(7, 100, 1234) == px.uint128('00000007-0000-0064-0000-0000000004d2')") is True
    with pytest.raises(PxlCompileError, match="is not a UUID"):
        column("px.uint128('nope')")
    with pytest.raises(PxlCompileError, match="UUID string literal"):
        column("px.uint128(df.svc)")


def test_upid_column_round_trip() -> None:
    src = ("import px\ndf = px.DataFrame('http_events')\ndf.s = px.upid_to_string(df.upid)\n"
           "df.same = df.upid == px.make_upid(7, px.upid_to_pid(df.upid), 1234)\npx.display(df[['s', 'same']])\n")
    out = run(src)["output"]
    assert out.column("s").to_pylist()[:2] == ["7:100:1234", "7:101:1234"]
    assert all(out.column("same").to_pylist())
    assert upid(100) == bytes.fromhex("00000007000000640000000000000" + "4d2")


def test_time_int_conversions() -> None:
    assert column("px.time_to_int64(df.time_)")[0] == NOW - 100 * 10**9
    assert times("px.int64_to_time(df.n)") == [1, -7, 3, 4, 10]
    assert times("px.int64_to_time(px.time_to_int64(df.time_) + 5)")[0] == NOW - 100 * 10**9 + 5


# ---- UDTFs --------------------------------------------------------------------------------------


class FakeVizier:
    """Two agents (one PEM, one Kelvin) and two tables: test data for the UDTFs."""

    def agents(self) -> list[dict]:
        return [
            {"agent_id": b"\x01" * 16, "asid": 1, "hostname": "node-1", "ip_address": "10.0.0.1",
             "agent_state": "AGENT_STATE_HEALTHY", "create_time": NOW - 10**9, "last_heartbeat_ns": 2_000,
             "kernel_headers_installed": True, "collects_data": True},
            {"agent_id": b"\x02" * 16, "asid": 2, "hostname": "kelvin", "ip_address": "10.0.0.2",
             "agent_state": "AGENT_STATE_UNRESPONSIVE", "create_time": NOW - 5 * 10**9,
             "last_heartbeat_ns": 9_000_000_000, "kernel_headers_installed": False, "collects_data": False},
        ]

    def schemas(self) -> dict[str, pa.Schema]:
        conn = schemas.CONN_STATS.with_metadata({b"desc": b"connection counters"})
        return {"conn_stats": conn, "http_events": schemas.HTTP_EVENTS}


FAKE_VIZIER = FakeVizier()


def udtf(source: str, vizier: object = FAKE_VIZIER) -> dict[str, pa.Table]:
    q = compile_pxl(source, now_ns=NOW, schemas=SCHEMAS)
    return dict(execute(q, FakeTables({}), FakeMetadata(), vizier=vizier))


def test_get_agent_status() -> None:
    out = udtf("import px\npx.display(px.GetAgentStatus())\n")["output"]
    assert out.column_names == ["agent_id", "asid", "hostname", "ip_address", "agent_state", "create_time",
                                "last_heartbeat_ns", "kernel_headers_installed"]
    assert out.column("hostname").to_pylist() == ["node-1", "kelvin"]
    assert out.schema.field("create_time").type == schemas.TIME64NS
    pems = udtf("import px\npx.display(px.GetAgentStatus(include_kelvin=False))\n")["output"]
    assert pems.column("asid").to_pylist() == [1]
    filtered = udtf("import px\ndf = px.GetAgentStatus(False)\n"
                    "df = df[df.agent_state != 'AGENT_STATE_HEALTHY']\npx.display(df)\n")["output"]
    assert filtered.num_rows == 0


def test_udtf_argument_errors() -> None:
    with pytest.raises(PxlCompileError, match="include_kelvin' must be a BOOLEAN literal"):
        compile_pxl("import px\npx.display(px.GetAgentStatus(1))\n", now_ns=NOW, schemas=SCHEMAS)
    with pytest.raises(PxlCompileError, match="unexpected keyword argument 'x'"):
        compile_pxl("import px\npx.display(px.GetSchemas(x=1))\n", now_ns=NOW, schemas=SCHEMAS)


def test_get_schemas_and_tables() -> None:
    out = udtf("import px\npx.display(px.GetSchemas())\npx.display(px.GetTables(), 't')\n")
    s = out["output"]
    rows = [r for r in s.to_pylist() if r["table_name"] == "conn_stats"]
    assert len(rows) == len(schemas.CONN_STATS)
    assert rows[0]["column_name"] == "time_" and rows[0]["column_type"] == "TIME64NS"
    assert {r["column_type"] for r in rows} >= {"UINT128", "STRING", "INT64", "BOOLEAN"}
    assert rows[0]["pattern_type"] == "UNSPECIFIED"
    t = out["t"].to_pylist()
    assert t == [{"table_name": "conn_stats", "table_desc": "connection counters"},
                 {"table_name": "http_events", "table_desc": ""}]


def test_function_lists_come_from_the_registry() -> None:
    out = udtf("import px\npx.display(px.GetUDFList(), 'f')\npx.display(px.GetUDAList(), 'a')\n"
               "px.display(px.GetUDTFList(), 't')\n", vizier=None)
    udfs = out["f"].to_pylist()
    names = {r["name"] for r in udfs}
    assert {"regex_match", "pluck_float64", "add", "nslookup"} <= names
    assert not any(n.startswith("_") for n in names)
    assert {"name": "regex_match", "return_type": "BOOLEAN", "args": '{"args":["STRING","STRING"]}'} in udfs
    assert sum(r["name"] == "bin" for r in udfs) == len(REGISTRY.scalar("bin").signatures)
    udas = {r["name"] for r in out["a"].to_pylist()}
    assert {"sum", "mean", "count", "quantiles"} <= udas and not udas & names
    udtfs = {r["name"]: r for r in out["t"].to_pylist()}
    assert "GetAgentStatus" in udtfs and udtfs["GetAgentStatus"]["executor"] == "UDTF_ONE_KELVIN"
    assert json.loads(udtfs["GetAgentStatus"]["init_args"])["args"][0]["name"] == "include_kelvin"


def test_tracepoint_status_is_empty_with_the_right_columns() -> None:
    out = udtf("import px\npx.display(px.GetTracepointStatus())\n", vizier=None)["output"]
    assert out.num_rows == 0
    assert out.column_names == ["tracepoint_id", "name", "state", "status", "output_tables"]
    assert out.schema.field("tracepoint_id").type == schemas.UINT128


def test_udtf_provider_hook_answers_first() -> None:
    class WithTracepoints(FakeVizier):
        def udtf(self, name: str, args: dict) -> pa.Table | None:
            if name != "GetTracepointStatus":
                return None
            return pa.table({"tracepoint_id": pa.array([b"\x00" * 16], schemas.UINT128), "name": ["tp"],
                             "state": ["running"], "status": [""], "output_tables": ['["t"]']})

    out = udtf("import px\npx.display(px.GetTracepointStatus())\npx.display(px.GetTables(), 't')\n",
               vizier=WithTracepoints())
    assert out["output"].column("state").to_pylist() == ["running"]
    assert out["t"].num_rows == 2


def test_udtfs_needing_the_cluster_fail_clearly_without_it() -> None:
    with pytest.raises(PxlRuntimeError, match=r"GetAgentStatus.*no VizierInfo"):
        udtf("import px\npx.display(px.GetAgentStatus())\n", vizier=None)
