"""The table functions (UDTFs) PxL can call, described once for the compiler, the engine and
px.GetUDTFList: their arguments, output columns and where Pixie runs them.

They are answered by cluster.pxl.exec.udtf; this module holds only their shape.
"""

from __future__ import annotations

from dataclasses import dataclass

from cluster.pxl.types import BOOLEAN, INT64, STRING, TIME64NS, UINT128


@dataclass(frozen=True)
class UDTFArg:
    name: str
    dtype: str
    default: object


@dataclass(frozen=True)
class UDTFSpec:
    name: str
    args: tuple[UDTFArg, ...]
    columns: tuple[tuple[str, str, str], ...]  # (name, data type, semantic type)
    executor: str
    doc: str


ONE_KELVIN = "UDTF_ONE_KELVIN"

_S = "ST_NONE"
UDTFS: dict[str, UDTFSpec] = {spec.name: spec for spec in (
    UDTFSpec("GetAgentStatus", (UDTFArg("include_kelvin", BOOLEAN, True),), (
        ("agent_id", UINT128, _S), ("asid", INT64, "ST_ASID"), ("hostname", STRING, _S),
        ("ip_address", STRING, "ST_IP_ADDRESS"), ("agent_state", STRING, _S),
        ("create_time", TIME64NS, _S), ("last_heartbeat_ns", INT64, "ST_DURATION_NS"),
        ("kernel_headers_installed", BOOLEAN, _S)), ONE_KELVIN,
        "one row per agent; include_kelvin=False keeps only data-collecting agents"),
    UDTFSpec("GetSchemas", (), (
        ("table_name", STRING, _S), ("column_name", STRING, _S), ("column_type", STRING, _S),
        ("pattern_type", STRING, _S), ("column_desc", STRING, _S)), ONE_KELVIN,
        "one row per column of every table"),
    UDTFSpec("GetTables", (), (("table_name", STRING, _S), ("table_desc", STRING, _S)), ONE_KELVIN,
             "the tables queries can read"),
    UDTFSpec("GetUDFList", (), (("name", STRING, _S), ("return_type", STRING, _S), ("args", STRING, _S)),
             ONE_KELVIN, "scalar functions, one row per overload"),
    UDTFSpec("GetUDAList", (), (("name", STRING, _S), ("return_type", STRING, _S), ("args", STRING, _S)),
             ONE_KELVIN, "aggregate functions, one row per overload"),
    UDTFSpec("GetUDTFList", (), (
        ("name", STRING, _S), ("executor", STRING, _S), ("init_args", STRING, _S),
        ("output_relation", STRING, _S)), ONE_KELVIN, "table functions"),
    UDTFSpec("GetTracepointStatus", (), (
        ("tracepoint_id", UINT128, _S), ("name", STRING, _S), ("state", STRING, _S),
        ("status", STRING, _S), ("output_tables", STRING, _S)), ONE_KELVIN,
        "dynamic tracepoints and their state"),
)}
