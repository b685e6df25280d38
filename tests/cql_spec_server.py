"""A Cassandra stand-in that answers the native protocol (v4, and v5 with its segment framing) as
native_protocol_v4.spec / native_protocol_v5.spec say, just far enough for the real cassandra-driver
to connect and run simple statements. No Cassandra server can be installed on the development and CI
machines, so the CQL tests drive this over real TCP with the real driver; every byte the driver
sends is the driver's own, every reply follows the specification.

What it answers: OPTIONS (SUPPORTED), STARTUP (READY; v5 then switches both directions to segments,
built and checked with the driver's own SegmentCodec), REGISTER (READY, then SCHEMA_CHANGE EVENTs on
stream -1 after each CREATE), QUERY / PREPARE / EXECUTE / BATCH over a tiny in-memory store:
``CREATE KEYSPACE``, ``CREATE TABLE ks.t (col type, ..., PRIMARY KEY (...))`` (int, bigint, text,
varchar, boolean, double, uuid), ``USE``, ``INSERT INTO t (cols) VALUES (?|literal, ...)``,
``SELECT cols|* FROM t [WHERE col = ?|literal]``, the driver's system.local / system.peers[_v2]
queries; anything else is an ERROR as Cassandra would send it (unconfigured table 0x2200, syntax
0x2000, unprepared 0x2500, protocol 0x000A).

    python -m tests.cql_spec_server --port 9042      # prints "listening <port>" once ready
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import io
import re
import socket
import socketserver
import struct
import sys
import threading
import uuid

from cassandra.segment import CRC24_LENGTH, CRC32_LENGTH, SegmentCodec

# Opcodes and result kinds (native_protocol_v4.spec §2.4, §4.2.5).
ERROR, STARTUP, READY, OPTIONS, SUPPORTED, QUERY, RESULT = 0x00, 0x01, 0x02, 0x05, 0x06, 0x07, 0x08
PREPARE, EXECUTE, REGISTER, EVENT, BATCH = 0x09, 0x0A, 0x0B, 0x0C, 0x0D
VOID, ROWS, SET_KEYSPACE, PREPARED, SCHEMA_CHANGE = 1, 2, 3, 4, 5
TYPES = {"int": 0x0009, "bigint": 0x0002, "text": 0x000D, "varchar": 0x000D, "boolean": 0x0004,
         "double": 0x0007, "uuid": 0x000C, "inet": 0x0010}  # fmt: skip
SET_TYPE = 0x0022
HOST_ID = uuid.UUID("3f8b1b1e-7a55-4c2a-9d4e-6a0f3b1c2d4e")
SCHEMA_VERSION = uuid.UUID("1c2d3e4f-5a6b-4c7d-8e9f-a0b1c2d3e4f5")


def short(n: int) -> bytes:
    return struct.pack(">H", n)


def int_(n: int) -> bytes:
    return struct.pack(">i", n)


def string(s: str) -> bytes:
    b = s.encode()
    return short(len(b)) + b


def bytes_(b: bytes | None) -> bytes:
    return int_(-1) if b is None else int_(len(b)) + b


def short_bytes(b: bytes) -> bytes:
    return short(len(b)) + b


def encode_value(ctype: str, value: object) -> bytes | None:
    """A CQL literal or Python value -> its [bytes] content for column type ``ctype``."""
    if value is None:
        return None
    if ctype == "int":
        return struct.pack(">i", int(value))  # type: ignore[call-overload]
    if ctype == "bigint":
        return struct.pack(">q", int(value))  # type: ignore[call-overload]
    if ctype == "boolean":
        return b"\x01" if value in (True, "true") else b"\x00"
    if ctype == "double":
        return struct.pack(">d", float(value))  # type: ignore[arg-type]
    if ctype == "uuid":
        return uuid.UUID(str(value)).bytes
    if ctype == "inet":
        return socket.inet_aton(str(value))
    if ctype == "set<text>":
        items = [str(v).encode() for v in value]  # type: ignore[attr-defined]
        return int_(len(items)) + b"".join(int_(len(i)) + i for i in items)
    return str(value).encode()


def type_option(ctype: str) -> bytes:
    if ctype == "set<text>":
        return short(SET_TYPE) + short(TYPES["text"])
    return short(TYPES[ctype])


def col_specs(ks: str, table: str, cols: list[tuple[str, str]]) -> bytes:
    """<flags><columns_count> with the global table spec, then each column's name and type."""
    out = int_(0x0001) + int_(len(cols)) + string(ks) + string(table)
    return out + b"".join(string(name) + type_option(ctype) for name, ctype in cols)


def rows_result(ks: str, table: str, cols: list[tuple[str, str]], rows: list[list[bytes | None]]) -> bytes:
    body = int_(ROWS) + col_specs(ks, table, cols) + int_(len(rows))
    return body + b"".join(b"".join(bytes_(v) for v in row) for row in rows)


class CqlError(Exception):
    def __init__(self, code: int, message: str, extra: bytes = b"") -> None:
        super().__init__(message)
        self.code = code
        self.extra = extra


class Store:
    """Keyspaces, tables (ordered column types) and rows (column -> encoded value), shared by all
    connections, as one node would be."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.lock = threading.Lock()
        self.keyspaces: set[str] = {"system"}
        self.tables: dict[tuple[str, str], list[tuple[str, str]]] = {}
        self.rows: dict[tuple[str, str], list[dict[str, bytes | None]]] = {}
        self.prepared: dict[bytes, tuple[str, str]] = {}  # id -> (query, keyspace at prepare time)
        self.listeners: list[Connection] = []
        self.sessions: list[list[tuple[str, bytes]]] = []
        local = [("key", "text"), ("cluster_name", "text"), ("data_center", "text"), ("rack", "text"),
                 ("host_id", "uuid"), ("partitioner", "text"), ("release_version", "text"),
                 ("schema_version", "uuid"), ("rpc_address", "inet"), ("broadcast_address", "inet"),
                 ("listen_address", "inet"), ("native_port", "int"), ("tokens", "set<text>")]  # fmt: skip
        self.tables[("system", "local")] = local
        values = ["local", "pxtui-spec", "dc1", "rack1", HOST_ID, "org.apache.cassandra.dht.Murmur3Partitioner",
                  "4.1.0", SCHEMA_VERSION, "127.0.0.1", "127.0.0.1", "127.0.0.1", port, ["0"]]  # fmt: skip
        self.rows[("system", "local")] = [{c: encode_value(t, v) for (c, t), v in zip(local, values, strict=True)}]
        for peers in ("peers", "peers_v2"):
            self.tables[("system", peers)] = [("peer", "inet"), ("data_center", "text"), ("host_id", "uuid"),
                                              ("rack", "text"), ("rpc_address", "inet"), ("schema_version", "uuid"),
                                              ("tokens", "set<text>")]  # fmt: skip
            self.rows[("system", peers)] = []


_CREATE_KS = re.compile(r"CREATE KEYSPACE (?:IF NOT EXISTS )?(\w+)", re.I)
_CREATE_TABLE = re.compile(r"CREATE TABLE (?:IF NOT EXISTS )?(?:(\w+)\.)?(\w+)\s*\((.*)\)\s*$", re.I | re.S)
_USE = re.compile(r"USE \"?(\w+)\"?\s*$", re.I)
_INSERT = re.compile(r"INSERT INTO (?:(\w+)\.)?(\w+)\s*\(([^)]*)\)\s*VALUES\s*\(([^)]*)\)", re.I)
_SELECT = re.compile(
    r"SELECT (.+?) FROM (?:(\w+)\.)?(\w+)(?:\s+WHERE (\w+)\s*=\s*(\?|'[^']*'|-?\d+))?(?:\s+LIMIT \d+)?\s*$", re.I | re.S
)


def _literal(raw: str) -> object:
    raw = raw.strip()
    return raw[1:-1] if raw.startswith("'") else int(raw)


class Connection:
    """One client connection: frames in, frames out, legacy layout until v5 switches to segments."""

    def __init__(self, sock: socket.socket, store: Store) -> None:
        self.sock = sock
        self.store = store
        self.keyspace = ""
        self.version = 4
        self.segments = False
        self.codec = SegmentCodec()
        self.send_lock = threading.Lock()
        # Every chunk received ("c") and sent ("s"), in order: the unit tests' real byte streams.
        self.log: list[tuple[str, bytes]] = []
        with store.lock:
            store.sessions.append(self.log)

    # -- framing --------------------------------------------------------------------------------
    def serve(self) -> None:
        buf = b""
        while True:
            data = self.sock.recv(65536)
            if not data:
                return
            self.log.append(("c", data))
            buf += data
            while True:
                frame, buf = self._next_frame(buf)
                if frame is None:
                    break
                self._handle(*frame)

    def _next_frame(self, buf: bytes) -> tuple[tuple[int, int, int, int, bytes] | None, bytes]:
        if self.segments:
            hl = self.codec.header_length_with_crc
            if len(buf) < hl:
                return None, buf
            header = self.codec.decode_header(io.BytesIO(buf[:hl]))  # raises CrcException on a bad CRC
            total = hl + header.payload_length + CRC32_LENGTH
            if len(buf) < total:
                return None, buf
            seg = self.codec.decode(io.BytesIO(buf[hl:total]), header)
            assert seg.is_self_contained, "the driver's requests here fit one segment"
            return self._parse_frame(seg.payload), buf[total:]
        if len(buf) < 9:
            return None, buf
        length = struct.unpack(">i", buf[5:9])[0]
        if len(buf) < 9 + length:
            return None, buf
        return self._parse_frame(buf[: 9 + length]), buf[9 + length :]

    @staticmethod
    def _parse_frame(raw: bytes) -> tuple[int, int, int, int, bytes]:
        version, flags, stream, opcode, length = struct.unpack(">BBhBi", raw[:9])
        return version & 0x7F, flags, stream, opcode, raw[9 : 9 + length]

    def send(self, stream: int, opcode: int, body: bytes) -> None:
        frame = struct.pack(">BBhBi", 0x80 | self.version, 0, stream, opcode, len(body)) + body
        if self.segments:
            out = io.BytesIO()
            self.codec.encode(out, frame)
            frame = out.getvalue()
        with self.send_lock:
            self.log.append(("s", frame))
            self.sock.sendall(frame)

    # -- messages -------------------------------------------------------------------------------
    def _handle(self, version: int, flags: int, stream: int, opcode: int, body: bytes) -> None:
        if version not in (4, 5):
            self.version = 4
            msg = f"Invalid or unsupported protocol version ({version}); supported versions are (4/v4, 5/v5)"
            self.send(stream, ERROR, int_(0x000A) + string(msg))
            return
        self.version = version
        try:
            self._dispatch(stream, opcode, body)
        except CqlError as e:
            self.send(stream, ERROR, int_(e.code) + string(str(e)) + e.extra)

    def _dispatch(self, stream: int, opcode: int, body: bytes) -> None:
        r = io.BytesIO(body)
        if opcode == OPTIONS:
            opts = {"CQL_VERSION": ["3.4.5"], "COMPRESSION": [], "PROTOCOL_VERSIONS": ["4/v4", "5/v5"]}
            out = short(len(opts)) + b"".join(
                string(k) + short(len(v)) + b"".join(string(x) for x in v) for k, v in opts.items()
            )
            self.send(stream, SUPPORTED, out)
        elif opcode == STARTUP:
            self.send(stream, READY, b"")
            if self.version >= 5:
                self.segments = True  # v5 §2.3: both sides use segments from here on
        elif opcode == REGISTER:
            with self.store.lock:
                self.store.listeners.append(self)
            self.send(stream, READY, b"")
        elif opcode == QUERY:
            query = _read_long_string(r)
            values = _read_values(r, self.version)
            self.send(stream, RESULT, self._run(query, values))
        elif opcode == PREPARE:
            self.send(stream, RESULT, self._prepare(_read_long_string(r)))
        elif opcode == EXECUTE:
            qid = _read_short_bytes(r)
            if self.version >= 5:
                _read_short_bytes(r)  # result metadata id
            with self.store.lock:
                known = self.store.prepared.get(qid)
            if known is None:
                raise CqlError(0x2500, f"Prepared query with ID {qid.hex()} not found", short_bytes(qid))
            self.send(stream, RESULT, self._run(known[0], _read_values(r, self.version), known[1]))
        elif opcode == BATCH:
            r.read(1)
            for _ in range(_read_short(r)):
                kind = r.read(1)[0]
                query = _read_long_string(r) if kind == 0 else self.store.prepared[_read_short_bytes(r)][0]
                self._run(query, [_read_bytes(r) for _ in range(_read_short(r))])
            self.send(stream, RESULT, int_(VOID))
        else:
            raise CqlError(0x000A, f"Unexpected opcode 0x{opcode:02x}")

    def _table(self, ks: str | None, name: str) -> tuple[str, str, list[tuple[str, str]]]:
        keyspace = ks or self.keyspace
        cols = self.store.tables.get((keyspace, name))
        if cols is None:
            if not keyspace:
                raise CqlError(
                    0x2200, "No keyspace has been specified. USE a keyspace, or explicitly specify keyspace.tablename"
                )
            raise CqlError(0x2200, f"unconfigured table {name}")
        return keyspace, name, cols

    def _prepare(self, query: str) -> bytes:
        qid = hashlib.md5(query.encode()).digest()
        with self.store.lock:
            self.store.prepared[qid] = (query, self.keyspace)
        bind: list[tuple[str, str]] = []
        ks, table, result = "", "", []
        if (m := _INSERT.match(query)) is not None:
            ks, table, cols = self._table(m.group(1), m.group(2))
            types = dict(cols)
            names = [c.strip() for c in m.group(3).split(",")]
            marks = [v.strip() for v in m.group(4).split(",")]
            bind = [(n, types[n]) for n, v in zip(names, marks, strict=True) if v == "?"]
        elif (m := _SELECT.match(query)) is not None:
            ks, table, cols = self._table(m.group(2), m.group(3))
            result = self._selected(cols, m.group(1))
            if m.group(5) == "?":
                bind = [(m.group(4), dict(cols)[m.group(4)])]
        else:
            raise CqlError(0x2000, f"line 1:0 no viable alternative at input '{query.split()[0]}'")
        pk = int_(0)  # no partition key indexes reported
        meta = int_(0x0001) + int_(len(bind)) + pk + string(ks) + string(table)
        meta += b"".join(string(n) + type_option(t) for n, t in bind)
        res_meta = col_specs(ks, table, result) if result else int_(0x0004) + int_(0)
        out = int_(PREPARED) + short_bytes(qid)
        if self.version >= 5:
            out += short_bytes(hashlib.md5(b"meta" + query.encode()).digest())
        return out + meta + res_meta

    @staticmethod
    def _selected(cols: list[tuple[str, str]], what: str) -> list[tuple[str, str]]:
        if what.strip() == "*":
            return cols
        types = dict(cols)
        return [(c.strip(), types.get(c.strip(), "text")) for c in what.split(",")]

    def _run(self, query: str, values: list[bytes | None], keyspace: str | None = None) -> bytes:
        if keyspace is not None:
            saved, self.keyspace = self.keyspace, keyspace or self.keyspace
            try:
                return self._run(query, values)
            finally:
                self.keyspace = saved
        q = query.strip().rstrip(";")
        if (m := _CREATE_KS.match(q)) is not None:
            with self.store.lock:
                self.store.keyspaces.add(m.group(1))
            return self._schema_change("KEYSPACE", m.group(1), "")
        if (m := _CREATE_TABLE.match(q)) is not None:
            ks = m.group(1) or self.keyspace
            if ks not in self.store.keyspaces:
                raise CqlError(0x2200, f"Keyspace '{ks}' does not exist")
            cols = []
            for part in re.split(r",(?![^()]*\))", m.group(3)):
                words = part.split()
                if len(words) >= 2 and words[0].upper() != "PRIMARY":
                    if words[1].lower() not in TYPES:
                        raise CqlError(0x2000, f"Unknown type {words[1]}")
                    cols.append((words[0], words[1].lower()))
            with self.store.lock:
                self.store.tables[(ks, m.group(2))] = cols
                self.store.rows[(ks, m.group(2))] = []
            return self._schema_change("TABLE", ks, m.group(2))
        if (m := _USE.match(q)) is not None:
            if m.group(1) not in self.store.keyspaces:
                raise CqlError(0x2200, f"Keyspace '{m.group(1)}' does not exist")
            self.keyspace = m.group(1)
            return int_(SET_KEYSPACE) + string(m.group(1))
        if (m := _INSERT.match(q)) is not None:
            ks, table, cols = self._table(m.group(1), m.group(2))
            types = dict(cols)
            bound = iter(values)
            row: dict[str, bytes | None] = {}
            for name, raw in zip(m.group(3).split(","), m.group(4).split(","), strict=True):
                name = name.strip()
                if name not in types:
                    raise CqlError(0x2200, f"Undefined column name {name} in table {ks}.{table}")
                row[name] = next(bound) if raw.strip() == "?" else encode_value(types[name], _literal(raw))
            with self.store.lock:
                self.store.rows[(ks, table)].append(row)
            return int_(VOID)
        if (m := _SELECT.match(q)) is not None:
            ks, table, cols = self._table(m.group(2), m.group(3))
            selected = self._selected(cols, m.group(1))
            types = dict(cols)
            with self.store.lock:
                rows = list(self.store.rows[(ks, table)])
            if m.group(4):
                key = m.group(4)
                want = values[0] if m.group(5) == "?" else encode_value(types[key], _literal(m.group(5)))
                rows = [row for row in rows if row.get(key) == want]
            return rows_result(ks, table, selected, [[row.get(c) for c, _ in selected] for row in rows])
        raise CqlError(0x2000, f"line 1:0 no viable alternative at input '{q.split()[0] if q else ''}'")

    def _schema_change(self, target: str, ks: str, name: str) -> bytes:
        detail = string("CREATED") + string(target) + string(ks) + (string(name) if name else b"")
        with self.store.lock:
            listeners = list(self.store.listeners)
        for conn in listeners:  # pushed on stream -1 to every connection that registered
            with contextlib.suppress(OSError):
                conn.send(-1, EVENT, string("SCHEMA_CHANGE") + detail)
        return int_(SCHEMA_CHANGE) + detail


def _read_short(r: io.BytesIO) -> int:
    return struct.unpack(">H", r.read(2))[0]


def _read_int(r: io.BytesIO) -> int:
    return struct.unpack(">i", r.read(4))[0]


def _read_long_string(r: io.BytesIO) -> str:
    return r.read(_read_int(r)).decode()


def _read_short_bytes(r: io.BytesIO) -> bytes:
    return r.read(_read_short(r))


def _read_bytes(r: io.BytesIO) -> bytes | None:
    n = _read_int(r)
    return None if n < 0 else r.read(n)


def _read_values(r: io.BytesIO, version: int) -> list[bytes | None]:
    """<query_parameters>: consistency, flags (a byte in v4, an int in v5), then values if any."""
    r.read(2)
    flags = _read_int(r) if version >= 5 else r.read(1)[0]
    if not flags & 0x01:
        return []
    out = []
    for _ in range(_read_short(r)):
        if flags & 0x40:
            r.read(_read_short(r))
        out.append(_read_bytes(r))
    return out


class _Handler(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        conn = Connection(self.request, self.server.store)  # type: ignore[attr-defined]
        try:
            conn.serve()
        except (OSError, ConnectionError):
            pass
        finally:
            with conn.store.lock:
                if conn in conn.store.listeners:
                    conn.store.listeners.remove(conn)


class Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, port: int) -> None:
        super().__init__(("127.0.0.1", port), _Handler)
        self.store = Store(self.server_address[1])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--port", type=int, default=0)
    args = p.parse_args()
    server = Server(args.port)
    print(f"listening {server.server_address[1]}", flush=True)
    server.serve_forever()


assert CRC24_LENGTH == 3  # the v5 segment header layout this server relies on
if __name__ == "__main__":
    sys.exit(main())
