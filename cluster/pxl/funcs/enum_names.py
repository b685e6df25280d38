"""Protocol enum codes -> names (schemas.md §4), so scripts can show "Query" instead of 3.

Each table is a plain dict; a column is mapped once per distinct code.  What an unknown code gives
follows Pixie per function: protocol_name says "Invalid (n)", amqp_method_name says "Unknown" for an
unknown class, and the others give the code as a decimal string.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import pyarrow as pa

from cluster.pxl.funcs.arrays import is_scalar, py, rowwise, unique_map
from cluster.pxl.funcs.registry import EvalContext, Registry, ScalarFunc, Signature, Value
from cluster.pxl.types import INT64, STRING

# conn_stats.protocol; 11 (Mux) and 13 (TLS) are deliberately absent, as in Pixie's UDF.
PROTOCOLS = {0: "Unknown", 1: "HTTP", 2: "HTTP2", 3: "MySQL", 4: "CQL", 5: "PGSQL", 6: "DNS",
             7: "Redis", 8: "NATS", 9: "Mongo", 10: "Kafka", 12: "AMQP"}

MYSQL_COMMANDS = dict(enumerate((
    "Sleep", "Quit", "InitDB", "Query", "FieldList", "CreateDB", "DropDB", "Refresh", "Shutdown",
    "Statistics", "ProcessInfo", "Connect", "ProcessKill", "Debug", "Ping", "Time", "DelayedInsert",
    "ChangeUser", "BinlogDump", "TableDump", "ConnectOut", "RegisterSlave", "StmtPrepare",
    "StmtExecute", "StmtSendLongData", "StmtClose", "StmtReset", "SetOption", "StmtFetch", "Daemon",
    "BinlogDumpGTID", "ResetConnection")))

CQL_OPCODES = {0x00: "Error", 0x01: "Startup", 0x02: "Ready", 0x03: "Authenticate", 0x05: "Options",
               0x06: "Supported", 0x07: "Query", 0x08: "Result", 0x09: "Prepare", 0x0A: "Execute",
               0x0B: "Register", 0x0C: "Event", 0x0D: "Batch", 0x0E: "AuthChallenge",
               0x0F: "AuthResponse", 0x10: "AuthSuccess"}

KAFKA_API_KEYS = dict(enumerate((
    "Produce", "Fetch", "ListOffsets", "Metadata", "LeaderAndIsr", "StopReplica", "UpdateMetadata",
    "ControlledShutdown", "OffsetCommit", "OffsetFetch", "FindCoordinator", "JoinGroup", "Heartbeat",
    "LeaveGroup", "SyncGroup", "DescribeGroups", "ListGroups", "SaslHandshake", "ApiVersions",
    "CreateTopics", "DeleteTopics", "DeleteRecords", "InitProducerId", "OffsetForLeaderEpoch",
    "AddPartitionsToTxn", "AddOffsetsToTxn", "EndTxn", "WriteTxnMarkers", "TxnOffsetCommit",
    "DescribeAcls", "CreateAcls", "DeleteAcls", "DescribeConfigs", "AlterConfigs",
    "AlterReplicaLogDirs", "DescribeLogDirs", "SaslAuthenticate", "CreatePartitions",
    "CreateDelegationToken", "RenewDelegationToken", "ExpireDelegationToken",
    "DescribeDelegationToken", "DeleteGroups", "ElectLeaders", "IncrementalAlterConfigs",
    "AlterPartitionReassignments", "ListPartitionReassignments", "OffsetDelete",
    "DescribeClientQuotas", "AlterClientQuotas", "DescribeUserScramCredentials",
    "AlterUserScramCredentials")))
KAFKA_API_KEYS.update({56: "AlterIsr", 57: "UpdateFeatures", 60: "DescribeCluster",
                       61: "DescribeProducers"})

MUX_FRAME_TYPES = {1: "Treq", -1: "Rreq", 2: "Tdispatch", -2: "Rdispatch", 64: "Tdrain", -64: "Rdrain",
                   65: "Tping", -65: "Rping", 66: "Tdiscarded", -66: "Rdiscarded", 67: "Tlease",
                   68: "Tinit", -68: "Rinit", -128: "Rerr", 127: "Rerr", -62: "Tdiscarded"}

AMQP_FRAME_TYPES = {1: "Frame method", 2: "Content Header", 3: "Content Body", 8: "Heartbeat"}

AMQP_CLASSES = {10: "Connection", 20: "Channel", 40: "Exchange", 50: "Queue", 60: "Basic", 90: "Tx"}

#: (class id, method id) -> method suffix after the class name
AMQP_METHODS: dict[tuple[int, int], str] = {
    **{(10, m): n for m, n in ((10, "Start"), (11, "Start-ok"), (20, "Secure"), (21, "Secure-ok"),
                               (30, "Tune"), (31, "Tune-ok"), (40, "Open"), (41, "Open-ok"),
                               (50, "Close"), (51, "Close-ok"))},
    **{(20, m): n for m, n in ((10, "Open"), (11, "Open-ok"), (20, "Flow"), (21, "Flow-ok"),
                               (40, "Close"), (41, "Close-ok"))},
    **{(40, m): n for m, n in ((10, "Declare"), (11, "Declare-ok"), (20, "Delete"), (21, "Delete-ok"))},
    **{(50, m): n for m, n in ((10, "Declare"), (11, "Declare-ok"), (20, "Bind"), (21, "Bind-ok"),
                               (30, "Purge"), (31, "Purge-ok"), (40, "Delete"), (41, "Delete-ok"),
                               (50, "Unbind"), (51, "Unbind-ok"))},
    **{(60, m): n for m, n in ((10, "Qos"), (11, "Qos-ok"), (20, "Consume"), (21, "Consume-ok"),
                               (30, "Cancel"), (31, "Cancel-ok"), (40, "Publish"), (50, "Return"),
                               (60, "Deliver"), (70, "Get"), (71, "Get-ok"), (72, "Get-empty"),
                               (80, "Ack"), (90, "Reject"), (100, "Recover-async"), (110, "Recover"),
                               (111, "Recover-ok"))},
    **{(90, m): n for m, n in ((10, "Select"), (11, "Select-ok"), (20, "Commit"), (21, "Commit-ok"),
                               (30, "Rollback"), (31, "Rollback-ok"))},
}


def protocol_name(code: int) -> str:
    return PROTOCOLS.get(code, f"Invalid ({code})")


def amqp_method_name(class_id: int, method_id: int) -> str:
    cls = AMQP_CLASSES.get(class_id)
    if cls is None:
        return "Unknown"
    method = AMQP_METHODS.get((class_id, method_id))
    if method is None:
        # Method 0 names the class itself; an unknown method of a known class does the same.
        return cls
    return cls + method


def _table_name(table: dict[int, str]) -> Callable[[int], str]:
    return lambda code: table.get(code, str(code))


def _unary(fn: Callable[[int], str]):
    def impl(ctx: EvalContext, args: Sequence[Value], sig: Signature, n: int) -> Value:
        return unique_map(args[0], fn, pa.string())

    return impl


def _amqp_method(ctx: EvalContext, args: Sequence[Value], sig: Signature, n: int) -> Value:
    cls, method = args
    if is_scalar(cls) and not is_scalar(method):
        c = py(cls)
        return unique_map(method, lambda m: amqp_method_name(c, m), pa.string())
    return rowwise(amqp_method_name, args, n, pa.string())


def register(reg: Registry) -> None:
    one = (Signature((INT64,), STRING),)
    reg.add(ScalarFunc("protocol_name", one, _unary(protocol_name), doc="conn_stats.protocol name"))
    reg.add(ScalarFunc("mysql_command_name", one, _unary(_table_name(MYSQL_COMMANDS)),
                       doc="MySQL command byte name"))
    reg.add(ScalarFunc("cql_opcode_name", one, _unary(_table_name(CQL_OPCODES)), doc="CQL opcode name"))
    reg.add(ScalarFunc("kafka_api_key_name", one, _unary(_table_name(KAFKA_API_KEYS)),
                       doc="Kafka API key name"))
    reg.add(ScalarFunc("mux_frame_type_name", one, _unary(_table_name(MUX_FRAME_TYPES)),
                       doc="Finagle Mux frame type name"))
    reg.add(ScalarFunc("amqp_frame_type_name", one, _unary(_table_name(AMQP_FRAME_TYPES)),
                       doc="AMQP frame type name"))
    reg.add(ScalarFunc("amqp_method_name", (Signature((INT64, INT64), STRING),), _amqp_method,
                       doc="AMQP class+method name, e.g. (60, 40) -> BasicPublish"))
