"""MySQL/MariaDB client/server packets: bytes of one direction -> :class:`Packet` objects, and the
payload decoders the stitcher needs.

A packet is ``length:3 (little-endian) | sequence id:1 | payload``. A payload of 0xffffff bytes
continues in the next packet; the pieces are joined (up to the stream cap). The parser waits while a
packet is incomplete and never raises; garbage cannot be detected at this layer (any four bytes are
a header), so the stitcher validates payloads and resets the connection's state when they make no
sense.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from cluster.pem.data_stream import DataStream
from cluster.pem.protocols.stream_parser import StreamParser

MAX_PAYLOAD = 0xFFFFFF
CLIENT_SSL = 0x00000800
CLIENT_DEPRECATE_EOF = 0x01000000
SERVER_MORE_RESULTS_EXISTS = 0x0008

COMMAND_NAMES = (
    "Sleep", "Quit", "InitDB", "Query", "FieldList", "CreateDB", "DropDB", "Refresh", "Shutdown",
    "Statistics", "ProcessInfo", "Connect", "ProcessKill", "Debug", "Ping", "Time", "DelayedInsert",
    "ChangeUser", "BinlogDump", "TableDump", "ConnectOut", "RegisterSlave", "StmtPrepare", "StmtExecute",
    "StmtSendLongData", "StmtClose", "StmtReset", "SetOption", "StmtFetch", "Daemon", "BinlogDumpGTID",
    "ResetConnection",
)  # fmt: skip
COM_QUIT, COM_INIT_DB, COM_QUERY, COM_FIELD_LIST = 1, 2, 3, 4
COM_CREATE_DB, COM_DROP_DB = 5, 6
COM_STMT_PREPARE, COM_STMT_EXECUTE, COM_STMT_SEND_LONG_DATA, COM_STMT_CLOSE = 22, 23, 24, 25

_U16 = struct.Struct("<H")
_U32 = struct.Struct("<I")


@dataclass(slots=True)
class Packet:
    seq: int
    ts_ns: int
    payload: bytes


class PacketParser(StreamParser):
    """Incremental packet parser for one direction; kept in ``DataStream.state``."""

    __slots__ = ("_part_seq", "_part_ts", "_parts", "tunnel")

    def __init__(self) -> None:
        self.errors = 0
        self.tunnel = False  # TLS was negotiated: the rest is opaque
        self._parts: list[bytes] = []  # pieces of a payload split at 0xffffff bytes
        self._part_ts = 0
        self._part_seq = 0

    def next_packet(self, stream: DataStream) -> Packet | None:
        if stream.needs_resync:
            stream.needs_resync = False
            self._parts = []
        if self.tunnel:
            stream.consume(len(stream))
            return None
        while True:
            buf, pos = stream.view()
            if len(buf) - pos < 4:
                return None
            length = buf[pos] | buf[pos + 1] << 8 | buf[pos + 2] << 16
            if len(buf) - pos < 4 + length:
                return None
            seq = buf[pos + 3]
            ts = stream.ts_at(0)
            payload = buf[pos + 4 : pos + 4 + length]
            stream.consume(4 + length)
            if length == MAX_PAYLOAD or self._parts:
                if not self._parts:
                    self._part_ts, self._part_seq = ts, seq
                self._parts.append(payload)
                if length == MAX_PAYLOAD:
                    continue
                payload, self._parts = b"".join(self._parts), []
                return Packet(self._part_seq, self._part_ts, payload)
            return Packet(seq, ts, payload)


# ---- payload decoders (raise ValueError/IndexError/struct.error when malformed) ----------------


def lenenc_int(b: bytes, pos: int) -> tuple[int, int]:
    first = b[pos]
    if first < 0xFB:
        return first, pos + 1
    if first == 0xFC:
        return _U16.unpack_from(b, pos + 1)[0], pos + 3
    if first == 0xFD:
        return int.from_bytes(b[pos + 1 : pos + 4], "little"), pos + 4
    if first == 0xFE:
        if pos + 9 > len(b):
            raise ValueError("short lenenc int")
        return int.from_bytes(b[pos + 1 : pos + 9], "little"), pos + 9
    raise ValueError("not a length-encoded integer")


def lenenc_str(b: bytes, pos: int) -> tuple[bytes, int]:
    n, pos = lenenc_int(b, pos)
    if pos + n > len(b):
        raise ValueError("length-encoded string past the end")
    return b[pos : pos + n], pos + n


def is_err(p: Packet) -> bool:
    return p.payload[:1] == b"\xff"


def is_ok(p: Packet) -> bool:
    return p.payload[:1] == b"\x00" and len(p.payload) >= 7


def is_eof(p: Packet) -> bool:
    """EOF_Packet, or the OK packet with 0xfe header that ends a result set with DEPRECATE_EOF.

    A text row starting with 0xfe would need an 8-byte length, hence more than 0xffffff bytes.
    """
    return p.payload[:1] == b"\xfe" and len(p.payload) < MAX_PAYLOAD


def err_message(p: Packet) -> str:
    """ERR_Packet -> its message (after code, '#' and SQL state, as Pixie shows it)."""
    body = p.payload
    if len(body) < 3:
        raise ValueError("short ERR packet")
    start = 9 if body[3:4] == b"#" else 3
    return body[start:].decode("utf-8", "replace")


def status_flags(p: Packet) -> int:
    """Server status of an EOF or OK packet."""
    b = p.payload
    if len(b) == 5 and b[0] == 0xFE:
        return _U16.unpack_from(b, 3)[0]
    _, pos = lenenc_int(b, 1)
    _, pos = lenenc_int(b, pos)
    return _U16.unpack_from(b, pos)[0] if pos + 2 <= len(b) else 0


def is_column_def(p: Packet) -> bool:
    return p.payload[:4] == b"\x03def"


def is_text_row(p: Packet, ncols: int) -> bool:
    """Does the payload consist of exactly ``ncols`` length-encoded strings (0xfb = NULL)?"""
    b = p.payload
    pos = 0
    try:
        for _ in range(ncols):
            if b[pos] == 0xFB:
                pos += 1
            else:
                _, pos = lenenc_str(b, pos)
    except (IndexError, ValueError):
        return False
    return pos == len(b)


def handshake_caps(p: Packet) -> int | None:
    """Capability flags of a server greeting (protocol 10), or None if it is not one."""
    b = p.payload
    if b[:1] != b"\x0a":
        return None
    nul = b.find(b"\x00", 1, 80)
    if nul < 0 or len(b) < nul + 1 + 4 + 8 + 1 + 2:
        return None
    pos = nul + 1 + 4 + 8 + 1
    lower = _U16.unpack_from(b, pos)[0]
    upper = _U16.unpack_from(b, pos + 5)[0] if len(b) >= pos + 7 else 0
    return lower | upper << 16


# Binary protocol value types (MYSQL_TYPE_*).
_T_DECIMAL, _T_TINY, _T_SHORT, _T_LONG, _T_FLOAT, _T_DOUBLE, _T_NULL, _T_TIMESTAMP = 0, 1, 2, 3, 4, 5, 6, 7
_T_LONGLONG, _T_INT24, _T_DATE, _T_TIME, _T_DATETIME, _T_YEAR = 8, 9, 10, 11, 12, 13
_INTS = {_T_TINY: (1, "<b", "<B"), _T_SHORT: (2, "<h", "<H"), _T_YEAR: (2, "<h", "<H"),
         _T_LONG: (4, "<i", "<I"), _T_INT24: (4, "<i", "<I"), _T_LONGLONG: (8, "<q", "<Q")}  # fmt: skip


def execute_params(payload: bytes, nparams: int, prev_types: list[int] | None) -> tuple[list[str], list[int]]:
    """COM_STMT_EXECUTE payload (after the command byte) -> (parameter texts, parameter types).

    Types are sent only when new-params-bound is set; otherwise the previous execution's apply.
    """
    if nparams == 0:
        return [], []
    pos = 9  # stmt id 4, flags 1, iteration count 4
    null_bitmap = payload[pos : pos + (nparams + 7) // 8]
    pos += (nparams + 7) // 8
    bound = payload[pos]
    pos += 1
    types: list[int]
    if bound:
        types = [_U16.unpack_from(payload, pos + 2 * i)[0] for i in range(nparams)]
        pos += 2 * nparams
    elif prev_types is not None and len(prev_types) == nparams:
        types = prev_types
    else:
        raise ValueError("parameter types unknown")
    values = []
    for i, t in enumerate(types):
        if null_bitmap[i // 8] >> (i % 8) & 1:
            values.append("NULL")
            continue
        value, pos = _binary_value(payload, pos, t)
        values.append(value)
    return values, types


def _binary_value(b: bytes, pos: int, type_and_flags: int) -> tuple[str, int]:
    t = type_and_flags & 0xFF
    unsigned = bool(type_and_flags & 0x8000)
    if t in _INTS:
        size, signed_fmt, unsigned_fmt = _INTS[t]
        return str(struct.unpack_from(unsigned_fmt if unsigned else signed_fmt, b, pos)[0]), pos + size
    if t == _T_FLOAT:
        return repr(struct.unpack_from("<f", b, pos)[0]), pos + 4
    if t == _T_DOUBLE:
        return repr(struct.unpack_from("<d", b, pos)[0]), pos + 8
    if t == _T_NULL:
        return "NULL", pos
    if t in (_T_DATE, _T_DATETIME, _T_TIMESTAMP):
        n = b[pos]
        d = b[pos + 1 : pos + 1 + n]
        pos += 1 + n
        if n == 0:
            return "0000-00-00 00:00:00", pos
        y, mo, da = _U16.unpack_from(d, 0)[0], d[2], d[3]
        text = f"{y:04d}-{mo:02d}-{da:02d}"
        if n >= 7:
            text += f" {d[4]:02d}:{d[5]:02d}:{d[6]:02d}"
        if n >= 11:
            text += f".{_U32.unpack_from(d, 7)[0]:06d}"
        return text, pos
    if t == _T_TIME:
        n = b[pos]
        d = b[pos + 1 : pos + 1 + n]
        pos += 1 + n
        if n == 0:
            return "00:00:00", pos
        sign = "-" if d[0] else ""
        hours = _U32.unpack_from(d, 1)[0] * 24 + d[5]
        return f"{sign}{hours:02d}:{d[6]:02d}:{d[7]:02d}", pos
    # Strings, decimals, blobs, JSON, enum, set, bit, geometry: length-encoded bytes.
    raw, pos = lenenc_str(b, pos)
    return raw.decode("utf-8", "replace"), pos
