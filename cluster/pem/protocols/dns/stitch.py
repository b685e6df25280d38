"""DNS stitching: a connection's two streams -> dns_events records.

Responses are matched to requests by transaction id, response first (Pixie's rule): for each
response, the oldest pending request with the same txid that is not newer than the response. Unlike
TCP protocols, answers may come out of order (glibc sends its A and AAAA queries together) and a
request may never be answered (UDP loss, a client that gave up), so requests wait at most
``REQUEST_TIMEOUT_NS`` after the newest message of the connection and at most ``max_pending`` of them;
the ones let go are counted in ``dropped_requests``.
"""

from __future__ import annotations

from collections import deque
from typing import Any

from cluster.pem.data_stream import DataStream
from cluster.pem.protocols.dns.frames import DnsFrame, DnsReader
from cluster.pem.protocols.stitching import GuardedStitcher

DEFAULT_MAX_PENDING = 256
REQUEST_TIMEOUT_NS = 30_000_000_000  # glibc gives up after 5 s x 2 attempts; a server's socket lives on


class DnsStitcher(GuardedStitcher):
    """One connection's (or one datagram peer's) stitcher; requests wait in the request stream's frames."""

    __slots__ = ()

    def __init__(self, max_pending: int = DEFAULT_MAX_PENDING) -> None:
        super().__init__(max_pending)

    def _process(self, req_stream: DataStream, resp_stream: DataStream) -> list[dict[str, Any]]:
        req_reader = DnsReader.for_stream(req_stream, True)
        resp_reader = DnsReader.for_stream(resp_stream, False)
        pending: deque[DnsFrame] = req_stream.frames
        while (req := req_reader.next_frame(req_stream)) is not None:
            pending.append(req)
        out: list[dict[str, Any]] = []
        newest = pending[-1].ts_ns if pending else 0
        while (resp := resp_reader.next_frame(resp_stream)) is not None:
            newest = max(newest, resp.ts_ns)
            self._match(resp, pending, out)
        self._expire(pending, newest)
        self.parse_errors += req_reader.take_errors() + resp_reader.take_errors()
        return out

    def _match(self, resp: DnsFrame, pending: deque[DnsFrame], out: list[dict[str, Any]]) -> None:
        for i, req in enumerate(pending):
            if req.ts_ns > resp.ts_ns:
                break  # later requests cannot be answered by this response
            if req.txid == resp.txid:
                del pending[i]
                out.append({
                    "time_": resp.ts_ns,
                    "req_header": req.header,
                    "req_body": req.body,
                    "resp_header": resp.header,
                    "resp_body": resp.body,
                    "latency": resp.ts_ns - req.ts_ns,
                })  # fmt: skip
                self.records += 1
                return
        self.unmatched_responses += 1

    def _expire(self, pending: deque[DnsFrame], newest: int) -> None:
        while pending and (len(pending) > self.max_pending or newest - pending[0].ts_ns > REQUEST_TIMEOUT_NS):
            pending.popleft()
            self.dropped_requests += 1
