"""Parse cost of the CQL and MongoDB protocols on one core, with a baseline measured in the same run.

* CQL: an EXECUTE of a prepared SELECT with one bound value and its ROWS result (2 columns, 1 row),
  as v4 frames, then the same exchange in v5 segments (header CRC24 and payload CRC32 checked), one
  exchange per stitcher call, after the PREPARE that names the statement.
* MongoDB: a ``find`` OP_MSG (filter, lsid, $db) and its cursor reply with one document, rendered
  to Pixie's canonical Extended JSON; and an ``insert`` with a 5-document sequence.
* Baseline: the Redis stitcher on a SET exchange (an existing protocol), so the figures compare
  across protocols and machines.

Frames are built from the protocol specifications with the spec servers' encoders and pymongo's bson.
Prints µs per record, records/s and the ratio to Redis; best of 5 runs (the machine is shared).

    .venv/bin/python -m tests.bench.bench_protocols_cql_mongodb
"""

from __future__ import annotations

import io
import struct
import time
import uuid
from collections.abc import Callable

import bson
from cassandra.segment import SegmentCodec

from cluster.pem.data_stream import DataStream
from cluster.pem.protocols.cql import CqlStitcher
from cluster.pem.protocols.cql import frames as f
from cluster.pem.protocols.mongodb import MongoStitcher
from cluster.pem.protocols.redis import RedisStitcher
from cluster.schemas import ROLE_CLIENT
from tests.cql_spec_server import int_, rows_result, short, short_bytes
from tests.mongo_spec_server import _msg

N = 5000
QUERY = "SELECT id, name FROM shop.items WHERE id = ?"
QID = b"\x8f\x11" * 8


def cql_frame(opcode: int, body: bytes, stream: int, version: int, response: bool) -> bytes:
    return struct.pack(">BBhBi", version | (0x80 if response else 0), 0, stream, opcode, len(body)) + body


def cql_exchange(i: int, version: int) -> tuple[bytes, bytes]:
    stream = i % 32768
    params = short(1) + (int_(0x01) if version >= 5 else b"\x01") + short(1) + int_(4) + struct.pack(">i", i)
    body = short_bytes(QID) + (short_bytes(QID) if version >= 5 else b"") + params
    rows = rows_result("shop", "items", [("id", "int"), ("name", "text")],
                       [[struct.pack(">i", i), f"widget-{i}".encode()]])  # fmt: skip
    return (cql_frame(f.EXECUTE, body, stream, version, False), cql_frame(f.RESULT, rows, stream, version, True))


def cql_prologue(version: int) -> tuple[bytes, bytes]:
    prepare = int_(len(QUERY)) + QUERY.encode() + (int_(0) if version >= 5 else b"")
    prepared = int_(4) + short_bytes(QID) + (short_bytes(QID) if version >= 5 else b"") + int_(0) * 3
    req = cql_frame(f.PREPARE, prepare, 0, version, False)
    resp = cql_frame(f.RESULT, prepared + int_(4) + int_(0), 0, version, True)
    if version >= 5:  # v5 STARTUP/READY in the legacy layout switch both sides to segments
        startup = cql_frame(f.STARTUP, short(1) + short(11) + b"CQL_VERSION" + short(5) + b"3.0.0", 1, 5, False)
        return startup + segment(req), cql_frame(f.READY, b"", 1, 5, True) + segment(resp)
    return req, resp


def segment(frame: bytes) -> bytes:
    out = io.BytesIO()
    SegmentCodec().encode(out, frame)
    return out.getvalue()


def mongo_find(i: int) -> tuple[bytes, bytes]:
    lsid = {"id": bson.Binary(uuid.UUID(int=i).bytes, 4)}
    req = _msg(
        2 * i + 1, 0, 0, {"find": "items", "filter": {"sku": f"sku-{i}"}, "limit": 1, "lsid": lsid, "$db": "shop"}
    )
    doc = {"_id": bson.ObjectId(), "sku": f"sku-{i}", "qty": 2, "price": 9.99}
    reply = {"cursor": {"firstBatch": [doc], "id": bson.Int64(0), "ns": "shop.items"}, "ok": 1.0}
    return req, _msg(2 * i + 2, 2 * i + 1, 0, reply)


def mongo_insert(i: int) -> tuple[bytes, bytes]:
    cmd = bson.encode({"insert": "items", "ordered": True, "$db": "shop"})
    docs = b"".join(bson.encode({"_id": bson.ObjectId(), "sku": f"bulk-{i}-{k}", "qty": k}) for k in range(5))
    ident = b"documents\x00"
    body = struct.pack("<I", 0) + b"\x00" + cmd + b"\x01" + struct.pack("<i", 4 + len(ident) + len(docs)) + ident + docs
    req = struct.pack("<iiii", 16 + len(body), 2 * i + 1, 0, 2013) + body
    return req, _msg(2 * i + 2, 2 * i + 1, 0, {"n": 5, "ok": 1.0})


def redis_exchange(i: int) -> tuple[bytes, bytes]:
    value = b'{"order":%d,"items":[{"sku":"A-100","qty":2}],"total":45.47}' % i
    key = b"order:%d" % i
    return b"*3\r\n$3\r\nSET\r\n$%d\r\n%s\r\n$%d\r\n%s\r\n" % (len(key), key, len(value), value), b"+OK\r\n"


def stitch_run(new: Callable[[], object], pairs: list[tuple[bytes, bytes]],
               prologue: tuple[bytes, bytes] = (b"", b"")) -> tuple[float, int]:  # fmt: skip
    """Seconds and records for feeding every (request, response) pair, one stitcher call per pair."""
    st = new()
    egress, ingress = DataStream(), DataStream()
    egress.append(1, prologue[0])
    ingress.append(2, prologue[1])
    st.process(ROLE_CLIENT, egress, ingress)  # type: ignore[attr-defined]
    records = 0
    ts = 1_700_000_000_000_000_000
    t0 = time.perf_counter()
    for req, resp in pairs:
        egress.append(ts, req)
        ingress.append(ts + 1000, resp)
        ts += 2000
        records += len(st.process(ROLE_CLIENT, egress, ingress))  # type: ignore[attr-defined]
    elapsed = time.perf_counter() - t0
    assert st.parse_errors == 0 and st.internal_errors == 0, (st.parse_errors, st.internal_errors)  # type: ignore[attr-defined]
    return elapsed, records


def best(fn: Callable[[], tuple[float, int]]) -> tuple[float, int]:
    return min(fn() for _ in range(5))


def report(name: str, elapsed: float, records: int, base_us: float | None = None) -> float:
    us = 1e6 * elapsed / records
    ratio = f"   {us / base_us:5.2f}x Redis" if base_us else ""
    print(f"{name:<46} {us:8.2f} us/record {records / elapsed:>10,.0f} records/s{ratio}")
    return us


def measure() -> list[tuple[str, str, float, int]]:
    """(protocol, workload, seconds, records) per workload, best of 5: one core's parse throughput, for
    tests/bench/bench_protocol_parsers.py."""
    cql4 = [cql_exchange(i, 4) for i in range(N)]
    cql5 = [(segment(q), segment(r)) for q, r in (cql_exchange(i, 5) for i in range(N))]
    finds = [mongo_find(i) for i in range(N)]
    inserts = [mongo_insert(i) for i in range(N)]
    stitch_run(CqlStitcher, cql4[:500], cql_prologue(4))  # warm-up
    return [
        ("CQL", "v4 EXECUTE + ROWS", *best(lambda: stitch_run(CqlStitcher, cql4, cql_prologue(4)))),
        ("CQL", "v5 EXECUTE + ROWS in segments", *best(lambda: stitch_run(CqlStitcher, cql5, cql_prologue(5)))),
        ("MongoDB", "find + cursor reply", *best(lambda: stitch_run(lambda: MongoStitcher(body_cap=512), finds))),
        ("MongoDB", "insert, 5-document sequence",
         *best(lambda: stitch_run(lambda: MongoStitcher(body_cap=512), inserts))),
    ]  # fmt: skip


def main() -> None:
    redis_pairs = [redis_exchange(i) for i in range(N)]
    cql4 = [cql_exchange(i, 4) for i in range(N)]
    cql5 = [(segment(q), segment(r)) for q, r in (cql_exchange(i, 5) for i in range(N))]
    finds = [mongo_find(i) for i in range(N)]
    inserts = [mongo_insert(i) for i in range(N)]
    extra = len(cql5[0][0]) - len(cql4[0][0])
    print(f"CQL EXECUTE {len(cql4[0][0])} B + ROWS {len(cql4[0][1])} B (v5 segments +{extra} B);"
          f" MongoDB find {len(finds[0][0])} B + reply {len(finds[0][1])} B, insert x5 {len(inserts[0][0])} B;"
          f" Redis SET {len(redis_pairs[0][0])} B; {N} exchanges, best of 5")  # fmt: skip
    stitch_run(CqlStitcher, cql4[:500], cql_prologue(4))  # warm-up

    redis_el, redis_n = best(lambda: stitch_run(RedisStitcher, redis_pairs))
    redis_us = report("baseline: Redis SET exchange (RedisStitcher)", redis_el, redis_n)

    el, n = best(lambda: stitch_run(CqlStitcher, cql4, cql_prologue(4)))
    assert n == N, n
    report("CQL v4 EXECUTE + ROWS (CqlStitcher)", el, n, redis_us)
    el, n = best(lambda: stitch_run(CqlStitcher, cql5, cql_prologue(5)))
    assert n == N, n
    report("CQL v5 EXECUTE + ROWS in segments", el, n, redis_us)
    el, n = best(lambda: stitch_run(lambda: MongoStitcher(body_cap=512), finds))
    assert n == N, n
    report("MongoDB find + cursor reply (MongoStitcher)", el, n, redis_us)
    el, n = best(lambda: stitch_run(lambda: MongoStitcher(body_cap=512), inserts))
    assert n == N, n
    report("MongoDB insert, 5-document sequence", el, n, redis_us)


if __name__ == "__main__":
    main()
