"""Throughput of the HTTP/1 parser + stitcher on one core.

A keep-alive connection carries ~300-byte requests and ~500-byte JSON responses; the tracker
appends each message as one syscall and calls the stitcher after every batch. Prints messages/s
(a request and a response are two messages) and records/s, for a few batch sizes; best of 5 runs.

    /work/main/.venv/bin/python tests/bench/bench_http_parser.py
"""

from __future__ import annotations

import time

from cluster.pem.data_stream import DataStream
from cluster.pem.protocols.http import HttpStitcher
from cluster.schemas import ROLE_SERVER


def _request(i: int) -> bytes:
    head = (
        f"GET /api/v1/orders/{i}?include=items&currency=EUR HTTP/1.1\r\n"
        "Host: orders.shop.svc.cluster.local:8080\r\n"
        "User-Agent: python-requests/2.31.0\r\n"
        "Accept-Encoding: gzip, deflate\r\n"
        "Accept: application/json\r\n"
        "Connection: keep-alive\r\n"
        "traceparent: 00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01\r\n"
        "X-Request-Id: 5f0c6f7e-1b2a-4c3d-9e8f-0a1b2c3d4e5f\r\n\r\n"
    )
    return head.encode()


def _response(i: int) -> bytes:
    body = (
        f'{{"id": {i}, "status": "shipped", "customer": {{"id": 4711, "name": "Ada Lovelace"}}, '
        '"items": [{"sku": "A-100", "qty": 2, "price": 19.99}, {"sku": "B-200", "qty": 1, '
        '"price": 5.49}], "total": 45.47, "currency": "EUR", "created": "2024-05-01T12:00:00Z", '
        '"updated": "2024-05-02T08:30:00Z", "notes": "leave at the door"}'
    ).encode()
    head = (
        "HTTP/1.1 200 OK\r\n"
        "Content-Type: application/json; charset=utf-8\r\n"
        f"Content-Length: {len(body)}\r\n"
        "Date: Wed, 01 May 2024 12:00:00 GMT\r\n"
        "Server: gunicorn\r\n"
        "Connection: keep-alive\r\n\r\n"
    )
    return head.encode() + body


def run(n_pairs: int, batch: int) -> tuple[float, int]:
    """Feed ``n_pairs`` exchanges, calling the stitcher every ``batch`` exchanges."""
    reqs = [_request(i) for i in range(n_pairs)]
    resps = [_response(i) for i in range(n_pairs)]
    ingress, egress = DataStream(), DataStream()
    stitcher = HttpStitcher()
    records = 0
    t0 = time.perf_counter()
    ts = 1_700_000_000_000_000_000
    for start in range(0, n_pairs, batch):
        for i in range(start, min(start + batch, n_pairs)):
            ingress.append(ts, reqs[i])
            egress.append(ts + 1000, resps[i])
            ts += 2000
        records += len(stitcher.process(ROLE_SERVER, egress, ingress))
    elapsed = time.perf_counter() - t0
    assert records == n_pairs, (records, n_pairs, stitcher.parse_errors)
    return elapsed, records


def measure(batch: int = 1) -> list[tuple[str, str, float, int]]:
    """(protocol, workload, seconds, records) per workload, best of 5: one core's parse throughput, for
    tests/bench/bench_protocol_parsers.py."""
    run(2000, batch)  # warm-up
    elapsed, records = min(run(20_000, batch) for _ in range(5))
    return [("HTTP/1", f"GET + JSON 200, {batch} exchange(s) per call", elapsed, records)]


def main() -> None:
    req_len, resp_len = len(_request(1)), len(_response(1))
    print(f"request {req_len} B, response {resp_len} B (JSON body)")
    n = 20_000
    run(2000, 1)  # warm-up
    for batch in (1, 16, 256):
        # best of 5: the figure is the parser's cost, not other processes' noise on a shared host
        elapsed, records = min(run(n, batch) for _ in range(5))
        msgs = 2 * records / elapsed
        print(
            f"batch {batch:>3} exchanges/call: {msgs:>10,.0f} messages/s  "
            f"{records / elapsed:>9,.0f} records/s  {1e6 * elapsed / records:6.2f} us/record"
        )


if __name__ == "__main__":
    main()
