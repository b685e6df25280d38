"""Redis request/response stitching: a connection's two streams -> redis_events records.

Redis answers requests in order, pipelined or not, so the n-th reply answers the n-th request
(FIFO; Pixie pairs by timestamps, which loses pipelined requests). Three kinds of replies break the
one-to-one rule and are handled first:

* published messages (``message``/``pmessage``/``smessage`` arrays, or RESP3 pushes) answer no
  request: each becomes a record of its own with req_cmd ``PUSH PUB``, latency 0;
* (un)subscription confirmations come one per channel: the first answers the SUBSCRIBE-family
  request, the others are absorbed;
* other RESP3 pushes (client-side-caching invalidations) answer nothing and are dropped.
"""

from __future__ import annotations

from collections import deque
from typing import Any

from cluster.pem.data_stream import DataStream
from cluster.pem.protocols.redis.frames import PUBLISHED, SUBSCRIBE_REPLIES, RedisMessage, RespParser
from cluster.pem.protocols.stitching import GuardedStitcher

DEFAULT_MAX_PENDING = 1024
PUSH_PUB = "PUSH PUB"
_SUBSCRIBE_CMDS = frozenset(s.upper() for s in SUBSCRIBE_REPLIES)


class RedisStitcher(GuardedStitcher):
    """One connection's stitcher; its requests wait in the request stream's ``frames``."""

    __slots__ = (
        "_absorb",
        "_subscribed",
    )

    def __init__(self, max_pending: int = DEFAULT_MAX_PENDING) -> None:
        super().__init__(max_pending)
        self._absorb = 0  # subscription confirmations still owed to an answered request
        # Set once a subscription is confirmed: only then is a RESP2 "message" array a publication
        # (an LRANGE reply may hold the same three strings).
        self._subscribed = False

    def _close(self, requests: DataStream, responses: DataStream, out: list[dict[str, Any]]) -> None:
        self.dropped_requests += len(requests.frames)
        if len(requests) or len(responses):
            self.parse_errors += 1  # a truncated message

    def _process(self, req_stream: DataStream, resp_stream: DataStream) -> list[dict[str, Any]]:
        req_parser = RespParser.for_stream(req_stream, True)
        resp_parser = RespParser.for_stream(resp_stream, False)
        pending: deque[RedisMessage] = req_stream.frames
        while (req := req_parser.next_message(req_stream)) is not None:
            pending.append(req)
        out: list[dict[str, Any]] = []
        while (resp := resp_parser.next_message(resp_stream)) is not None:
            self._match(resp, pending, out)
        while len(pending) > self.max_pending:
            pending.popleft()
            self.dropped_requests += 1
        self.parse_errors += req_parser.take_errors() + resp_parser.take_errors()
        return out

    def _match(self, resp: RedisMessage, pending: deque[RedisMessage], out: list[dict[str, Any]]) -> None:
        kind = resp.elements[0].lower() if resp.elements else ""
        if kind in PUBLISHED and len(resp.elements or ()) >= 3 and (resp.push or self._subscribed):
            out.append(_record(resp.ts_ns, PUSH_PUB, "", resp.payload, 0))
            self.records += 1
            return
        if resp.push and kind not in SUBSCRIBE_REPLIES:
            return  # e.g. an invalidation push: answers nothing
        if kind in SUBSCRIBE_REPLIES:
            if self._absorb > 0:
                self._absorb -= 1
                return  # the 2nd..n-th confirmation of a multi-channel (un)subscribe
            if not pending or pending[0].command not in _SUBSCRIBE_CMDS:
                return  # e.g. the extra confirmations of an UNSUBSCRIBE without arguments
            self._subscribed = True
        if not pending or resp.ts_ns < pending[0].ts_ns:
            self.unmatched_responses += 1
            return
        req = pending.popleft()
        if kind in SUBSCRIBE_REPLIES:
            self._absorb = max(0, len(req.elements or ()) - 1)
        out.append(_record(resp.ts_ns, req.command, req.payload, resp.payload, resp.ts_ns - req.ts_ns))
        self.records += 1


def _record(ts: int, cmd: str, args: str, resp: str, latency: int) -> dict[str, Any]:
    return {"time_": ts, "req_cmd": cmd, "req_args": args, "resp": resp, "latency": max(0, latency)}
