"""MongoDB stitching: a connection's two streams -> mongodb_events records.

A reply names the request it answers in ``responseTo`` (the request's ``requestID``), so pairing is
by id, not by order. Two flags change the one-to-one rule (OP_MSG spec, "moreToCome"):

* a reply with moreToCome (an exhaust cursor's getMore, a streaming hello) is followed by more
  replies, each answering the previous reply's requestID; as in Pixie, the chain is one record whose
  response documents are the chain's, in order, and whose response time is the first reply's;
* a request with moreToCome (an unacknowledged w:0 write) gets no reply: it is written at once with
  an empty response and latency 0 (Pixie keeps it waiting forever).

As in Pixie, ``time_`` is the request's timestamp, and handshakes (hello / isMaster on either side,
which a driver's monitor repeats every few seconds) are not recorded.
"""

from __future__ import annotations

from typing import Any

from cluster.pem.data_stream import DataStream
from cluster.pem.protocols.mongodb.frames import DEFAULT_BODY_CAP, MongoMessage, MongoParser
from cluster.pem.protocols.stitching import GuardedStitcher

DEFAULT_MAX_PENDING = 1024


class _Chain:
    """A request answered by a moreToCome reply, collecting the replies that follow it."""

    __slots__ = ("bodies", "head", "req", "size")

    def __init__(self, req: MongoMessage, head: MongoMessage) -> None:
        self.req = req
        self.head = head
        self.bodies = [head.body]
        self.size = len(head.body)


class MongoStitcher(GuardedStitcher):
    """One connection's stitcher; requests wait in ``_pending`` keyed by requestID."""

    __slots__ = ("_chains", "_pending", "body_cap")

    def __init__(self, body_cap: int = DEFAULT_BODY_CAP, max_pending: int = DEFAULT_MAX_PENDING) -> None:
        super().__init__(max_pending)
        self.body_cap = body_cap
        self._pending: dict[int, MongoMessage] = {}
        self._chains: dict[int, _Chain] = {}  # keyed by the requestID the next reply will answer

    def _process(self, req_stream: DataStream, resp_stream: DataStream) -> list[dict[str, Any]]:
        req_parser = MongoParser.for_stream(req_stream, True, self.body_cap)
        resp_parser = MongoParser.for_stream(resp_stream, False, self.body_cap)
        out: list[dict[str, Any]] = []
        pending = self._pending
        while (req := req_parser.next_message(req_stream)) is not None:
            if req.more_to_come:  # no reply will come
                self._emit(req, None, "", out)
                continue
            if pending.pop(req.request_id, None) is not None:
                self.dropped_requests += 1
            pending[req.request_id] = req
        while (resp := resp_parser.next_message(resp_stream)) is not None:
            self._match(resp, out)
        for table in (pending, self._chains):
            while len(table) > self.max_pending:
                del table[next(iter(table))]
                self.dropped_requests += 1
        self.parse_errors += req_parser.take_errors() + resp_parser.take_errors()
        return out

    def _match(self, resp: MongoMessage, out: list[dict[str, Any]]) -> None:
        chain = self._chains.pop(resp.response_to, None)
        if chain is not None:
            if chain.size < self.body_cap and not chain.req.handshake:
                chain.bodies.append(resp.body)
                chain.size += len(resp.body)
        else:
            req = self._pending.pop(resp.response_to, None)
            if req is None:
                self.unmatched_responses += 1
                return
            chain = _Chain(req, resp)
        if resp.more_to_come:
            self._chains[resp.request_id] = chain
            return
        self._emit(chain.req, chain.head, "".join(chain.bodies)[: self.body_cap], out)

    def _emit(self, req: MongoMessage, head: MongoMessage | None, body: str, out: list[dict[str, Any]]) -> None:
        if req.handshake or (head is not None and head.handshake):
            return
        out.append({
            "time_": req.ts_ns, "req_cmd": req.kind, "req_body": req.body,
            "resp_status": head.kind if head else "", "resp_body": body,
            "latency": max(0, head.ts_ns - req.ts_ns) if head else 0,
        })  # fmt: skip
        self.records += 1

    def _close(self, requests: DataStream, responses: DataStream, out: list[dict[str, Any]]) -> None:
        for chain in self._chains.values():  # the server closed mid-stream: keep what came
            self._emit(chain.req, chain.head, "".join(chain.bodies)[: self.body_cap], out)
        self._chains.clear()
        self.dropped_requests += len(self._pending)
        self._pending.clear()
        if len(requests) or len(responses):
            self.parse_errors += 1  # a truncated message
