"""Parse throughput of every protocol on one core, in one table, against HTTP/1 measured in the same run.

Each row is a workload of one of the per-protocol benchmarks, run through its own ``measure()``
(best of 3 or 5 runs, so the figure is the parser's cost and not a neighbour's noise on a shared
host): bytes of one connection appended to its two DataStreams as the tracker would, the protocol's
stitcher turning them into its table's records. "per syscall" workloads call the stitcher after
every append (the worst case), the others once per request/response exchange. The ratio is the
row's records/s over HTTP/1's (keep-alive GET with a JSON response, one exchange per call).

    .venv/bin/python -m tests.bench.bench_protocol_parsers
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable

from tests.bench import (
    bench_http_parser,
    bench_protocols_amqp_mqtt,
    bench_protocols_cql_mongodb,
    bench_protocols_dns_nats,
    bench_protocols_http2,
    bench_protocols_kafka,
    bench_protocols_mysql_pgsql,
)

Row = tuple[str, str, float, int]  # protocol, workload, seconds, records

# HTTP/1 first: it is the baseline of the ratio column.
MEASURES: list[Callable[[], list[Row]]] = [
    bench_http_parser.measure,
    bench_protocols_http2.measure,
    bench_protocols_mysql_pgsql.measure,
    bench_protocols_dns_nats.measure,
    bench_protocols_kafka.measure,
    bench_protocols_cql_mongodb.measure,
    bench_protocols_amqp_mqtt.measure,
]


def main() -> int:
    cpu = min(os.sched_getaffinity(0))
    os.sched_setaffinity(0, {cpu})  # one core, and no migrations between cores mid-run
    t0 = time.monotonic()
    rows: list[Row] = []
    for measure in MEASURES:
        rows += measure()
        print(f"[bench] {measure.__module__.rsplit('.', 1)[1]} done at {time.monotonic() - t0:.0f} s", file=sys.stderr)
    base_rate = rows[0][3] / rows[0][2]
    print(f"parse + stitch throughput on one core (CPU {cpu}, pid {os.getpid()}; Python {sys.version.split()[0]})")
    print(f"{'protocol':<11} {'workload':<44} {'records':>7} {'us/record':>9} {'records/s':>11} {'vs HTTP/1':>9}")
    for protocol, workload, seconds, records in rows:
        rate = records / seconds
        print(f"{protocol:<11} {workload:<44} {records:>7} {1e6 / rate:>9.2f} {rate:>11,.0f} {rate / base_rate:>8.2f}x")
    print(f"{len({r[0] for r in rows})} protocols, {len(rows)} workloads in {time.monotonic() - t0:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
