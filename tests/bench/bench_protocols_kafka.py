"""Parse cost of the Kafka protocol on one core, with a baseline measured in the same run.

Each exchange is one request and its response, one stitcher call per exchange, as a client sees
them; every one becomes a kafka_events.beta record (framing, header, body JSON for both sides):

* Produce v9 (flexible: request header v2, compact encodings, tagged fields) of one record batch of
  10 records of 100 bytes to one partition, and the same at v7 (classic encodings);
* Fetch v12 (flexible) answering with that batch;
* Heartbeat v4: an API recorded with empty bodies (framing and pairing only).

Frames are encoded by kafka-python's classes generated from Apache Kafka's message definitions
(tests/kafka_spec_server.build). Baseline: the Redis stitcher on a SET exchange (an existing
protocol), as in the other protocol benchmarks, so figures compare across protocols and machines.

Prints µs per record, records/s and the ratio to the baseline; best of 5 runs (the machine is shared).

    .venv/bin/python -m tests.bench.bench_protocols_kafka
"""

from __future__ import annotations

import time
from collections.abc import Callable

from kafka.protocol.consumer import FetchRequest, FetchResponse, HeartbeatRequest, HeartbeatResponse
from kafka.protocol.producer import ProduceRequest, ProduceResponse
from kafka.record.memory_records import MemoryRecordsBuilder

from cluster.pem.data_stream import DataStream
from cluster.pem.protocols.kafka import KafkaStitcher
from cluster.pem.protocols.redis import RedisStitcher
from cluster.schemas import ROLE_CLIENT
from tests.bench.bench_protocols_dns_nats import redis_exchange
from tests.kafka_spec_server import build

N = 5000


def records(n: int = 10, size: int = 100) -> bytes:
    b = MemoryRecordsBuilder(magic=2, compression_type=0, batch_size=1 << 20)
    for i in range(n):
        b.append(timestamp=1_700_000_000_000 + i, key=b"order-%d" % i, value=b"x" * size, headers=[])
    b.close()
    return bytes(b.buffer())


def framed(msg: object, version: int, corr: int) -> bytes:
    msg.API_VERSION = version  # type: ignore[attr-defined]
    if msg.is_request():  # type: ignore[attr-defined]
        msg.with_header(correlation_id=corr, client_id="checkout-producer-1")  # type: ignore[attr-defined]
    else:
        msg.with_header(correlation_id=corr)  # type: ignore[attr-defined]
    return msg.encode(header=True, framed=True)  # type: ignore[attr-defined]


def produce(version: int, corr: int, batch: bytes) -> tuple[bytes, bytes]:
    req = build(ProduceRequest, {"transactional_id": None, "acks": -1, "timeout_ms": 30000, "topic_data": [
        {"name": "orders", "partition_data": [{"index": 3, "records": batch}]}]})  # fmt: skip
    part = {"index": 3, "error_code": 0, "base_offset": corr * 10, "log_append_time_ms": -1, "log_start_offset": 0}
    resp = build(ProduceResponse, {"responses": [{"name": "orders", "partition_responses": [part]}]})
    return framed(req, version, corr), framed(resp, version, corr)


def fetch(version: int, corr: int, batch: bytes) -> tuple[bytes, bytes]:
    req = build(FetchRequest, {"replica_id": -1, "max_wait_ms": 500, "min_bytes": 1, "max_bytes": 52428800,
                               "session_id": 7, "session_epoch": corr, "topics": [{"topic": "orders", "partitions": [
                                   {"partition": 3, "fetch_offset": corr * 10, "partition_max_bytes": 1048576}]}],
                               "forgotten_topics_data": [], "rack_id": ""})  # fmt: skip
    part = {
        "partition_index": 3,
        "high_watermark": corr * 10 + 10,
        "last_stable_offset": corr * 10 + 10,
        "log_start_offset": 0,
        "aborted_transactions": [],
        "preferred_read_replica": -1,
        "records": batch,
    }
    resp = build(FetchResponse, {"session_id": 7, "responses": [{"topic": "orders", "partitions": [part]}]})
    return framed(req, version, corr), framed(resp, version, corr)


def heartbeat(version: int, corr: int, _batch: bytes) -> tuple[bytes, bytes]:
    req = build(HeartbeatRequest, {"group_id": "checkout", "generation_id": 3, "member_id": "checkout-1-abc"})
    return framed(req, version, corr), framed(build(HeartbeatResponse, {"error_code": 0}), version, corr)


def stitch_run(new: Callable[[], object], pairs: list[tuple[bytes, bytes]]) -> tuple[float, int]:
    """Seconds and records for feeding every (request, response) pair, one stitcher call per pair."""
    st = new()
    egress, ingress = DataStream(), DataStream()
    ts = 1_700_000_000_000_000_000
    records_out = 0
    t0 = time.perf_counter()
    for req, resp in pairs:
        egress.append(ts, req)
        ingress.append(ts + 1000, resp)
        ts += 2000
        records_out += len(st.process(ROLE_CLIENT, egress, ingress))  # type: ignore[attr-defined]
    elapsed = time.perf_counter() - t0
    assert getattr(st, "parse_errors", 0) == 0
    return elapsed, records_out


def best(fn: Callable[[], tuple[float, int]]) -> tuple[float, int]:
    return min(fn() for _ in range(5))


def report(name: str, elapsed: float, records_out: int, base_us: float | None = None) -> float:
    us = 1e6 * elapsed / records_out
    ratio = f"   {us / base_us:5.2f}x Redis" if base_us else ""
    print(f"{name:<44} {us:8.2f} us/record {records_out / elapsed:>10,.0f} records/s{ratio}")
    return us


def workloads(batch: bytes) -> dict[str, list[tuple[bytes, bytes]]]:
    return {
        "Kafka Produce v9 (flexible), 10 records": [produce(9, i, batch) for i in range(N)],
        "Kafka Produce v7 (classic), 10 records": [produce(7, i, batch) for i in range(N)],
        "Kafka Fetch v12 (flexible), 10 records": [fetch(12, i, batch) for i in range(N)],
        "Kafka Heartbeat v4 (empty bodies)": [heartbeat(4, i, batch) for i in range(N)],
    }


def measure() -> list[tuple[str, str, float, int]]:
    """(protocol, workload, seconds, records) per workload, best of 5: one core's parse throughput, for
    tests/bench/bench_protocol_parsers.py."""
    cases = workloads(records())
    stitch_run(KafkaStitcher, cases["Kafka Fetch v12 (flexible), 10 records"][:500])  # warm-up
    out = []
    for name, pairs in cases.items():
        el, n = best(lambda pairs=pairs: stitch_run(KafkaStitcher, pairs))
        out.append(("Kafka", name.removeprefix("Kafka "), el, n))
    return out


def main() -> None:
    batch = records()
    redis_pairs = [redis_exchange(i) for i in range(N)]
    cases = workloads(batch)
    first = cases["Kafka Produce v9 (flexible), 10 records"][0]
    print(f"Produce v9 request {len(first[0])} B (record batch {len(batch)} B), response {len(first[1])} B;"
          f" Redis SET {len(redis_pairs[0][0])} B; {N} exchanges, best of 5")  # fmt: skip
    stitch_run(KafkaStitcher, cases["Kafka Fetch v12 (flexible), 10 records"][:500])  # warm-up
    redis_el, redis_n = best(lambda: stitch_run(RedisStitcher, redis_pairs))
    redis_us = report("baseline: Redis SET exchange (RedisStitcher)", redis_el, redis_n)
    for name, pairs in cases.items():
        el, n = best(lambda pairs=pairs: stitch_run(KafkaStitcher, pairs))
        assert n == N, (name, n)
        report(name, el, n, redis_us)


if __name__ == "__main__":
    main()
