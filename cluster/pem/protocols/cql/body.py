"""CQL message bodies -> the text Pixie writes to cql_events ``req_body`` / ``resp_body``.

Notations follow native_protocol_v4.spec §3 ([short], [string], [long string], [bytes], ...). The
renderings are Pixie's (its cass stitcher):

* STARTUP: the options as a JSON object, keys sorted; REGISTER: the event types as a JSON array;
  OPTIONS and READY: empty; AUTHENTICATE: the authenticator's class name;
* QUERY: the query text, then, when values are bound, a newline and a JSON array of each value's
  bytes in upper-case hex (a null or unset value is ""); PREPARE: the query text; EXECUTE: the
  values array -- preceded by the prepared query's text and a newline when this connection saw the
  PREPARE answered (Pixie shows only the values); BATCH: ``[{"query": text} | {"id": hex}, ...]``;
* ERROR: ``[code] message`` (code in decimal); SUPPORTED: a JSON object of lists, keys sorted;
  AUTH_CHALLENGE / AUTH_SUCCESS: the token in hex;
* RESULT: ``Response type = VOID``, ``Response type = ROWS\\nNumber of columns = N\\n["col", ...]\\n
  Number of rows = M``, ``Response type = SET_KEYSPACE\\nKeyspace = ks``, ``Response type =
  PREPARED``, ``Response type = SCHEMA_CHANGE``;
* EVENT: ``TOPOLOGY_CHANGE NEW_NODE 10.0.0.1`` / ``STATUS_CHANGE UP 10.0.0.1`` /
  ``SCHEMA_CHANGE CREATED keyspace=ks name=tbl``.

AUTH_RESPONSE differs on purpose: Pixie writes the token as sent, which for the usual SASL PLAIN
authenticator is the user's password; here it is ``<N bytes redacted>``. A body that does not decode
raises :class:`BadBody`; the stitcher counts it as a parse error.
"""

from __future__ import annotations

import ipaddress
import json
from dataclasses import dataclass

from cluster.pem.protocols.cql import frames as f

dumps = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), sort_keys=True).encode
_dumps_list = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode

# Query flags (v4 §4.1.4; v5 widens them to an int).
_VALUES, _NAMES_FOR_VALUES = 0x01, 0x40
# Rows metadata flags (v4 §4.2.5.2, v5 adds METADATA_CHANGED).
_GLOBAL_TABLES_SPEC, _HAS_MORE_PAGES, _NO_METADATA, _METADATA_CHANGED = 0x01, 0x02, 0x04, 0x08
_MAX_TYPE_DEPTH = 32
_RESULT_VOID, _RESULT_ROWS, _RESULT_KEYSPACE, _RESULT_PREPARED, _RESULT_SCHEMA = 1, 2, 3, 4, 5


class BadBody(ValueError):
    """The body does not decode as its opcode says it should."""


@dataclass(slots=True)
class Rendered:
    text: str
    prepared_id: bytes | None = None  # EXECUTE: the statement run; RESULT PREPARED: the id given
    query: str = ""  # PREPARE: the statement's text


class _Reader:
    __slots__ = ("buf", "end", "pos")

    def __init__(self, buf: bytes, pos: int = 0) -> None:
        self.buf = buf
        self.pos = pos
        self.end = len(buf)

    def take(self, n: int) -> bytes:
        if n < 0 or self.pos + n > self.end:
            raise BadBody(f"field of {n} bytes at {self.pos} overruns the {self.end}-byte body")
        out = self.buf[self.pos : self.pos + n]
        self.pos += n
        return out

    def byte(self) -> int:
        return self.take(1)[0]

    def short(self) -> int:
        return int.from_bytes(self.take(2), "big")

    def int_(self) -> int:
        return int.from_bytes(self.take(4), "big", signed=True)

    def string(self) -> str:
        return self.take(self.short()).decode("utf-8", "replace")

    def long_string(self) -> str:
        return self.take(self.int_()).decode("utf-8", "replace")

    def bytes_(self) -> bytes | None:
        n = self.int_()
        if n < 0:  # -1 null, -2 "not set" (v4)
            return None
        return self.take(n)

    def short_bytes(self) -> bytes:
        return self.take(self.short())

    def string_list(self) -> list[str]:
        return [self.string() for _ in range(self.short())]

    def string_map(self) -> dict[str, str]:
        return {self.string(): self.string() for _ in range(self.short())}

    def string_multimap(self) -> dict[str, list[str]]:
        return {self.string(): self.string_list() for _ in range(self.short())}

    def bytes_map(self) -> None:
        for _ in range(self.short()):
            self.string()
            self.bytes_()

    def inet(self) -> str:
        n = self.byte()
        if n not in (4, 16):
            raise BadBody(f"inet address of {n} bytes")
        addr = str(ipaddress.ip_address(self.take(n)))
        self.int_()  # port
        return addr

    def option(self, depth: int = 0) -> None:
        """Skip a column type ([option], v4 §4.2.5.2), nested collections and UDTs included."""
        if depth > _MAX_TYPE_DEPTH:
            raise BadBody("column type nested too deep")
        kind = self.short()
        if kind == 0x0000:  # custom: a Java class name
            self.string()
        elif kind in (0x0020, 0x0022):  # list, set
            self.option(depth + 1)
        elif kind == 0x0021:  # map
            self.option(depth + 1)
            self.option(depth + 1)
        elif kind == 0x0030:  # UDT
            self.string()
            self.string()
            for _ in range(self.short()):
                self.string()
                self.option(depth + 1)
        elif kind == 0x0031:  # tuple
            for _ in range(self.short()):
                self.option(depth + 1)
        elif kind > 0x0031:
            raise BadBody(f"unknown column type 0x{kind:04x}")


def hex_upper(value: bytes | None) -> str:
    return value.hex().upper() if value else ""


def _skip_prefix(frame: f.CqlFrame, r: _Reader, response: bool) -> None:
    """Tracing id, warnings and custom payload come before the message proper (v4 §2.2)."""
    if response and frame.flags & f.FLAG_TRACING:
        r.take(16)
    if response and frame.flags & f.FLAG_WARNING:
        r.string_list()
    if frame.flags & f.FLAG_CUSTOM_PAYLOAD:
        r.bytes_map()


def _values(r: _Reader, version: int) -> list[str]:
    """The bound values of <query_parameters> (v4 §4.1.4), as hex; the rest is not shown."""
    r.short()  # consistency
    flags = r.int_() if version >= 5 else r.byte()
    if not flags & _VALUES:
        return []
    out = []
    for _ in range(r.short()):
        if flags & _NAMES_FOR_VALUES:
            r.string()
        out.append(hex_upper(r.bytes_()))
    return out


def render_request(frame: f.CqlFrame, prepared: dict[bytes, str] | None = None) -> Rendered:
    """Pixie's req_body for a request frame (see the module docstring)."""
    if frame.compressed:
        return Rendered("")
    r = _Reader(frame.body)
    _skip_prefix(frame, r, False)
    op = frame.opcode
    if op == f.STARTUP:
        return Rendered(dumps(r.string_map()))
    if op == f.OPTIONS:
        return Rendered("")
    if op == f.REGISTER:
        return Rendered(_dumps_list(r.string_list()))
    if op == f.AUTH_RESPONSE:
        token = r.bytes_()
        return Rendered(f"<{len(token or b'')} bytes redacted>")
    if op == f.QUERY:
        query = r.long_string()
        values = _values(r, frame.version)
        return Rendered(f"{query}\n{_dumps_list(values)}" if values else query)
    if op == f.PREPARE:
        query = r.long_string()
        return Rendered(query, query=query)
    if op == f.EXECUTE:
        stmt = r.short_bytes()
        if frame.version >= 5:
            r.short_bytes()  # result metadata id
        values = _dumps_list(_values(r, frame.version))
        query = (prepared or {}).get(stmt)
        return Rendered(values if query is None else f"{query}\n{values}", prepared_id=stmt)
    if op == f.BATCH:
        r.byte()  # logged / unlogged / counter
        items = []
        for _ in range(r.short()):
            kind = r.byte()
            if kind == 0:
                items.append({"query": r.long_string()})
            elif kind == 1:
                items.append({"id": hex_upper(r.short_bytes())})
            else:
                raise BadBody(f"batch statement kind {kind}")
            for _ in range(r.short()):
                r.bytes_()
        return Rendered(_dumps_list(items))
    raise BadBody(f"opcode 0x{op:02x} is not a request")


def render_response(frame: f.CqlFrame) -> Rendered:
    """Pixie's resp_body for a response frame (see the module docstring)."""
    if frame.compressed:
        return Rendered("")
    r = _Reader(frame.body)
    _skip_prefix(frame, r, True)
    op = frame.opcode
    if op == f.ERROR:
        code = r.int_()
        return Rendered(f"[{code}] {r.string()}")
    if op == f.READY:
        return Rendered("")
    if op == f.SUPPORTED:
        return Rendered(dumps(r.string_multimap()))
    if op == f.AUTHENTICATE:
        return Rendered(r.string())
    if op in (f.AUTH_CHALLENGE, f.AUTH_SUCCESS):
        return Rendered(hex_upper(r.bytes_()))
    if op == f.RESULT:
        return _result(r, frame.version)
    if op == f.EVENT:
        return Rendered(_event(r))
    raise BadBody(f"opcode 0x{op:02x} is not a response")


def _result(r: _Reader, version: int) -> Rendered:
    kind = r.int_()
    if kind == _RESULT_VOID:
        return Rendered("Response type = VOID")
    if kind == _RESULT_ROWS:
        names, columns = _rows_metadata(r)
        rows = r.int_()
        return Rendered(
            f"Response type = ROWS\nNumber of columns = {columns}\n{_dumps_list(names)}\nNumber of rows = {rows}"
        )
    if kind == _RESULT_KEYSPACE:
        return Rendered(f"Response type = SET_KEYSPACE\nKeyspace = {r.string()}")
    if kind == _RESULT_PREPARED:
        return Rendered("Response type = PREPARED", prepared_id=r.short_bytes())
    if kind == _RESULT_SCHEMA:
        return Rendered("Response type = SCHEMA_CHANGE")
    raise BadBody(f"result kind {kind}")


def _rows_metadata(r: _Reader) -> tuple[list[str], int]:
    flags = r.int_()
    columns = r.int_()
    if columns < 0:
        raise BadBody(f"{columns} columns")
    if flags & _HAS_MORE_PAGES:
        r.bytes_()
    if flags & _METADATA_CHANGED:
        r.short_bytes()
    if flags & _NO_METADATA:
        return [], columns
    if flags & _GLOBAL_TABLES_SPEC:
        r.string()
        r.string()
    names = []
    for _ in range(columns):
        if not flags & _GLOBAL_TABLES_SPEC:
            r.string()
            r.string()
        names.append(r.string())
        r.option()
    return names, columns


def _event(r: _Reader) -> str:
    kind = r.string()
    if kind in ("TOPOLOGY_CHANGE", "STATUS_CHANGE"):
        change = r.string()
        return f"{kind} {change} {r.inet()}"
    if kind == "SCHEMA_CHANGE":
        change = r.string()
        target = r.string()
        keyspace = r.string()
        name = "" if target == "KEYSPACE" else r.string()
        return f"{kind} {change} keyspace={keyspace} name={name}"
    raise BadBody(f"event type {kind!r}")
