"""What a data access mode costs a query: redacting an http_events-shaped output table, against the
work the broker already does on every table (Arrow IPC + sealing for the client) as the baseline.

    .venv/bin/python -m tests.bench.bench_redaction [rows]
"""

from __future__ import annotations

import sys
import time

import pyarrow as pa

from cluster.auth.e2e import new_client_key, public_bytes, seal
from cluster.auth.redaction import redact_table
from cluster.vizier.ipc import ipc_chunks


def table(rows: int) -> pa.Table:
    note = "lorem ipsum dolor sit amet " * 12
    pii = '{{"user": "u{i}@example.com", "card": "4111 1111 1111 1111", "from": "10.0.{a}.{b}", "note": "{n}"}}'
    plain = '{{"order": {i}, "items": [1, 2, 3], "note": "{n}"}}'
    bodies = [(pii if i % 10 == 0 else plain).format(i=i, a=i % 250, b=i % 200, n=note) for i in range(rows)]
    return pa.table(
        {
            "time_": pa.array(range(rows), pa.int64()),
            "req_path": [f"/api/v1/orders/{i}?page=2" for i in range(rows)],
            "req_headers": ['{"Host": "shop", "Authorization": "Bearer abcdefghijklmnop"}'] * rows,
            "req_body": bodies,
            "resp_body": bodies,
            "remote_addr": ["10.1.2.3"] * rows,
            "resp_status": pa.array([200] * rows, pa.int64()),
        }
    )


def best(fn, repeat: int = 3) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def main() -> None:
    rows = int(sys.argv[1]) if len(sys.argv) > 1 else 50_000
    t = table(rows)
    key = public_bytes(new_client_key())
    base = best(lambda: [seal(key, p) for p, _ in ipc_chunks(t)])
    mb = t.nbytes / 1e6
    print(f"table: {rows} rows, {mb:.1f} MB of Arrow")
    print(f"baseline ipc+seal : {base * 1e3:8.1f} ms  ({mb / base:7.1f} MB/s)")
    for mode in ("restricted", "pii"):
        s = best(lambda mode=mode: redact_table(t, mode))
        print(f"redact {mode:<10} : {s * 1e3:8.1f} ms  ({mb / s:7.1f} MB/s)  x{s / base:.2f} of the baseline")


if __name__ == "__main__":
    main()
