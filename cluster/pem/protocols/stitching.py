"""What every protocol's stitcher shares: which stream carries requests for a role, the
last-resort guard that keeps one connection's bytes from taking the agent down, and the close
protocol (finish what can be finished, count what was left, forget the connection).

A protocol subclasses GuardedStitcher and writes `_process(requests, responses)`; it overrides
`_close` when it has more to finish at close than counting the requests left unanswered.
"""

from __future__ import annotations

from typing import Any, ClassVar

from cluster.pem.data_stream import DataStream
from cluster.schemas import ROLE_CLIENT, ROLE_SERVER

Record = dict[str, Any]


def request_response_streams(
    role: int, egress: DataStream, ingress: DataStream
) -> tuple[DataStream, DataStream] | None:
    """(request stream, response stream) for a trace role; None while the role is not known."""
    if role == ROLE_CLIENT:
        return egress, ingress
    if role == ROLE_SERVER:
        return ingress, egress
    return None


def reset_streams(*streams: DataStream) -> None:
    """Drop everything buffered and the parsers' state: the connection starts afresh."""
    for stream in streams:
        stream.consume(len(stream))
        stream.state = None
        stream.frames.clear()


class GuardedStitcher:
    __slots__ = (
        "dropped_requests",
        "internal_errors",
        "max_pending",
        "parse_errors",
        "records",
        "unmatched_responses",
    )

    # Whether a bug caught by the guard also counts as a parse error of the connection.
    internal_error_is_parse_error: ClassVar[bool] = True

    def __init__(self, max_pending: int) -> None:
        self.max_pending = max_pending
        self.records = 0
        self.parse_errors = 0
        self.unmatched_responses = 0
        self.dropped_requests = 0
        self.internal_errors = 0  # bugs caught by the last-resort guard; tests assert it stays 0

    def process(self, role: int, egress: DataStream, ingress: DataStream) -> list[Record]:
        """Parse what is complete on both streams and return the newly matched records."""
        streams = request_response_streams(role, egress, ingress)
        if streams is None:
            return []
        try:
            return self._process(*streams)
        except Exception:  # never let one connection's bytes take the agent down
            self.internal_errors += 1
            if self.internal_error_is_parse_error:
                self.parse_errors += 1
            reset_streams(*streams)
            return []

    def on_close(self, role: int, egress: DataStream, ingress: DataStream) -> list[Record]:
        """The connection closed: take what is complete, let the protocol finish, then forget it."""
        out = self.process(role, egress, ingress)
        streams = request_response_streams(role, egress, ingress)
        if streams is not None:
            try:
                self._close(*streams, out)
            except Exception:
                self.internal_errors += 1
            reset_streams(*streams)
        return out

    def _process(self, requests: DataStream, responses: DataStream) -> list[Record]:
        raise NotImplementedError

    def _close(self, requests: DataStream, responses: DataStream, out: list[Record]) -> None:
        """Requests still waiting for an answer at close are dropped, and counted."""
        self.dropped_requests += len(requests.frames)
