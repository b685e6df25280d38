"""A MongoDB stand-in that answers the wire protocol as the MongoDB Wire Protocol reference and the
OP_MSG specification say, just far enough for the real pymongo to connect and run simple commands.
No MongoDB server can be installed on the development and CI machines, so the MongoDB tests drive
this over real TCP with the real driver; every byte pymongo sends is its own, every reply follows
the specification, and documents are encoded with pymongo's own ``bson``.

What it answers: the legacy OP_QUERY isMaster handshake (OP_REPLY), OP_MSG hello / isMaster / ping
/ buildInfo / endSessions / killCursors, insert (inline or as a ``documents`` sequence), find
(equality filters, batchSize, a cursor), getMore (streamed with moreToCome when the request sets
exhaustAllowed), update (``$set``), delete, and, for anything else, CommandNotFound (ok: 0). Client
requests with moreToCome (w:0 writes) get no reply. OP_COMPRESSED with zlib is accepted and answered
in kind once the client negotiated it in its handshake.

    python -m tests.mongo_spec_server --port 27017    # prints "listening <port>" once ready
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import itertools
import socket
import socketserver
import struct
import sys
import threading
import zlib
from typing import Any

import bson
from bson.int64 import Int64

OP_REPLY, OP_QUERY, OP_COMPRESSED, OP_MSG = 1, 2004, 2012, 2013
MORE_TO_COME, EXHAUST_ALLOWED = 1 << 1, 1 << 16
ZLIB = 2
_ids = itertools.count(1000)


def _msg(request_id: int, response_to: int, flags: int, doc: dict) -> bytes:
    body = struct.pack("<I", flags) + b"\x00" + bson.encode(doc)
    return struct.pack("<iiii", 16 + len(body), request_id, response_to, OP_MSG) + body


def _compress(message: bytes) -> bytes:
    _, request_id, response_to, op_code = struct.unpack_from("<iiii", message)
    packed = zlib.compress(message[16:])
    body = struct.pack("<iiB", op_code, len(message) - 16, ZLIB) + packed
    return struct.pack("<iiii", 16 + len(body), request_id, response_to, OP_COMPRESSED) + body


class Store:
    """Collections of documents, shared by all connections; cursors by id."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.collections: dict[tuple[str, str], list[dict]] = {}
        self.cursors: dict[int, tuple[str, list[dict]]] = {}
        self.cursor_ids = itertools.count(7_000_000_001)
        self.connections = itertools.count(1)
        self.sessions: list[list[tuple[str, bytes]]] = []


def _matches(doc: dict, query: dict) -> bool:
    return all(doc.get(k) == v for k, v in query.items())


class Connection:
    """One client connection: read whole messages, answer each as the server would."""

    def __init__(self, sock: socket.socket, store: Store) -> None:
        self.sock = sock
        self.store = store
        self.compress = False
        self.conn_id = next(store.connections)
        self.log: list[tuple[str, bytes]] = []  # chunks received ("c") and sent ("s"), for unit tests
        with store.lock:
            store.sessions.append(self.log)

    def serve(self) -> None:
        buf = b""
        while True:
            data = self.sock.recv(65536)
            if not data:
                return
            self.log.append(("c", data))
            buf += data
            while len(buf) >= 4 and len(buf) >= (n := struct.unpack_from("<i", buf)[0]):
                message, buf = buf[:n], buf[n:]
                self._handle(message)

    def _send(self, message: bytes) -> None:
        self.log.append(("s", message))
        self.sock.sendall(message)

    def _handle(self, message: bytes) -> None:
        _, request_id, _, op_code = struct.unpack_from("<iiii", message)
        body = message[16:]
        compressed = op_code == OP_COMPRESSED
        if compressed:
            op_code, size, compressor = struct.unpack_from("<iiB", body)
            assert compressor == ZLIB, compressor
            body = zlib.decompress(body[9:])
            assert len(body) == size
        if op_code == OP_QUERY:  # flags, fullCollectionName, numberToSkip, numberToReturn, query
            name_end = body.index(b"\x00", 4)
            query = bson.decode(body[name_end + 9 :])
            doc = self._hello(query, legacy=True)
            reply = struct.pack("<iqii", 0, 0, 0, 1) + bson.encode(doc)
            self._send(struct.pack("<iiii", 16 + len(reply), next(_ids), request_id, OP_REPLY) + reply)
            return
        assert op_code == OP_MSG, op_code
        flags = struct.unpack_from("<I", body)[0]
        cmd, pos = None, 4
        end = len(body) - (4 if flags & 1 else 0)
        while pos < end:
            kind = body[pos]
            pos += 1
            if kind == 0:
                n = struct.unpack_from("<i", body, pos)[0]
                cmd = bson.decode(body[pos : pos + n])
                pos += n
            else:  # a document sequence: its identifier names the command field it fills
                size = struct.unpack_from("<i", body, pos)[0]
                nul = body.index(b"\x00", pos + 4)
                ident = body[pos + 4 : nul].decode()
                assert cmd is not None
                cmd[ident] = bson.decode_all(body[nul + 1 : pos + size])
                pos += size
        assert cmd is not None
        replies = self._command(cmd, bool(flags & EXHAUST_ALLOWED))
        if flags & MORE_TO_COME:
            return  # an unacknowledged write: the client expects no reply
        response_to = request_id
        for i, doc in enumerate(replies):
            last = i == len(replies) - 1
            rid = next(_ids)
            out = _msg(rid, response_to, 0 if last else MORE_TO_COME, doc)
            self._send(_compress(out) if compressed and self.compress else out)
            response_to = rid  # each streamed reply answers the previous one

    def _hello(self, cmd: dict, legacy: bool = False) -> dict:
        first = next(iter(cmd))
        doc: dict[str, Any] = {"helloOk": True}
        doc["ismaster" if legacy or first != "hello" else "isWritablePrimary"] = True
        doc.update(
            maxBsonObjectSize=16 * 1024 * 1024, maxMessageSizeBytes=48_000_000, maxWriteBatchSize=100_000,
            localTime=datetime.datetime.now(datetime.UTC), logicalSessionTimeoutMinutes=30,
            connectionId=self.conn_id, minWireVersion=0, maxWireVersion=21, readOnly=False,
        )  # fmt: skip
        if "zlib" in cmd.get("compression", []):
            doc["compression"] = ["zlib"]
            self.compress = True
        doc["ok"] = 1.0
        return doc

    def _command(self, cmd: dict, exhaust: bool) -> list[dict]:
        name = next(iter(cmd))
        db = cmd.get("$db", "test")
        store = self.store
        if name in ("hello", "isMaster", "ismaster"):
            return [self._hello(cmd)]
        if name in ("ping", "endSessions", "killCursors"):
            return [{"ok": 1.0}]
        if name == "buildInfo":
            return [{"version": "7.0.0", "versionArray": [7, 0, 0, 0], "ok": 1.0}]
        if name == "insert":
            with store.lock:
                store.collections.setdefault((db, cmd["insert"]), []).extend(cmd.get("documents", []))
            return [{"n": len(cmd.get("documents", [])), "ok": 1.0}]
        if name == "find":
            with store.lock:
                docs = [d for d in store.collections.get((db, cmd["find"]), []) if _matches(d, cmd.get("filter", {}))]
            if cmd.get("limit"):
                docs = docs[: cmd["limit"]]
            return [self._batch(f"{db}.{cmd['find']}", docs, cmd.get("batchSize"), "firstBatch")]
        if name == "getMore":
            batches = []
            while True:
                with store.lock:
                    ns, rest = store.cursors.pop(int(cmd["getMore"]), ("", []))
                reply = self._batch(ns, rest, cmd.get("batchSize"), "nextBatch", int(cmd["getMore"]))
                batches.append(reply)
                if not exhaust or reply["cursor"]["id"] == 0:
                    return batches
        if name == "update":
            n = modified = 0
            with store.lock:
                for spec in cmd.get("updates", []):
                    for doc in store.collections.get((db, cmd["update"]), []):
                        if _matches(doc, spec["q"]):
                            n += 1
                            doc.update(spec["u"].get("$set", {}))
                            modified += 1
                            if not spec.get("multi"):
                                break
            return [{"n": n, "nModified": modified, "ok": 1.0}]
        if name == "delete":
            n = 0
            with store.lock:
                coll = store.collections.get((db, cmd["delete"]), [])
                for spec in cmd.get("deletes", []):
                    keep = []
                    for doc in coll:
                        if _matches(doc, spec["q"]) and (spec.get("limit", 0) == 0 or n < spec["limit"]):
                            n += 1
                        else:
                            keep.append(doc)
                    coll[:] = keep
            return [{"n": n, "ok": 1.0}]
        return [{"ok": 0.0, "errmsg": f"no such command: '{name}'", "code": 59, "codeName": "CommandNotFound"}]

    def _batch(self, ns: str, docs: list[dict], size: int | None, field: str, cursor_id: int = 0) -> dict:
        size = size or 101
        batch, rest = docs[:size], docs[size:]
        if rest:
            cursor_id = cursor_id or next(self.store.cursor_ids)
            with self.store.lock:
                self.store.cursors[cursor_id] = (ns, rest)
        else:
            cursor_id = 0
        return {"cursor": {field: batch, "id": Int64(cursor_id), "ns": ns}, "ok": 1.0}


class _Handler(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        with contextlib.suppress(OSError):
            Connection(self.request, self.server.store).serve()  # type: ignore[attr-defined]


class Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, port: int) -> None:
        super().__init__(("127.0.0.1", port), _Handler)
        self.store = Store()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--port", type=int, default=0)
    args = p.parse_args()
    server = Server(args.port)
    print(f"listening {server.server_address[1]}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    sys.exit(main())
