"""A fake ScriptRunner returning Arrow tables shaped like px/http_data's output.

UI tests need data with the real column names, types and semantic types (the formatting depends
on them) but no cluster: the end-to-end test over real gRPC lives elsewhere.
"""

from __future__ import annotations

import json
import random
import threading
from collections.abc import Callable

import pyarrow as pa

from cluster.schemas import TIME64NS, UINT128, col
from pxtui.runner import ClusterStatus, ScriptResult
from pxtui.scripts import Script

HTTP_DATA_SCHEMA = pa.schema(
    [
        col("time_", TIME64NS),
        col("source", pa.string()),
        col("destination", pa.string()),
        col("method", pa.string(), "ST_HTTP_REQ_METHOD"),
        col("path", pa.string()),
        col("status", pa.int64(), "ST_HTTP_RESP_STATUS"),
        col("latency", pa.int64(), "ST_DURATION_NS"),
        col("req_headers", pa.string()),
        col("req_body", pa.string()),
        col("req_body_size", pa.int64(), "ST_BYTES"),
        col("resp_headers", pa.string()),
        col("resp_body", pa.string()),
        col("resp_body_size", pa.int64(), "ST_BYTES"),
        col("resp_message", pa.string(), "ST_HTTP_RESP_MESSAGE"),
        col("trace_role", pa.int64()),
        col("service", pa.string(), "ST_SERVICE_NAME"),
        col("pod", pa.string(), "ST_POD_NAME"),
        col("remote_addr", pa.string(), "ST_IP_ADDRESS"),
        col("remote_port", pa.int64(), "ST_PORT"),
        col("local_addr", pa.string(), "ST_IP_ADDRESS"),
        col("local_port", pa.int64(), "ST_PORT"),
        col("major_version", pa.int64()),
        col("minor_version", pa.int64()),
        col("upid", UINT128, "ST_UPID"),
    ]
)

BASE_NS = 1_700_000_000_000_000_000
PATHS = ["/products", "/cart", "/checkout", "/healthz", "/api/v1/orders?id=42", "/search?q=[x]"]
METHODS = ["GET", "POST", "PUT", "DELETE"]
MESSAGES = {200: "OK", 201: "Created", 404: "Not Found", 500: "Internal Server Error"}


def http_rows(n: int, start: int = 0, seed: int = 1, base_ns: int = BASE_NS) -> pa.Table:
    """`n` rows numbered from `start`; row i is at base_ns + i ms, so higher i = newer.

    Row i's request body carries "order-<i>" and its path is PATHS[i % len], which tests use to
    find rows; a few bodies are JSON, some plain text, some empty, one has markup-like brackets.
    """
    rnd = random.Random(seed + start)
    cols: dict[str, list] = {f.name: [] for f in HTTP_DATA_SCHEMA}
    for i in range(start, start + n):
        status = [200, 200, 200, 201, 404, 500][i % 6]
        server = i % 2 == 0
        peer = f"10.0.{i % 4}.{i % 250}:{40000 + i % 1000}"
        pod = f"default/frontend-{i % 3}"
        cols["time_"].append(base_ns + i * 1_000_000)
        cols["source"].append(peer if server else pod)
        cols["destination"].append(pod if server else peer)
        cols["method"].append(METHODS[i % len(METHODS)])
        cols["path"].append(PATHS[i % len(PATHS)])
        cols["status"].append(status)
        cols["latency"].append(rnd.randint(50_000, 600_000_000))
        headers = {"Host": "frontend", "User-Agent": "curl/8.5", "X-Req": str(i)}
        cols["req_headers"].append(json.dumps(headers))
        body = f"order-{i} plain"
        if i % 3:
            body = json.dumps({"order": f"order-{i}", "qty": i % 7, "items": [1, 2, 3]})
        cols["req_body"].append(body)
        cols["req_body_size"].append(len(body) + (i % 5) * 4096)
        cols["resp_headers"].append(json.dumps({"Content-Type": "application/json", "Content-Length": "42"}))
        resp = {"ok": status < 400, "id": i, "tag": "[bold]x[/]"}
        cols["resp_body"].append("" if status == 500 else json.dumps(resp))
        cols["resp_body_size"].append(42 * (i % 100))
        cols["resp_message"].append(MESSAGES[status])
        cols["trace_role"].append(2 if server else 1)
        cols["service"].append("default/frontend")
        cols["pod"].append(pod)
        cols["remote_addr"].append(f"10.0.{i % 4}.{i % 250}")
        cols["remote_port"].append(40000 + i % 1000)
        cols["local_addr"].append("10.0.9.9")
        cols["local_port"].append(8080)
        cols["major_version"].append(1)
        cols["minor_version"].append(1)
        cols["upid"].append(((1 << 96) | (1000 + i % 5) << 64 | 12345).to_bytes(16, "big"))
    return pa.table(cols, schema=HTTP_DATA_SCHEMA)


def status_ok() -> ClusterStatus:
    return ClusterStatus(agents_healthy=2, agents_total=2, events_lost=3,
                         window=(BASE_NS - 300 * 10**9, BASE_NS + 10**9))


class FakeRunner:
    """Thread-safe scripted runner: `produce(call_number)` makes each result or raises.

    By default every run returns the previous rows plus `grow` newer ones (a live table), capped
    at `cap` newest rows, like http_data's head(1000) over a sliding window.
    """

    def __init__(self, rows: int = 30, grow: int = 0, cap: int = 1000,
                 produce: Callable[[int], ScriptResult] | None = None) -> None:
        self.rows = rows
        self.grow = grow
        self.cap = cap
        self.calls = 0
        self.errors: list[Exception] = []  # raised (in order) by the next runs, one per run
        self.produce = produce
        self.seen: list[tuple[Script, dict[str, str]]] = []  # (script, args) of every run, in order
        self._lock = threading.Lock()

    def run(self, script: Script, args: dict[str, str]) -> ScriptResult:
        with self._lock:
            self.calls += 1
            n = self.calls
            self.seen.append((script, dict(args)))
            if self.errors:
                raise self.errors.pop(0)
        if self.produce is not None:
            return self.produce(n)
        total = self.rows + self.grow * (n - 1)
        start = max(0, total - self.cap)
        return ScriptResult(tables=[("http_data", http_rows(total - start, start=start))], warnings=[])

    def status(self) -> ClusterStatus:
        return status_ok()
