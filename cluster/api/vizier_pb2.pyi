from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ArgValue(_message.Message):
    __slots__ = ("name", "value")
    NAME_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    name: str
    value: str
    def __init__(self, name: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...

class FuncToExecute(_message.Message):
    __slots__ = ("func_name", "arg_values", "output_table_prefix")
    FUNC_NAME_FIELD_NUMBER: _ClassVar[int]
    ARG_VALUES_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_TABLE_PREFIX_FIELD_NUMBER: _ClassVar[int]
    func_name: str
    arg_values: _containers.RepeatedCompositeFieldContainer[ArgValue]
    output_table_prefix: str
    def __init__(self, func_name: _Optional[str] = ..., arg_values: _Optional[_Iterable[_Union[ArgValue, _Mapping]]] = ..., output_table_prefix: _Optional[str] = ...) -> None: ...

class ExecuteScriptRequest(_message.Message):
    __slots__ = ("query_str", "exec_funcs", "client_public_key", "script_name", "timeout_ms", "sealed_request", "vizier_key_id")
    QUERY_STR_FIELD_NUMBER: _ClassVar[int]
    EXEC_FUNCS_FIELD_NUMBER: _ClassVar[int]
    CLIENT_PUBLIC_KEY_FIELD_NUMBER: _ClassVar[int]
    SCRIPT_NAME_FIELD_NUMBER: _ClassVar[int]
    TIMEOUT_MS_FIELD_NUMBER: _ClassVar[int]
    SEALED_REQUEST_FIELD_NUMBER: _ClassVar[int]
    VIZIER_KEY_ID_FIELD_NUMBER: _ClassVar[int]
    query_str: str
    exec_funcs: _containers.RepeatedCompositeFieldContainer[FuncToExecute]
    client_public_key: bytes
    script_name: str
    timeout_ms: int
    sealed_request: bytes
    vizier_key_id: bytes
    def __init__(self, query_str: _Optional[str] = ..., exec_funcs: _Optional[_Iterable[_Union[FuncToExecute, _Mapping]]] = ..., client_public_key: _Optional[bytes] = ..., script_name: _Optional[str] = ..., timeout_ms: _Optional[int] = ..., sealed_request: _Optional[bytes] = ..., vizier_key_id: _Optional[bytes] = ...) -> None: ...

class CompilerError(_message.Message):
    __slots__ = ("line", "column", "message")
    LINE_FIELD_NUMBER: _ClassVar[int]
    COLUMN_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    line: int
    column: int
    message: str
    def __init__(self, line: _Optional[int] = ..., column: _Optional[int] = ..., message: _Optional[str] = ...) -> None: ...

class QueryError(_message.Message):
    __slots__ = ("kind", "message", "compiler_errors")
    class Kind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        UNKNOWN: _ClassVar[QueryError.Kind]
        COMPILE: _ClassVar[QueryError.Kind]
        RUNTIME: _ClassVar[QueryError.Kind]
        DEADLINE: _ClassVar[QueryError.Kind]
        RESOURCE: _ClassVar[QueryError.Kind]
    UNKNOWN: QueryError.Kind
    COMPILE: QueryError.Kind
    RUNTIME: QueryError.Kind
    DEADLINE: QueryError.Kind
    RESOURCE: QueryError.Kind
    KIND_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    COMPILER_ERRORS_FIELD_NUMBER: _ClassVar[int]
    kind: QueryError.Kind
    message: str
    compiler_errors: _containers.RepeatedCompositeFieldContainer[CompilerError]
    def __init__(self, kind: _Optional[_Union[QueryError.Kind, str]] = ..., message: _Optional[str] = ..., compiler_errors: _Optional[_Iterable[_Union[CompilerError, _Mapping]]] = ...) -> None: ...

class EncryptedBatch(_message.Message):
    __slots__ = ("table_name", "sealed_ipc", "num_rows", "eos")
    TABLE_NAME_FIELD_NUMBER: _ClassVar[int]
    SEALED_IPC_FIELD_NUMBER: _ClassVar[int]
    NUM_ROWS_FIELD_NUMBER: _ClassVar[int]
    EOS_FIELD_NUMBER: _ClassVar[int]
    table_name: str
    sealed_ipc: bytes
    num_rows: int
    eos: bool
    def __init__(self, table_name: _Optional[str] = ..., sealed_ipc: _Optional[bytes] = ..., num_rows: _Optional[int] = ..., eos: _Optional[bool] = ...) -> None: ...

class QueryStats(_message.Message):
    __slots__ = ("compile_ns", "exec_ns", "rows_out", "warnings")
    COMPILE_NS_FIELD_NUMBER: _ClassVar[int]
    EXEC_NS_FIELD_NUMBER: _ClassVar[int]
    ROWS_OUT_FIELD_NUMBER: _ClassVar[int]
    WARNINGS_FIELD_NUMBER: _ClassVar[int]
    compile_ns: int
    exec_ns: int
    rows_out: int
    warnings: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, compile_ns: _Optional[int] = ..., exec_ns: _Optional[int] = ..., rows_out: _Optional[int] = ..., warnings: _Optional[_Iterable[str]] = ...) -> None: ...

class ExecuteScriptResponse(_message.Message):
    __slots__ = ("query_id", "batch", "error", "stats")
    QUERY_ID_FIELD_NUMBER: _ClassVar[int]
    BATCH_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    STATS_FIELD_NUMBER: _ClassVar[int]
    query_id: str
    batch: EncryptedBatch
    error: QueryError
    stats: QueryStats
    def __init__(self, query_id: _Optional[str] = ..., batch: _Optional[_Union[EncryptedBatch, _Mapping]] = ..., error: _Optional[_Union[QueryError, _Mapping]] = ..., stats: _Optional[_Union[QueryStats, _Mapping]] = ...) -> None: ...

class StatusRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class TableStatus(_message.Message):
    __slots__ = ("name", "rows", "bytes", "max_bytes", "min_time_ns", "max_time_ns", "rows_evicted")
    NAME_FIELD_NUMBER: _ClassVar[int]
    ROWS_FIELD_NUMBER: _ClassVar[int]
    BYTES_FIELD_NUMBER: _ClassVar[int]
    MAX_BYTES_FIELD_NUMBER: _ClassVar[int]
    MIN_TIME_NS_FIELD_NUMBER: _ClassVar[int]
    MAX_TIME_NS_FIELD_NUMBER: _ClassVar[int]
    ROWS_EVICTED_FIELD_NUMBER: _ClassVar[int]
    name: str
    rows: int
    bytes: int
    max_bytes: int
    min_time_ns: int
    max_time_ns: int
    rows_evicted: int
    def __init__(self, name: _Optional[str] = ..., rows: _Optional[int] = ..., bytes: _Optional[int] = ..., max_bytes: _Optional[int] = ..., min_time_ns: _Optional[int] = ..., max_time_ns: _Optional[int] = ..., rows_evicted: _Optional[int] = ...) -> None: ...

class AgentStatus(_message.Message):
    __slots__ = ("agent_id", "asid", "hostname", "state", "last_heartbeat_ns", "probes", "kernel_headers", "events_seen", "events_lost", "parse_errors", "tables", "error", "conns_active", "conns_reset")
    AGENT_ID_FIELD_NUMBER: _ClassVar[int]
    ASID_FIELD_NUMBER: _ClassVar[int]
    HOSTNAME_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    LAST_HEARTBEAT_NS_FIELD_NUMBER: _ClassVar[int]
    PROBES_FIELD_NUMBER: _ClassVar[int]
    KERNEL_HEADERS_FIELD_NUMBER: _ClassVar[int]
    EVENTS_SEEN_FIELD_NUMBER: _ClassVar[int]
    EVENTS_LOST_FIELD_NUMBER: _ClassVar[int]
    PARSE_ERRORS_FIELD_NUMBER: _ClassVar[int]
    TABLES_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    CONNS_ACTIVE_FIELD_NUMBER: _ClassVar[int]
    CONNS_RESET_FIELD_NUMBER: _ClassVar[int]
    agent_id: str
    asid: int
    hostname: str
    state: str
    last_heartbeat_ns: int
    probes: _containers.RepeatedScalarFieldContainer[str]
    kernel_headers: str
    events_seen: int
    events_lost: int
    parse_errors: int
    tables: _containers.RepeatedCompositeFieldContainer[TableStatus]
    error: str
    conns_active: int
    conns_reset: int
    def __init__(self, agent_id: _Optional[str] = ..., asid: _Optional[int] = ..., hostname: _Optional[str] = ..., state: _Optional[str] = ..., last_heartbeat_ns: _Optional[int] = ..., probes: _Optional[_Iterable[str]] = ..., kernel_headers: _Optional[str] = ..., events_seen: _Optional[int] = ..., events_lost: _Optional[int] = ..., parse_errors: _Optional[int] = ..., tables: _Optional[_Iterable[_Union[TableStatus, _Mapping]]] = ..., error: _Optional[str] = ..., conns_active: _Optional[int] = ..., conns_reset: _Optional[int] = ...) -> None: ...

class StatusResponse(_message.Message):
    __slots__ = ("agents", "vizier_version")
    AGENTS_FIELD_NUMBER: _ClassVar[int]
    VIZIER_VERSION_FIELD_NUMBER: _ClassVar[int]
    agents: _containers.RepeatedCompositeFieldContainer[AgentStatus]
    vizier_version: str
    def __init__(self, agents: _Optional[_Iterable[_Union[AgentStatus, _Mapping]]] = ..., vizier_version: _Optional[str] = ...) -> None: ...

class RecordTablesRequest(_message.Message):
    __slots__ = ("client_public_key", "tables")
    CLIENT_PUBLIC_KEY_FIELD_NUMBER: _ClassVar[int]
    TABLES_FIELD_NUMBER: _ClassVar[int]
    client_public_key: bytes
    tables: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, client_public_key: _Optional[bytes] = ..., tables: _Optional[_Iterable[str]] = ...) -> None: ...

class RecordingInfo(_message.Message):
    __slots__ = ("agent_id", "asid", "hostname", "vizier_version", "end_time_ns", "state")
    AGENT_ID_FIELD_NUMBER: _ClassVar[int]
    ASID_FIELD_NUMBER: _ClassVar[int]
    HOSTNAME_FIELD_NUMBER: _ClassVar[int]
    VIZIER_VERSION_FIELD_NUMBER: _ClassVar[int]
    END_TIME_NS_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    agent_id: str
    asid: int
    hostname: str
    vizier_version: str
    end_time_ns: int
    state: str
    def __init__(self, agent_id: _Optional[str] = ..., asid: _Optional[int] = ..., hostname: _Optional[str] = ..., vizier_version: _Optional[str] = ..., end_time_ns: _Optional[int] = ..., state: _Optional[str] = ...) -> None: ...

class RecordedPart(_message.Message):
    __slots__ = ("agent_id", "table_name", "sealed_ipc", "num_rows", "eos", "metadata")
    AGENT_ID_FIELD_NUMBER: _ClassVar[int]
    TABLE_NAME_FIELD_NUMBER: _ClassVar[int]
    SEALED_IPC_FIELD_NUMBER: _ClassVar[int]
    NUM_ROWS_FIELD_NUMBER: _ClassVar[int]
    EOS_FIELD_NUMBER: _ClassVar[int]
    METADATA_FIELD_NUMBER: _ClassVar[int]
    agent_id: str
    table_name: str
    sealed_ipc: bytes
    num_rows: int
    eos: bool
    metadata: bool
    def __init__(self, agent_id: _Optional[str] = ..., table_name: _Optional[str] = ..., sealed_ipc: _Optional[bytes] = ..., num_rows: _Optional[int] = ..., eos: _Optional[bool] = ..., metadata: _Optional[bool] = ...) -> None: ...

class RecordTablesResponse(_message.Message):
    __slots__ = ("info", "part")
    INFO_FIELD_NUMBER: _ClassVar[int]
    PART_FIELD_NUMBER: _ClassVar[int]
    info: RecordingInfo
    part: RecordedPart
    def __init__(self, info: _Optional[_Union[RecordingInfo, _Mapping]] = ..., part: _Optional[_Union[RecordedPart, _Mapping]] = ...) -> None: ...
