"""Kafka stitching: a connection's two streams -> kafka_events.beta records, one per request.

Requests wait by correlation id, as in Pixie; a response takes the request with its id, and a
response whose id no request is waiting for is not taken for a frame at all (the parser counts it as
garbage and resynchronises on the next response that answers one). A broker
answers the requests of one connection in the order they were sent, so when a response arrives the
requests sent before its own and still unanswered will never be: they are dropped and counted
(Pixie keeps them until the connection closes). A produce request with ``acks`` 0 gets no response at
all: it is recorded as soon as it is seen, with an empty ``resp`` and latency 0.

Columns (Pixie's kafka_table.h): ``time_`` is the request's timestamp, ``req_cmd`` the API key,
``client_id`` the request header's, ``req_body`` and ``resp`` the JSON of :mod:`.bodies` (empty for
the APIs Pixie does not decode), ``latency`` the response's timestamp minus the request's.
A body that does not follow its layout leaves its column empty and counts a parse error; the record
is still written, since the request and its response were framed and paired.
"""

from __future__ import annotations

from typing import Any

from cluster.pem.data_stream import DataStream
from cluster.pem.protocols.kafka import apis
from cluster.pem.protocols.kafka.bodies import dumps
from cluster.pem.protocols.kafka.frames import KafkaFrame, KafkaParser, decode_request, decode_response
from cluster.pem.protocols.stitching import GuardedStitcher

DEFAULT_MAX_PENDING = 1024


class _Request:
    """What a record needs of a request waiting for its response: not its bytes (a pending produce
    would otherwise hold its record batches), so max_pending bounds memory by JSON summaries."""

    __slots__ = ("api_key", "api_version", "body", "client_id", "seq", "ts_ns")

    def __init__(self, frame: KafkaFrame, body: str, seq: int) -> None:
        self.ts_ns = frame.ts_ns
        self.api_key = frame.api_key
        self.api_version = frame.api_version
        self.client_id = frame.client_id
        self.body = body
        self.seq = seq  # send order on the connection (pipelined requests can share a timestamp)


class KafkaStitcher(GuardedStitcher):
    """One connection's stitcher; requests awaiting their response wait in ``_pending`` (send order)."""

    __slots__ = ("_pending", "_seq")

    def __init__(self, max_pending: int = DEFAULT_MAX_PENDING) -> None:
        super().__init__(max_pending)
        self._pending: dict[int, _Request] = {}
        self._seq = 0

    def _process(self, req_stream: DataStream, resp_stream: DataStream) -> list[dict[str, Any]]:
        req_parser = KafkaParser.for_stream(req_stream, True)
        resp_parser = KafkaParser.for_stream(resp_stream, False)
        pending = self._pending
        out: list[dict[str, Any]] = []
        while (frame := req_parser.next_frame(req_stream)) is not None:
            self._request(frame, out)
        while len(pending) > self.max_pending:
            del pending[next(iter(pending))]
            self.dropped_requests += 1
        while (frame := resp_parser.next_frame(resp_stream, pending)) is not None:
            req = pending.pop(frame.correlation_id)  # the parser takes only responses to pending requests
            self._drop_older(req.seq)
            out.append(self._record(req, frame))
        self.parse_errors += req_parser.take_errors() + resp_parser.take_errors()
        return out

    def _close(self, requests: DataStream, responses: DataStream, out: list[dict[str, Any]]) -> None:
        self.dropped_requests += len(self._pending)
        self._pending.clear()
        if len(requests) or len(responses):
            self.parse_errors += 1  # a truncated frame

    def _request(self, frame: KafkaFrame, out: list[dict[str, Any]]) -> None:
        obj, ok = decode_request(frame)
        if not ok:
            self.parse_errors += 1
        body = "" if obj is None else dumps(obj)
        self._seq += 1
        req = _Request(frame, body, self._seq)
        if frame.api_key == apis.PRODUCE and obj is not None and obj["acks"] == 0:
            out.append(_row(req, "", 0))  # acks=0: the broker never answers
            self.records += 1
            return
        if self._pending.pop(frame.correlation_id, None) is not None:
            self.dropped_requests += 1  # the id was reused before its response came: that one is lost
        self._pending[frame.correlation_id] = req

    def _drop_older(self, answered: int) -> None:
        """Forget requests sent before request ``answered`` (a seq) that still wait: they will not be answered."""
        pending = self._pending
        while pending:
            corr = next(iter(pending))
            if pending[corr].seq > answered:
                return
            del pending[corr]
            self.dropped_requests += 1

    def _record(self, req: _Request, resp: KafkaFrame) -> dict[str, Any]:
        obj, ok = decode_response(resp, req.api_key, req.api_version)
        if not ok:
            self.parse_errors += 1
        self.records += 1
        return _row(req, "" if obj is None else dumps(obj), resp.ts_ns - req.ts_ns)


def _row(req: _Request, resp: str, latency: int) -> dict[str, Any]:
    return {
        "time_": req.ts_ns,
        "req_cmd": req.api_key,
        "client_id": req.client_id,
        "req_body": req.body,
        "resp": resp,
        "latency": max(0, latency),
    }
