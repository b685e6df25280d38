"""HTTP/1.x request/response stitching: two DataStreams -> http_events records.

HTTP/1 has no stream ids: on one connection the n-th final response answers the n-th request
(keep-alive and pipelining alike), so matching is FIFO. Requests wait in the request stream's
``frames`` deque; responses are parsed one at a time so the parser can be told whether the pending
request is a HEAD (its response has headers but no body). Two safety rails keep a lossy capture
from poisoning a connection forever: a response older than the oldest pending request cannot be its
answer (its own request was lost) and is dropped, and the pending queue is capped.

All per-connection state lives in the DataStreams, so one stitcher may serve every connection;
its counters then add up over all of them.
"""

from __future__ import annotations

import json
from collections import deque
from typing import Any

from cluster.pem.data_stream import DataStream
from cluster.pem.protocols.http.frames import DEFAULT_BODY_CAP, HttpMessage, HttpParser, MessageKind
from cluster.pem.protocols.http.repeat_cache import RepeatCache
from cluster.pem.protocols.stitching import GuardedStitcher
from cluster.schemas import CONTENT_JSON, CONTENT_UNKNOWN

DEFAULT_MAX_PENDING = 128

_encode = json.encoder.encode_basestring  # the C string escaper json.dumps uses
# Header lists encoded recently -> their JSON (repeat_cache.py says why).
_JSON_CACHE = RepeatCache()


def headers_json(headers: list[tuple[str, str]]) -> str:
    """Headers as a JSON object like Pixie's: keys sorted case-insensitively (a multimap, so
    duplicate names repeat as duplicate keys in wire order), no whitespace."""
    if not headers:
        return "{}"
    cache = _JSON_CACHE
    if not cache.on():
        return _encode_headers(headers)
    key = tuple(headers)
    text = cache.get(key)
    if text is None:
        text = _encode_headers(headers)
        cache.put(key, text)
    return text


def _encode_headers(headers: list[tuple[str, str]]) -> str:
    ordered = sorted(headers, key=_folded_name)
    return "{" + ",".join([f"{_encode(k)}:{_encode(v)}" for k, v in ordered]) + "}"


def _folded_name(header: tuple[str, str]) -> str:
    return header[0].lower()


def _text(body: bytes) -> str:
    """Arrow strings must be valid UTF-8; a cap may also cut a character in half."""
    return body.decode("utf-8", "replace")


class HttpStitcher(GuardedStitcher):
    """Turns a connection's two streams into http_events rows (dicts with the table's columns)."""

    __slots__ = ("body_cap",)
    internal_error_is_parse_error = False  # HTTP parse errors count garbage runs, not bugs

    def __init__(self, body_cap: int = DEFAULT_BODY_CAP, max_pending: int = DEFAULT_MAX_PENDING) -> None:
        super().__init__(max_pending)
        self.body_cap = body_cap

    def _close(self, req_stream: DataStream, resp_stream: DataStream, out: list[dict[str, Any]]) -> None:
        """Finish close-delimited responses; requests still pending are counted as dropped and
        half-received messages as parse errors."""
        req_parser = HttpParser.for_stream(req_stream, MessageKind.REQUEST, self.body_cap)
        resp_parser = HttpParser.for_stream(resp_stream, MessageKind.RESPONSE, self.body_cap)
        pending: deque[HttpMessage] = req_stream.frames
        req_parser.flush_on_close(req_stream)
        last = resp_parser.flush_on_close(resp_stream)
        if last is not None:
            self._match(last, pending, out)
        self.parse_errors += req_parser.take_errors() + resp_parser.take_errors()
        self.dropped_requests += len(pending)

    # -- internals ----------------------------------------------------------------------------

    def _process(self, req_stream: DataStream, resp_stream: DataStream) -> list[dict[str, Any]]:
        req_parser = HttpParser.for_stream(req_stream, MessageKind.REQUEST, self.body_cap)
        resp_parser = HttpParser.for_stream(resp_stream, MessageKind.RESPONSE, self.body_cap)
        pending: deque[HttpMessage] = req_stream.frames
        while (req := req_parser.next_message(req_stream)) is not None:
            pending.append(req)
        out: list[dict[str, Any]] = []
        while True:
            head = bool(pending) and pending[0].method == "HEAD"
            resp = resp_parser.next_message(resp_stream, head)
            if resp is None:
                break
            req = self._match(resp, pending, out)
            if resp.status == 101 or (req is not None and req.method == "CONNECT" and resp.status < 300):
                req_parser.tunnel = resp_parser.tunnel = True  # no longer HTTP on this connection
        while len(pending) > self.max_pending:
            pending.popleft()
            self.dropped_requests += 1
        self.parse_errors += req_parser.take_errors() + resp_parser.take_errors()
        return out

    def _match(self, resp: HttpMessage, pending: deque[HttpMessage], out: list[dict[str, Any]]) -> HttpMessage | None:
        """Pair ``resp`` with the oldest pending request and append the record."""
        if 100 <= resp.status < 200 and resp.status != 101:
            return None  # interim (100 Continue, 103 Early Hints): the final response follows
        if not pending or resp.ts_ns < pending[0].ts_ns:
            self.unmatched_responses += 1
            return None
        req = pending.popleft()
        out.append(self._record(req, resp))
        self.records += 1
        return req

    @staticmethod
    def _record(req: HttpMessage, resp: HttpMessage) -> dict[str, Any]:
        return {
            "time_": resp.ts_ns,
            "major_version": 1,
            "minor_version": resp.minor_version,
            "content_type": CONTENT_JSON if "json" in resp.content_type else CONTENT_UNKNOWN,
            "req_headers": headers_json(req.headers),
            "req_method": req.method,
            "req_path": req.path,
            "req_body": _text(req.body),
            "req_body_size": req.body_size,
            "resp_headers": headers_json(resp.headers),
            "resp_status": resp.status,
            "resp_message": resp.reason,
            "resp_body": _text(resp.body),
            "resp_body_size": resp.body_size,
            "latency": max(0, resp.ts_ns - req.ts_ns),
        }
