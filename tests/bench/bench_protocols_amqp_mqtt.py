"""Parse + stitch cost of the AMQP and MQTT protocols on one core, against Redis as the baseline.

Each workload is one connection's traffic as the tracker hands it over: one append per syscall,
the stitcher called after every append (the worst case; the tracker batches when it can).

* AMQP publish: a pika-style basic.publish + content header + 64-byte body in one write, and the
  broker's basic.deliver + header + body to a consumer (6 records per message, as Pixie records).
* AMQP sync: queue.declare / declare-ok round trips (1 record each).
* MQTT QoS 1: PUBLISH (MQTT 5, 64-byte payload) and its PUBACK (1 record each).
* Baseline: Redis SET / +OK round trips through the Redis stitcher (1 record each).

Prints µs per record, records per second, and the ratio to the baseline measured in the same run;
best of 3 runs per workload, so the figure is the parser's cost and not the neighbours' noise.

    .venv/bin/python -m tests.bench.bench_protocols_amqp_mqtt
"""

from __future__ import annotations

import struct
import time
from collections.abc import Callable

import pika.frame as pf
import pika.spec as ps

from cluster.pem.data_stream import DataStream
from cluster.pem.protocols.amqp import AmqpStitcher
from cluster.pem.protocols.mqtt import MqttStitcher
from cluster.pem.protocols.redis import RedisStitcher
from cluster.schemas import ROLE_CLIENT

N = 5000
BODY = b'{"order": 4711, "sku": "A-100", "qty": 2, "price": 19.99, "ccy": "EUR"}'[:64]

Exchange = list[tuple[bool, bytes]]  # (sent by the client, bytes of one syscall)


def amqp_publish(i: int) -> Exchange:
    props = ps.BasicProperties(content_type="application/json", delivery_mode=2)
    out = pf.Method(1, ps.Basic.Publish(exchange="", routing_key="orders")).marshal()
    out += pf.Header(1, len(BODY), props).marshal() + pf.Body(1, BODY).marshal()
    back = pf.Method(1, ps.Basic.Deliver("ctag-1", i + 1, False, "", "orders")).marshal()
    back += pf.Header(1, len(BODY), props).marshal() + pf.Body(1, BODY).marshal()
    return [(True, out), (False, back)]


def amqp_sync(i: int) -> Exchange:
    q = f"queue-{i}"
    return [(True, pf.Method(1, ps.Queue.Declare(queue=q, durable=True)).marshal()),
            (False, pf.Method(1, ps.Queue.DeclareOk(q, 0, 0)).marshal())]  # fmt: skip


def mqtt_qos1(i: int) -> Exchange:
    pid = (i % 65535) + 1
    body = struct.pack(">H", 12) + b"sensors/t/42" + struct.pack(">H", pid) + b"\x00" + BODY
    publish = bytes([0x32, len(body)]) + body
    return [(True, publish), (False, b"\x40\x02" + struct.pack(">H", pid))]


def redis_set(i: int) -> Exchange:
    key, value = f"key:{i}".encode(), BODY
    cmd = b"*3\r\n$3\r\nSET\r\n$%d\r\n%s\r\n$%d\r\n%s\r\n" % (len(key), key, len(value), value)
    return [(True, cmd), (False, b"+OK\r\n")]


MQTT_CONNECT = bytes([0x10, 16]) + struct.pack(">H", 4) + b"MQTT" + b"\x05\x02\x00\x3c\x00" + struct.pack(">H", 3)
MQTT_CONNECT += b"cid"


def run(make_stitcher: Callable[[], object], exchange: Callable[[int], Exchange], preamble: Exchange) -> tuple:
    """(seconds, records) for N exchanges on one connection."""
    traffic = preamble + [step for i in range(N) for step in exchange(i)]
    client, server = DataStream(), DataStream()
    st = make_stitcher()
    ts = 1_700_000_000_000_000_000
    records = 0
    t0 = time.perf_counter()
    for from_client, data in traffic:
        (client if from_client else server).append(ts, data)
        ts += 1000
        records += len(st.process(ROLE_CLIENT, client, server))  # type: ignore[attr-defined]
    elapsed = time.perf_counter() - t0
    assert st.parse_errors == 0 and st.internal_errors == 0, (st.parse_errors, st.internal_errors)  # type: ignore[attr-defined]
    return elapsed, records


WORKLOADS: list[tuple[str, Callable[[], object], Callable[[int], Exchange], Exchange]] = [
    ("redis SET (baseline)", RedisStitcher, redis_set, []),
    ("amqp publish+deliver", AmqpStitcher, amqp_publish, [(True, b"AMQP\x00\x00\x09\x01")]),
    ("amqp declare/ok", AmqpStitcher, amqp_sync, [(True, b"AMQP\x00\x00\x09\x01")]),
    ("mqtt5 publish/puback", MqttStitcher, mqtt_qos1, [(True, MQTT_CONNECT), (False, b"\x20\x03\x00\x00\x00")]),
]


def measure() -> list[tuple[str, str, float, int]]:
    """(protocol, workload, seconds, records) per workload, best of 3: one core's parse throughput, for
    tests/bench/bench_protocol_parsers.py."""
    out = []
    for name, make, exchange, preamble in WORKLOADS[1:]:  # [0] is Redis, measured by bench_protocols_dns_nats
        run(make, exchange, preamble)  # warm-up
        elapsed, records = min(run(make, exchange, preamble) for _ in range(3))
        protocol = "MQTT" if name.startswith("mqtt") else "AMQP"
        out.append((protocol, name + ", per syscall", elapsed, records))
    return out


def main() -> None:
    baseline = 0.0
    print(f"{N} exchanges per workload, stitcher called after every syscall, best of 3")
    for name, make, exchange, preamble in WORKLOADS:
        run(make, exchange, preamble)  # warm-up
        elapsed, records = min(run(make, exchange, preamble) for _ in range(3))
        us = 1e6 * elapsed / records
        baseline = baseline or us
        print(f"{name:<22} {us:7.2f} us/record  {records / elapsed:>10,.0f} records/s  "
              f"{records:>6} records  ratio to baseline {us / baseline:5.2f}")  # fmt: skip


if __name__ == "__main__":
    main()
