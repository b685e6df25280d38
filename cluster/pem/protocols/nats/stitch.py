"""NATS stitching: a connection's two streams -> nats_events.beta records, one per message.

As in Pixie, every protocol message is a record of its own, in timestamp order across both
directions, with ``time_`` the message's timestamp: CONNECT, PUB, HPUB, SUB and UNSUB from the
client, INFO, MSG and HMSG from the server. PING and PONG are left out (Pixie's choice: keep-alives
would outnumber everything else). ``resp`` is set only when the server acknowledges: a client that
sent ``"verbose":true`` in CONNECT gets ``+OK`` (or ``-ERR``) after each CONNECT, PUB, HPUB, SUB and
UNSUB, so in verbose mode those wait for their acknowledgement (FIFO) and carry it; otherwise they
are written at once with an empty ``resp``. An ``-ERR`` that answers nothing pending (a
non-verbose client's permission or payload violation, a stale connection) is a record of its own,
``cmd`` ``-ERR`` with body ``{"error": text}``: Pixie drops it, but an error is worth a row.
"""

from __future__ import annotations

from collections import deque
from typing import Any

from cluster.pem.data_stream import DataStream
from cluster.pem.protocols.nats.frames import DEFAULT_BODY_CAP, NatsMessage, NatsParser, dumps
from cluster.pem.protocols.stitching import GuardedStitcher

DEFAULT_MAX_PENDING = 1024
ACKED = frozenset(("CONNECT", "PUB", "HPUB", "SUB", "UNSUB"))  # what a verbose server answers +OK to
_SKIPPED = frozenset(("PING", "PONG"))


class NatsStitcher(GuardedStitcher):
    """One connection's stitcher; messages awaiting a verbose acknowledgement wait in ``_awaiting``."""

    __slots__ = ("_awaiting", "_verbose", "body_cap")

    def __init__(self, body_cap: int = DEFAULT_BODY_CAP, max_pending: int = DEFAULT_MAX_PENDING) -> None:
        super().__init__(max_pending)
        self.body_cap = body_cap
        self._verbose = False  # from CONNECT; a connection first seen mid-stream is taken as not verbose
        self._awaiting: deque[NatsMessage] = deque()

    def _process(self, req_stream: DataStream, resp_stream: DataStream) -> list[dict[str, Any]]:
        client_parser = NatsParser.for_stream(req_stream, self.body_cap)
        server_parser = NatsParser.for_stream(resp_stream, self.body_cap)
        client = _drain(client_parser, req_stream)
        server = _drain(server_parser, resp_stream)
        out: list[dict[str, Any]] = []
        i = j = 0
        while i < len(client) or j < len(server):
            if j >= len(server) or (i < len(client) and client[i].ts_ns <= server[j].ts_ns):
                self._from_client(client[i], out)
                i += 1
            else:
                self._from_server(server[j], out)
                j += 1
        while len(self._awaiting) > self.max_pending:  # never acknowledged: written without a reply
            self._emit(self._awaiting.popleft(), "", out)
        self.parse_errors += client_parser.take_errors() + server_parser.take_errors()
        return out

    def _close(self, requests: DataStream, responses: DataStream, out: list[dict[str, Any]]) -> None:
        while self._awaiting:
            self._emit(self._awaiting.popleft(), "", out)
        if len(requests) or len(responses):
            self.parse_errors += 1  # a truncated message

    def _from_client(self, msg: NatsMessage, out: list[dict[str, Any]]) -> None:
        if msg.cmd == "CONNECT":
            self._verbose = msg.verbose
        if msg.cmd in _SKIPPED:
            return
        if self._verbose and msg.cmd in ACKED:
            self._awaiting.append(msg)
        else:
            self._emit(msg, "", out)

    def _from_server(self, msg: NatsMessage, out: list[dict[str, Any]]) -> None:
        cmd = msg.cmd
        if cmd in ("+OK", "-ERR"):
            if self._awaiting and self._awaiting[0].ts_ns <= msg.ts_ns:
                self._emit(self._awaiting.popleft(), cmd, out)
            elif cmd == "-ERR":
                error = msg.body.strip("'")
                self._emit(NatsMessage(msg.ts_ns, cmd, dumps({"error": error})), "", out)
            else:
                self.unmatched_responses += 1
            return
        if cmd not in _SKIPPED:
            self._emit(msg, "", out)

    def _emit(self, msg: NatsMessage, resp: str, out: list[dict[str, Any]]) -> None:
        out.append({"time_": msg.ts_ns, "cmd": msg.cmd, "body": msg.body, "resp": resp})
        self.records += 1


def _drain(parser: NatsParser, stream: DataStream) -> list[NatsMessage]:
    out = []
    while (msg := parser.next_message(stream)) is not None:
        out.append(msg)
    return out
