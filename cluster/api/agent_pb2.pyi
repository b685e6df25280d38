from cluster.api import vizier_pb2 as _vizier_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class RegisterRequest(_message.Message):
    __slots__ = ("agent_id", "address", "hostname", "asid", "status", "create_time_ns", "schemas", "kelvin")
    AGENT_ID_FIELD_NUMBER: _ClassVar[int]
    ADDRESS_FIELD_NUMBER: _ClassVar[int]
    HOSTNAME_FIELD_NUMBER: _ClassVar[int]
    ASID_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_NS_FIELD_NUMBER: _ClassVar[int]
    SCHEMAS_FIELD_NUMBER: _ClassVar[int]
    KELVIN_FIELD_NUMBER: _ClassVar[int]
    agent_id: str
    address: str
    hostname: str
    asid: int
    status: _vizier_pb2.AgentStatus
    create_time_ns: int
    schemas: _containers.RepeatedCompositeFieldContainer[TableSchema]
    kelvin: bool
    def __init__(self, agent_id: _Optional[str] = ..., address: _Optional[str] = ..., hostname: _Optional[str] = ..., asid: _Optional[int] = ..., status: _Optional[_Union[_vizier_pb2.AgentStatus, _Mapping]] = ..., create_time_ns: _Optional[int] = ..., schemas: _Optional[_Iterable[_Union[TableSchema, _Mapping]]] = ..., kelvin: _Optional[bool] = ...) -> None: ...

class TableSchema(_message.Message):
    __slots__ = ("name", "arrow_schema")
    NAME_FIELD_NUMBER: _ClassVar[int]
    ARROW_SCHEMA_FIELD_NUMBER: _ClassVar[int]
    name: str
    arrow_schema: bytes
    def __init__(self, name: _Optional[str] = ..., arrow_schema: _Optional[bytes] = ...) -> None: ...

class RegisterResponse(_message.Message):
    __slots__ = ("asid", "heartbeat_interval_s")
    ASID_FIELD_NUMBER: _ClassVar[int]
    HEARTBEAT_INTERVAL_S_FIELD_NUMBER: _ClassVar[int]
    asid: int
    heartbeat_interval_s: float
    def __init__(self, asid: _Optional[int] = ..., heartbeat_interval_s: _Optional[float] = ...) -> None: ...

class HeartbeatRequest(_message.Message):
    __slots__ = ("agent_id", "seq", "status", "schemas")
    AGENT_ID_FIELD_NUMBER: _ClassVar[int]
    SEQ_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    SCHEMAS_FIELD_NUMBER: _ClassVar[int]
    agent_id: str
    seq: int
    status: _vizier_pb2.AgentStatus
    schemas: _containers.RepeatedCompositeFieldContainer[TableSchema]
    def __init__(self, agent_id: _Optional[str] = ..., seq: _Optional[int] = ..., status: _Optional[_Union[_vizier_pb2.AgentStatus, _Mapping]] = ..., schemas: _Optional[_Iterable[_Union[TableSchema, _Mapping]]] = ...) -> None: ...

class HeartbeatResponse(_message.Message):
    __slots__ = ("known",)
    KNOWN_FIELD_NUMBER: _ClassVar[int]
    known: bool
    def __init__(self, known: _Optional[bool] = ...) -> None: ...

class FragmentRequest(_message.Message):
    __slots__ = ("query_id", "query_str", "exec_funcs", "now_ns", "plan_digest", "timeout_ms", "memory_budget_bytes", "redaction_mode")
    QUERY_ID_FIELD_NUMBER: _ClassVar[int]
    QUERY_STR_FIELD_NUMBER: _ClassVar[int]
    EXEC_FUNCS_FIELD_NUMBER: _ClassVar[int]
    NOW_NS_FIELD_NUMBER: _ClassVar[int]
    PLAN_DIGEST_FIELD_NUMBER: _ClassVar[int]
    TIMEOUT_MS_FIELD_NUMBER: _ClassVar[int]
    MEMORY_BUDGET_BYTES_FIELD_NUMBER: _ClassVar[int]
    REDACTION_MODE_FIELD_NUMBER: _ClassVar[int]
    query_id: str
    query_str: str
    exec_funcs: _containers.RepeatedCompositeFieldContainer[_vizier_pb2.FuncToExecute]
    now_ns: int
    plan_digest: str
    timeout_ms: int
    memory_budget_bytes: int
    redaction_mode: str
    def __init__(self, query_id: _Optional[str] = ..., query_str: _Optional[str] = ..., exec_funcs: _Optional[_Iterable[_Union[_vizier_pb2.FuncToExecute, _Mapping]]] = ..., now_ns: _Optional[int] = ..., plan_digest: _Optional[str] = ..., timeout_ms: _Optional[int] = ..., memory_budget_bytes: _Optional[int] = ..., redaction_mode: _Optional[str] = ...) -> None: ...

class FragmentResult(_message.Message):
    __slots__ = ("part", "error", "done")
    PART_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    DONE_FIELD_NUMBER: _ClassVar[int]
    part: StreamPart
    error: _vizier_pb2.QueryError
    done: FragmentDone
    def __init__(self, part: _Optional[_Union[StreamPart, _Mapping]] = ..., error: _Optional[_Union[_vizier_pb2.QueryError, _Mapping]] = ..., done: _Optional[_Union[FragmentDone, _Mapping]] = ...) -> None: ...

class StreamPart(_message.Message):
    __slots__ = ("stream", "ipc", "num_rows", "metadata", "ip_metadata")
    STREAM_FIELD_NUMBER: _ClassVar[int]
    IPC_FIELD_NUMBER: _ClassVar[int]
    NUM_ROWS_FIELD_NUMBER: _ClassVar[int]
    METADATA_FIELD_NUMBER: _ClassVar[int]
    IP_METADATA_FIELD_NUMBER: _ClassVar[int]
    stream: str
    ipc: bytes
    num_rows: int
    metadata: bool
    ip_metadata: bool
    def __init__(self, stream: _Optional[str] = ..., ipc: _Optional[bytes] = ..., num_rows: _Optional[int] = ..., metadata: _Optional[bool] = ..., ip_metadata: _Optional[bool] = ...) -> None: ...

class FragmentDone(_message.Message):
    __slots__ = ("exec_ns", "rows", "bytes")
    EXEC_NS_FIELD_NUMBER: _ClassVar[int]
    ROWS_FIELD_NUMBER: _ClassVar[int]
    BYTES_FIELD_NUMBER: _ClassVar[int]
    exec_ns: int
    rows: int
    bytes: int
    def __init__(self, exec_ns: _Optional[int] = ..., rows: _Optional[int] = ..., bytes: _Optional[int] = ...) -> None: ...

class AgentTarget(_message.Message):
    __slots__ = ("agent_id", "hostname", "address")
    AGENT_ID_FIELD_NUMBER: _ClassVar[int]
    HOSTNAME_FIELD_NUMBER: _ClassVar[int]
    ADDRESS_FIELD_NUMBER: _ClassVar[int]
    agent_id: str
    hostname: str
    address: str
    def __init__(self, agent_id: _Optional[str] = ..., hostname: _Optional[str] = ..., address: _Optional[str] = ...) -> None: ...

class KelvinRequest(_message.Message):
    __slots__ = ("fragment", "agents", "schemas")
    FRAGMENT_FIELD_NUMBER: _ClassVar[int]
    AGENTS_FIELD_NUMBER: _ClassVar[int]
    SCHEMAS_FIELD_NUMBER: _ClassVar[int]
    fragment: FragmentRequest
    agents: _containers.RepeatedCompositeFieldContainer[AgentTarget]
    schemas: _containers.RepeatedCompositeFieldContainer[TableSchema]
    def __init__(self, fragment: _Optional[_Union[FragmentRequest, _Mapping]] = ..., agents: _Optional[_Iterable[_Union[AgentTarget, _Mapping]]] = ..., schemas: _Optional[_Iterable[_Union[TableSchema, _Mapping]]] = ...) -> None: ...

class OutputPart(_message.Message):
    __slots__ = ("table_name", "ipc", "num_rows")
    TABLE_NAME_FIELD_NUMBER: _ClassVar[int]
    IPC_FIELD_NUMBER: _ClassVar[int]
    NUM_ROWS_FIELD_NUMBER: _ClassVar[int]
    table_name: str
    ipc: bytes
    num_rows: int
    def __init__(self, table_name: _Optional[str] = ..., ipc: _Optional[bytes] = ..., num_rows: _Optional[int] = ...) -> None: ...

class KelvinDone(_message.Message):
    __slots__ = ("warnings", "exec_ns")
    WARNINGS_FIELD_NUMBER: _ClassVar[int]
    EXEC_NS_FIELD_NUMBER: _ClassVar[int]
    warnings: _containers.RepeatedScalarFieldContainer[str]
    exec_ns: int
    def __init__(self, warnings: _Optional[_Iterable[str]] = ..., exec_ns: _Optional[int] = ...) -> None: ...

class KelvinResult(_message.Message):
    __slots__ = ("part", "error", "done")
    PART_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    DONE_FIELD_NUMBER: _ClassVar[int]
    part: OutputPart
    error: _vizier_pb2.QueryError
    done: KelvinDone
    def __init__(self, part: _Optional[_Union[OutputPart, _Mapping]] = ..., error: _Optional[_Union[_vizier_pb2.QueryError, _Mapping]] = ..., done: _Optional[_Union[KelvinDone, _Mapping]] = ...) -> None: ...
