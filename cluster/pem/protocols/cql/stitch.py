"""CQL stitching: a connection's two streams -> cql_events records.

A client multiplexes requests over stream ids and the server answers each on the stream id it came
with, in any order; a stream id is reused once answered. So a response pairs with the oldest pending
request of its stream id that is not later than the response (Pixie's rule too): requests of one
stream id wait in FIFO order, since the tracker may hand over a reused id's next request before the
answer to the previous one has been read. Server-pushed EVENTs (stream id
-1, after a REGISTER) answer nothing: each is a record of its own with req_op REGISTER, req_body
``-`` and latency 0, as in Pixie. ``time_`` is the response's timestamp.

The stitcher remembers, per connection, the text of each statement it saw prepared (PREPARE
answered by RESULT PREPARED), so that an EXECUTE shows which statement it ran; the map is bounded.
A body that does not decode is a parse error and yields no record (Pixie's choice).
"""

from __future__ import annotations

from collections import deque
from typing import Any

from cluster.pem.data_stream import DataStream
from cluster.pem.protocols.cql import frames as f
from cluster.pem.protocols.cql.body import BadBody, render_request, render_response
from cluster.pem.protocols.stitching import GuardedStitcher

DEFAULT_MAX_PENDING = 1024
MAX_PREPARED = 4096


class CqlStitcher(GuardedStitcher):
    """One connection's stitcher; its requests wait in ``_pending``, FIFO per stream id."""

    __slots__ = ("_count", "_pending", "_prepared")

    def __init__(self, max_pending: int = DEFAULT_MAX_PENDING) -> None:
        super().__init__(max_pending)
        self._pending: dict[int, deque[f.CqlFrame]] = {}
        self._count = 0  # requests waiting, over all stream ids
        self._prepared: dict[bytes, str] = {}

    def _process(self, req_stream: DataStream, resp_stream: DataStream) -> list[dict[str, Any]]:
        req_parser = f.CqlParser.for_stream(req_stream, True)
        resp_parser = f.CqlParser.for_stream(resp_stream, False)
        pending = self._pending
        while (req := req_parser.next_frame(req_stream)) is not None:
            waiting = pending.get(req.stream)
            if waiting is None:
                waiting = pending[req.stream] = deque()
            waiting.append(req)
            self._count += 1
        out: list[dict[str, Any]] = []
        while (resp := resp_parser.next_frame(resp_stream)) is not None:
            self._match(resp, out)
        while self._count > self.max_pending:  # answers lost: forget the oldest stream's requests
            stream_id = next(iter(pending))
            waiting = pending[stream_id]
            waiting.popleft()
            if not waiting:
                del pending[stream_id]
            self._count -= 1
            self.dropped_requests += 1
        self.parse_errors += req_parser.take_errors() + resp_parser.take_errors()
        return out

    def _match(self, resp: f.CqlFrame, out: list[dict[str, Any]]) -> None:
        if resp.opcode == f.EVENT:
            try:
                text = render_response(resp).text
            except BadBody:
                self.parse_errors += 1
                return
            out.append(_record(resp.ts_ns, f.REGISTER, "-", f.EVENT, text, 0))
            self.records += 1
            return
        waiting = self._pending.get(resp.stream)
        if not waiting or waiting[0].ts_ns > resp.ts_ns:
            self.unmatched_responses += 1
            return
        req = waiting.popleft()
        self._count -= 1
        if not waiting:
            del self._pending[resp.stream]
        try:
            request = render_request(req, self._prepared)
            response = render_response(resp)
        except BadBody:
            self.parse_errors += 1
            return
        if req.opcode == f.PREPARE and response.prepared_id is not None:
            if len(self._prepared) >= MAX_PREPARED:
                del self._prepared[next(iter(self._prepared))]
            self._prepared[response.prepared_id] = request.query
        out.append(_record(resp.ts_ns, req.opcode, request.text, resp.opcode, response.text, resp.ts_ns - req.ts_ns))
        self.records += 1

    def _close(self, requests: DataStream, responses: DataStream, out: list[dict[str, Any]]) -> None:
        self.dropped_requests += self._count
        self._pending.clear()
        self._count = 0
        if len(requests) or len(responses):
            self.parse_errors += 1  # a truncated frame


def _record(ts: int, req_op: int, req_body: str, resp_op: int, resp_body: str, latency: int) -> dict[str, Any]:
    return {
        "time_": ts, "req_op": req_op, "req_body": req_body, "resp_op": resp_op, "resp_body": resp_body,
        "latency": max(0, latency),
    }  # fmt: skip
