"""PostgreSQL v3 wire framing: bytes of one direction -> tagged messages, plus Pixie's renderings.

Every message after start-up is ``tag:1 | length:4 (big-endian, counts itself) | payload``. The
frontend's start-up packets (StartupMessage, SSLRequest, GSSENCRequest, CancelRequest) have no tag;
their first byte is the length's high byte, 0, which no regular tag is, so they are recognised and
skipped wherever they appear. The backend answers an SSLRequest with one byte, ``N`` (go on in
clear text) or ``S`` (TLS follows: the rest is opaque and skipped).

The parser waits while a message is incomplete and never raises: on an impossible tag or length it
counts one error and searches for the next plausible message start.
"""

from __future__ import annotations

import re
import struct
from dataclasses import dataclass

from cluster.pem.data_stream import DataStream
from cluster.pem.protocols.stream_parser import StreamParser

MAX_MSG = 1 << 24  # longer messages are treated as garbage (the stream cap is smaller anyway)
REQUEST_TAGS = b"QPBDESCHFdcfpX"
RESPONSE_TAGS = b"RKSZTDCEI123tnsNAGHWdcVv"
_FIND = {
    True: re.compile(b"[" + re.escape(REQUEST_TAGS) + b"\x00]"),
    False: re.compile(b"[" + re.escape(RESPONSE_TAGS) + b"]"),
}
_STARTUP_CODES = (196608, 80877103, 80877104, 80877102)  # v3.0, SSL, GSSENC, cancel
SSL_REQUEST = 80877103
STARTUP = "\x00"  # the tag given to a StartupMessage, which has none on the wire
GSSENC_REQUEST = 80877104
_U32 = struct.Struct(">I")
_I16 = struct.Struct(">h")
_I32 = struct.Struct(">i")

REQ_NAMES = {
    "d": "Copy Data", "c": "Copy Done", "Q": "Query", "f": "Copy Fail", "C": "Close", "B": "Bind",
    "p": "Password Message", "P": "Parse", "D": "Describe", "S": "Sync", "E": "Execute", "X": "Terminate",
}  # fmt: skip
ERR_FIELDS = {
    "S": "Severity", "V": "InternalSeverity", "C": "Code", "M": "Message", "D": "Detail", "H": "Hint",
    "P": "Position", "p": "InternalPosition", "q": "InternalQuery", "W": "Where", "s": "SchemaName",
    "t": "TableName", "c": "ColumnName", "d": "DataTypeName", "n": "ConstraitName", "F": "File",
    "L": "Line", "R": "Routine",
}  # fmt: skip


@dataclass(slots=True)
class PgMessage:
    tag: str
    ts_ns: int
    payload: bytes


class PgParser(StreamParser):
    """Incremental parser for one direction; kept in ``DataStream.state``."""

    __slots__ = ("_in_garbage", "is_request", "ssl_expected", "ssl_requested", "tunnel")

    def __init__(self, is_request: bool) -> None:
        self.is_request = is_request
        self.errors = 0
        self.tunnel = False  # TLS was accepted: nothing more can be read
        self.ssl_requested = False  # request side: an SSLRequest/GSSENCRequest was just sent
        self.ssl_expected = False  # response side: the next byte is the one-byte answer to it
        self._in_garbage = False

    def next_message(self, stream: DataStream) -> PgMessage | None:
        """Parse and consume the next complete message, or None if none is complete yet."""
        stream.needs_resync = False  # resynchronisation is by tag + length search below
        if self.tunnel:
            stream.consume(len(stream))
            return None
        buf, start = stream.view()
        end = len(buf)
        pos = start
        while pos < end:
            tag = buf[pos]
            if tag == 0 and self.is_request:
                if end - pos < 8:
                    break
                length, code = _U32.unpack_from(buf, pos)[0], _U32.unpack_from(buf, pos + 4)[0]
                if code in _STARTUP_CODES and 8 <= length <= 10000:
                    if end - pos < length:
                        break
                    if code in (SSL_REQUEST, GSSENC_REQUEST):
                        self.ssl_requested = True
                    ts = stream.ts_at(pos - start)
                    pos += length
                    if code == _STARTUP_CODES[0]:  # its answer (authentication .. ReadyForQuery) follows
                        stream.consume(pos - start)
                        return PgMessage(STARTUP, ts, b"")
                    continue
                pos = self._garbage(buf, pos + 1, end)
                continue
            if self.ssl_expected and tag in b"NSG":
                # The one-byte answer to an SSLRequest/GSSENCRequest.
                pos += 1
                self.ssl_expected = False
                if tag != 78:  # 'S'/'G': encryption follows
                    self.tunnel = True
                    stream.consume(end - start)
                    return None
                continue
            if end - pos < 5:
                if tag not in (REQUEST_TAGS if self.is_request else RESPONSE_TAGS):
                    pos = self._garbage(buf, pos + 1, end)
                    continue
                break
            length = _U32.unpack_from(buf, pos + 1)[0]
            if tag not in (REQUEST_TAGS if self.is_request else RESPONSE_TAGS) or length < 4 or length > MAX_MSG:
                pos = self._garbage(buf, pos + 1, end)
                continue
            if end - pos < length + 1:
                break
            msg = PgMessage(chr(tag), stream.ts_at(pos - start), buf[pos + 5 : pos + 1 + length])
            stream.consume(pos + 1 + length - start)
            self._in_garbage = False
            return msg
        stream.consume(pos - start)
        return None

    def _garbage(self, buf: bytes, pos: int, end: int) -> int:
        if not self._in_garbage:
            self.errors += 1
            self._in_garbage = True
        hit = _FIND[self.is_request].search(buf, pos, end)
        return end if hit is None else hit.start()


# ---- payload decoding (raise ValueError/struct.error on malformed payloads) -------------------


def cstring(payload: bytes, pos: int) -> tuple[str, int]:
    nul = payload.index(b"\x00", pos)
    return payload[pos:nul].decode("utf-8", "replace"), nul + 1


def query_text(payload: bytes) -> str:
    return payload.rstrip(b"\x00").decode("utf-8", "replace")


def parse_parse(payload: bytes) -> tuple[str, str, list[int]]:
    """Parse message -> (statement name, query, parameter type OIDs)."""
    name, pos = cstring(payload, 0)
    query, pos = cstring(payload, pos)
    (n,) = _I16.unpack_from(payload, pos)
    oids = [_U32.unpack_from(payload, pos + 2 + 4 * i)[0] for i in range(n)]
    return name, query, oids


@dataclass(slots=True)
class Bind:
    portal: str
    statement: str
    params: list[tuple[int, bytes | None]]  # (format code, value)
    result_formats: list[int]

    def param_values(self, oids: list[int]) -> list[str]:
        return [param_text(fmt, v, oids[i] if i < len(oids) else 0) for i, (fmt, v) in enumerate(self.params)]

    def render(self, oids: list[int]) -> str:
        values = self.param_values(oids)
        params = ", ".join(f"[format={_fmt_name(f)} value={v}]" for (f, _), v in zip(self.params, values, strict=True))
        codes = ", ".join(_fmt_name(c) for c in self.result_formats)
        return f"portal={self.portal} statement={self.statement} parameters=[{params}] result_format_codes=[{codes}]"


def _fmt_name(code: int) -> str:
    return {0: "kText", 1: "kBinary"}.get(code, str(code))


_BINARY = {21: ">h", 23: ">i", 20: ">q", 700: ">f", 701: ">d"}  # int2/4/8, float4/8 by type OID
_TEXT_OIDS = frozenset((25, 1043, 1042, 19, 114, 3802))  # text, varchar, bpchar, name, json, jsonb


def param_text(fmt: int, value: bytes | None, oid: int = 0) -> str:
    """A bound value as text: text format as is; binary decoded for common types (by the OID the
    Parse declared), else ``\\x<hex>`` (Pixie prints the raw bytes)."""
    if value is None:
        return "[NULL]"
    if fmt != 1:
        return value.decode("utf-8", "replace")
    code = _BINARY.get(oid)
    if code is not None and struct.calcsize(code) == len(value):
        return str(struct.unpack(code, value)[0])
    if oid == 16 and len(value) == 1:
        return "t" if value[0] else "f"
    if oid in _TEXT_OIDS:
        return value.decode("utf-8", "replace")
    return "\\x" + value.hex()


def parse_bind(payload: bytes) -> Bind:
    portal, pos = cstring(payload, 0)
    stmt, pos = cstring(payload, pos)
    (nfmt,) = _I16.unpack_from(payload, pos)
    pos += 2
    fmts = [_I16.unpack_from(payload, pos + 2 * i)[0] for i in range(nfmt)]
    pos += 2 * nfmt
    (nparams,) = _I16.unpack_from(payload, pos)
    pos += 2
    params: list[tuple[int, bytes | None]] = []
    for i in range(nparams):
        (n,) = _I32.unpack_from(payload, pos)
        pos += 4
        fmt = fmts[i] if nfmt > 1 else (fmts[0] if nfmt == 1 else 0)
        if n < 0:
            params.append((fmt, None))
            continue
        if pos + n > len(payload):
            raise ValueError("bind parameter past the end")
        params.append((fmt, payload[pos : pos + n]))
        pos += n
    (nres,) = _I16.unpack_from(payload, pos)
    pos += 2
    results = [_I16.unpack_from(payload, pos + 2 * i)[0] for i in range(nres)]
    return Bind(portal, stmt, params, results)


def parse_describe(payload: bytes) -> tuple[str, str]:
    """Describe -> (kStatement/kPortal, name)."""
    kind = {83: "kStatement", 80: "kPortal"}.get(payload[0]) if payload else None
    if kind is None:
        raise ValueError("bad describe target")
    name, _ = cstring(payload, 1)
    return kind, name


def parse_row_desc(payload: bytes) -> list[tuple[str, str]]:
    """RowDescription -> [(name, Pixie's field description)]."""
    (n,) = _I16.unpack_from(payload, 0)
    pos = 2
    out = []
    for _ in range(n):
        name, pos = cstring(payload, pos)
        table_oid, attr, type_oid, size, mod, fmt = struct.unpack_from(">ihihih", payload, pos)
        pos += 18
        out.append((name, f"name={name} table_oid={table_oid} attr_num={attr} type_oid={type_oid} "
                          f"type_size={size} type_modifier={mod} fmt_code={_fmt_name(fmt)}"))  # fmt: skip
    return out


def parse_data_row(payload: bytes) -> str:
    """DataRow -> columns joined by ',' (NULL as ``[NULL]``), as Pixie shows a row."""
    (n,) = _I16.unpack_from(payload, 0)
    pos = 2
    cols = []
    for _ in range(n):
        (size,) = _I32.unpack_from(payload, pos)
        pos += 4
        if size < 0:
            cols.append("[NULL]")
            continue
        if pos + size > len(payload):
            raise ValueError("data row column past the end")
        cols.append(payload[pos : pos + size].decode("utf-8", "replace"))
        pos += size
    return ",".join(cols)


def parse_error(payload: bytes) -> str:
    """ErrorResponse -> ``ERROR RESPONSE [Severity=ERROR ... Routine=...]`` (Pixie's rendering)."""
    fields = []
    pos = 0
    while pos < len(payload) and payload[pos] != 0:
        code = chr(payload[pos])
        value, pos = cstring(payload, pos + 1)
        name = ERR_FIELDS.get(code)
        fields.append(f"{name}={value}" if name else f"Field:{code}={value}")
    return f"ERROR RESPONSE [{' '.join(fields)}]"
