"""PostgreSQL request/response stitching: a connection's two streams -> pgsql_events records.

The backend answers frontend messages in order, so requests wait in a FIFO and each response message
is offered to the oldest one, which says whether it completes it:

* Query (simple protocol): everything up to ReadyForQuery; each statement's result is rendered
  as Pixie does (``col,col\\nrow\\nrow\\nTAG`` or ``ERROR RESPONSE [...]``), several joined by newline;
* Parse -> ParseComplete (``PARSE COMPLETE``), Bind -> BindComplete (``BIND COMPLETE``),
  Describe -> [ParameterDescription] RowDescription/NoData (``ROW DESCRIPTION [...]``),
  Execute -> DataRow* CommandComplete/EmptyQuery/PortalSuspended, with req
  ``query=[<statement>] params=[<bound values>]``;
* Sync -> ReadyForQuery and Close -> CloseComplete are consumed without a record, as in Pixie;
  CopyData/CopyDone/CopyFail/Flush/Terminate/password messages expect nothing and are not queued.

After an error in the extended protocol the backend ignores messages up to the next Sync; their
requests are dropped. Asynchronous backend messages (ParameterStatus, Notice, Notification,
authentication, BackendKeyData) are skipped. Response text is capped at ``text_cap`` characters.
"""

from __future__ import annotations

import struct
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from cluster.pem.data_stream import DataStream
from cluster.pem.protocols.pgsql import frames as f
from cluster.pem.protocols.pgsql.frames import PgMessage, PgParser
from cluster.pem.protocols.stitching import GuardedStitcher

DEFAULT_TEXT_CAP = 4096
DEFAULT_MAX_PENDING = 1024
_ASYNC = frozenset("SNARKv")  # ParameterStatus, Notice, Notification, Auth, BackendKeyData, NegotiateVersion
_NO_REPLY = frozenset("dcfHXpF")  # F (FunctionCall) is answered, but Pixie records nothing either
_SILENT = frozenset("SC\x00")  # answered, but no record (Sync, Close, StartupMessage)


@dataclass(slots=True)
class _Req:
    tag: str
    ts_ns: int
    text: str = ""
    # Response being accumulated.
    parts: list[str] = field(default_factory=list)
    columns: list[str] = field(default_factory=list)
    rows: list[str] = field(default_factory=list)
    size: int = 0
    resp_ts: int = 0
    describe_kind: str = ""
    portal: str = ""
    error: bool = False


class PgsqlStitcher(GuardedStitcher):
    """One connection's stitcher: prepared statements and bound portals live here."""

    __slots__ = (
        "_bound",
        "_param_types",
        "_portal_columns",
        "_skip_to_sync",
        "_statements",
        "text_cap",
    )  # fmt: skip

    def __init__(self, text_cap: int = DEFAULT_TEXT_CAP, max_pending: int = DEFAULT_MAX_PENDING) -> None:
        super().__init__(max_pending)
        self.text_cap = text_cap
        self._statements: dict[str, str] = {}  # prepared statement name -> query ("" = unnamed)
        self._param_types: dict[str, list[int]] = {}  # prepared statement name -> parameter type OIDs
        self._bound: dict[str, tuple[str, list[str]]] = {}  # portal -> (query, parameter values)
        self._portal_columns: dict[str, list[str]] = {}  # portal -> column names from Describe
        self._skip_to_sync = False

    def _close(self, requests: DataStream, responses: DataStream, out: list[dict[str, Any]]) -> None:
        self.dropped_requests += sum(1 for r in requests.frames if r.tag not in _SILENT)

    # -- internals ------------------------------------------------------------------------------

    def _process(self, req_stream: DataStream, resp_stream: DataStream) -> list[dict[str, Any]]:
        req_parser = PgParser.for_stream(req_stream, True)
        resp_parser = PgParser.for_stream(resp_stream, False)
        pending: deque[_Req] = req_stream.frames
        while (msg := req_parser.next_message(req_stream)) is not None:
            self._enqueue(msg, pending)
        if req_parser.ssl_requested:
            req_parser.ssl_requested = False
            resp_parser.ssl_expected = True
        out: list[dict[str, Any]] = []
        while (msg := resp_parser.next_message(resp_stream)) is not None:
            if msg.tag not in _ASYNC:
                self._offer(msg, pending, out)
        if resp_parser.tunnel:
            req_parser.tunnel = True
        while len(pending) > self.max_pending:
            pending.popleft()
            self.dropped_requests += 1
        self.parse_errors += req_parser.take_errors() + resp_parser.take_errors()
        return out

    def _enqueue(self, msg: PgMessage, pending: deque[_Req]) -> None:
        tag = msg.tag
        if tag in _NO_REPLY:
            return
        if self._skip_to_sync and tag not in ("S", "Q", f.STARTUP):
            self.dropped_requests += 1
            return
        if tag == "S":
            self._skip_to_sync = False
        req = _Req(tag, msg.ts_ns)
        try:
            if tag == "Q":
                req.text = f.query_text(msg.payload)
            elif tag == "P":
                name, query, oids = f.parse_parse(msg.payload)
                req.text, req.portal = query, name  # portal field holds the statement name here
                # A Bind in the same batch refers to it before ParseComplete arrives.
                self._statements[name] = query
                self._param_types[name] = oids
            elif tag == "B":
                bind = f.parse_bind(msg.payload)
                oids = self._param_types.get(bind.statement, [])
                req.text = bind.render(oids)
                req.portal = bind.portal
                self._bound[bind.portal] = (self._statements.get(bind.statement, ""), bind.param_values(oids))
            elif tag == "D":
                req.describe_kind, req.portal = f.parse_describe(msg.payload)
                req.text = f"type={req.describe_kind} name={req.portal}"
            elif tag == "E":
                req.portal, _ = f.cstring(msg.payload, 0)
                query, params = self._bound.get(req.portal, ("", []))
                req.text = f"query=[{query}] params=[{', '.join(params)}]"
        except (ValueError, IndexError, struct.error):
            self.parse_errors += 1
            return
        pending.append(req)

    def _offer(self, msg: PgMessage, pending: deque[_Req], out: list[dict[str, Any]]) -> None:
        while pending:
            req = pending[0]
            if msg.ts_ns < req.ts_ns:
                self.unmatched_responses += 1  # its request was lost
                return
            try:
                done = self._feed(req, msg)
            except (ValueError, IndexError, struct.error):
                self.parse_errors += 1
                pending.popleft()
                return
            if done is None:  # this message does not belong to the oldest request
                pending.popleft()
                if msg.tag == "Z":  # the backend finished a batch whose answers we partly lost
                    self.dropped_requests += 1
                    while pending and pending[0].tag not in "SQ":
                        pending.popleft()
                        self.dropped_requests += 1
                    continue
                self.parse_errors += 1
                continue
            if done:
                pending.popleft()
                if req.tag not in _SILENT:
                    out.append(self._record(req))
                    self.records += 1
                if req.error and req.tag in "PBDE":
                    while pending and pending[0].tag not in "SQ":
                        pending.popleft()
                        self.dropped_requests += 1
                    if not pending or pending[0].tag != "S":
                        self._skip_to_sync = True
            return
        if msg.tag not in "Z":
            self.unmatched_responses += 1

    def _feed(self, req: _Req, msg: PgMessage) -> bool | None:
        """Offer one response message: True = request complete, False = more to come, None = not its."""
        tag, t = msg.tag, req.tag
        if t == "S":
            return True if tag == "Z" else None
        if t == f.STARTUP:  # authentication and session set-up end with the first ReadyForQuery
            return tag == "Z"
        if t == "C":
            return True if tag == "3" else None
        if tag == "E":
            req.parts.append(self._cap(f.parse_error(msg.payload)))
            req.resp_ts = msg.ts_ns
            req.error = True
            return t != "Q"  # a simple query still ends with ReadyForQuery
        if t == "Q":
            if tag == "Z":
                req.resp_ts = req.resp_ts or msg.ts_ns
                return True
            return self._result_message(req, msg, allow_row_desc=True)
        if t == "P":
            if tag != "1":
                return None
            self._statements[req.portal] = req.text
            return self._finish(req, msg, "PARSE COMPLETE")
        if t == "B":
            return self._finish(req, msg, "BIND COMPLETE") if tag == "2" else None
        if t == "D":
            if tag == "t" and req.describe_kind == "kStatement":
                return False
            if tag == "T":
                fields = f.parse_row_desc(msg.payload)
                if req.describe_kind == "kPortal":
                    self._portal_columns[req.portal] = [n for n, _ in fields]
                return self._finish(req, msg, "ROW DESCRIPTION [" + "] [".join(d for _, d in fields) + "]")
            if tag == "n":
                self._portal_columns.pop(req.portal, None)
                return self._finish(req, msg, "ROW DESCRIPTION []")
            return None
        if t == "E":
            if not req.columns and req.portal in self._portal_columns:
                req.columns = self._portal_columns[req.portal]
            if tag == "s":
                self._end_result(req, "PORTAL SUSPENDED")
                req.resp_ts = msg.ts_ns
                return True
            return self._result_message(req, msg, allow_row_desc=False)
        return None

    def _result_message(self, req: _Req, msg: PgMessage, allow_row_desc: bool) -> bool | None:
        tag = msg.tag
        if tag == "T" and allow_row_desc:
            req.columns = [n for n, _ in f.parse_row_desc(msg.payload)]
            req.rows = []
            return False
        if tag == "D":
            if req.size < self.text_cap:
                row = f.parse_data_row(msg.payload)
                req.rows.append(row)
                req.size += len(row) + 1
            return False
        if tag in "CI":
            cmd_tag = f.query_text(msg.payload) if tag == "C" else ""
            self._end_result(req, cmd_tag)
            req.resp_ts = msg.ts_ns
            return req.tag != "Q"
        if tag in "GHWdc" and req.tag == "Q":  # COPY sub-protocol: wait for CommandComplete
            return False
        return None

    def _end_result(self, req: _Req, cmd_tag: str) -> None:
        text = ""
        if req.rows:
            if req.columns:
                text = ",".join(req.columns) + "\n"
            text += "\n".join(req.rows) + "\n"
        req.parts.append(self._cap(text + cmd_tag))
        req.rows = []
        req.size = 0

    def _finish(self, req: _Req, msg: PgMessage, text: str) -> bool:
        req.parts.append(text)
        req.resp_ts = msg.ts_ns
        return True

    def _cap(self, text: str) -> str:
        return text if len(text) <= self.text_cap else text[: self.text_cap]

    def _record(self, req: _Req) -> dict[str, Any]:
        return {
            "time_": req.resp_ts,
            "req_cmd": f.REQ_NAMES.get(req.tag, "Unknown"),
            "req": self._cap(req.text),
            "resp": self._cap("\n".join(req.parts)),
            "latency": max(0, req.resp_ts - req.ts_ns),
        }
