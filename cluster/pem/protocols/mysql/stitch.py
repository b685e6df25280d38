"""MySQL request/response stitching: a connection's two streams -> mysql_events records.

A command is a request packet with sequence id 0; its response is the packets that follow on the
other stream. Requests wait in a FIFO; the oldest one reads what it needs from the response packets
(its handler knows the shape of its command's response) and the record is emitted when complete:

* COM_QUERY: OK (resp_status 2, empty body), ERR (3, the error message) or a text result set
  (2, ``Resultset rows = N``; several result sets joined by ``, ``);
* COM_STMT_PREPARE: PREPARE_OK plus parameter/column definitions (the statement is remembered);
  COM_STMT_EXECUTE: like a query with a binary result set; req_body is the prepared SQL with each
  ``?`` replaced by the bound value, as Pixie shows it;
* COM_QUIT, COM_STMT_CLOSE and COM_STMT_SEND_LONG_DATA have no response: resp_status 1 (None),
  latency 0, emitted at once;
* anything else: one OK/ERR/EOF packet. COM_INIT_DB/CREATE_DB/DROP_DB keep their string argument.

The handshake (greeting, login, authentication exchange) is skipped; from it the stitcher learns
whether CLIENT_DEPRECATE_EOF is on, which decides if result sets carry an EOF after the columns,
and whether the client switched to TLS (then nothing more is readable). Response packets older than
the oldest request answer a lost request and are dropped; a response that cannot be understood
drops its request and the buffered responses (counted as a parse error).
"""

from __future__ import annotations

import struct
from collections import deque
from dataclasses import dataclass
from typing import Any

from cluster.pem.data_stream import DataStream
from cluster.pem.protocols.mysql import frames as m
from cluster.pem.protocols.mysql.frames import Packet, PacketParser
from cluster.pem.protocols.stitching import GuardedStitcher, reset_streams

STATUS_UNKNOWN, STATUS_NONE, STATUS_OK, STATUS_ERR = 0, 1, 2, 3
DEFAULT_TEXT_CAP = 4096
DEFAULT_MAX_PENDING = 256
_NO_RESPONSE = frozenset((m.COM_QUIT, m.COM_STMT_CLOSE, m.COM_STMT_SEND_LONG_DATA))
_STRING_REQUESTS = frozenset((m.COM_QUERY, m.COM_STMT_PREPARE, m.COM_INIT_DB, m.COM_CREATE_DB, m.COM_DROP_DB))
_MAX_PACKETS = 100_000  # response packets buffered while waiting for a result set to finish


class _NeedMore(Exception):
    pass


@dataclass(slots=True)
class _Req:
    cmd: int
    ts_ns: int
    payload: bytes  # after the command byte


@dataclass(slots=True)
class _Prepared:
    query: str
    nparams: int
    types: list[int] | None = None


class MysqlStitcher(GuardedStitcher):
    """One connection's stitcher: handshake capabilities and prepared statements live here."""

    __slots__ = (
        "_client_caps",
        "_first_cmd_ts",
        "_prepared",
        "_seen_command",
        "_server_caps",
        "deprecate_eof",
        "text_cap",
    )  # fmt: skip

    def __init__(self, text_cap: int = DEFAULT_TEXT_CAP, max_pending: int = DEFAULT_MAX_PENDING) -> None:
        super().__init__(max_pending)
        self.text_cap = text_cap
        self.deprecate_eof: bool | None = None  # None until both sides' capabilities were seen
        self._server_caps: int | None = None
        self._client_caps: int | None = None
        self._prepared: dict[int, _Prepared] = {}
        self._seen_command = False
        self._first_cmd_ts = 0

    # -- internals ------------------------------------------------------------------------------

    def _process(self, req_stream: DataStream, resp_stream: DataStream) -> list[dict[str, Any]]:
        req_parser = PacketParser.for_stream(req_stream)
        resp_parser = PacketParser.for_stream(resp_stream)
        pending: deque[_Req] = req_stream.frames
        resps: deque[Packet] = resp_stream.frames
        out: list[dict[str, Any]] = []
        while (pkt := req_parser.next_packet(req_stream)) is not None:
            if self._on_request(pkt, pending, out):
                req_parser.tunnel = resp_parser.tunnel = True
                reset_streams(req_stream, resp_stream)
                req_stream.state, resp_stream.state = req_parser, resp_parser
                return out
        while (pkt := resp_parser.next_packet(resp_stream)) is not None:
            if not self._seen_command and pkt.seq == 0 and self._server_caps is None:
                self._server_caps = m.handshake_caps(pkt)
                self._update_caps()
            resps.append(pkt)
        self._match(pending, resps, out)
        while len(pending) > self.max_pending:
            pending.popleft()
            self.dropped_requests += 1
        return out

    def _update_caps(self) -> None:
        if self._server_caps is not None and self._client_caps is not None:
            self.deprecate_eof = bool(self._server_caps & self._client_caps & m.CLIENT_DEPRECATE_EOF)

    def _on_request(self, pkt: Packet, pending: deque[_Req], out: list[dict[str, Any]]) -> bool:
        """Queue a command (or record it at once if it has no response); True if TLS starts here."""
        if pkt.seq != 0 or not pkt.payload:
            if pkt.seq == 1 and not self._seen_command and len(pkt.payload) >= 32:  # HandshakeResponse / SSLRequest
                self._client_caps = struct.unpack_from("<I", pkt.payload, 0)[0]
                self._update_caps()
                return bool(self._client_caps & m.CLIENT_SSL) and len(pkt.payload) == 32
            return False  # authentication exchange or LOCAL INFILE data
        if not self._seen_command:
            self._seen_command = True
            self._first_cmd_ts = pkt.ts_ns
        cmd, body = pkt.payload[0], pkt.payload[1:]
        if cmd in _NO_RESPONSE:
            if cmd == m.COM_STMT_CLOSE and len(body) >= 4:
                self._prepared.pop(struct.unpack_from("<I", body, 0)[0], None)
            out.append(self._record(_Req(cmd, pkt.ts_ns, body), STATUS_NONE, "", pkt.ts_ns))
            return False
        pending.append(_Req(cmd, pkt.ts_ns, body))
        return False

    def _match(self, pending: deque[_Req], resps: deque[Packet], out: list[dict[str, Any]]) -> None:
        while resps:
            if not pending:
                self._drop_responses(resps, len(resps))
                return
            req = pending[0]
            older = 0
            while older < len(resps) and resps[older].ts_ns < req.ts_ns:
                older += 1
            self._drop_responses(resps, older)  # answers to a lost request, or the handshake
            if not resps:
                return
            try:
                used, status, body, ts = self._handle(req, resps)
            except _NeedMore:
                if len(resps) > _MAX_PACKETS or (len(pending) > 1 and resps[-1].ts_ns > pending[1].ts_ns):
                    self._give_up(pending, resps)  # the next request is answered: this one never will be
                    continue
                return
            except (ValueError, IndexError, struct.error):
                self._give_up(pending, resps)
                continue
            for _ in range(used):
                resps.popleft()
            pending.popleft()
            out.append(self._record(req, status, body, ts))

    def _drop_responses(self, resps: deque[Packet], n: int) -> None:
        """Drop the first ``n`` packets; those after the first command answered a lost request."""
        lost = False
        for _ in range(n):
            lost |= self._seen_command and resps.popleft().ts_ns >= self._first_cmd_ts
        if lost:
            self.unmatched_responses += 1

    def _give_up(self, pending: deque[_Req], resps: deque[Packet]) -> None:
        self.parse_errors += 1
        pending.popleft()
        resps.clear()

    def _handle(self, req: _Req, resps: deque[Packet]) -> tuple[int, int, str, int]:
        """(packets used, resp_status, resp_body, response timestamp); raises _NeedMore."""
        first = resps[0]
        if m.is_err(first):
            return 1, STATUS_ERR, m.err_message(first), first.ts_ns
        cmd = req.cmd
        if cmd == m.COM_QUERY or cmd == m.COM_STMT_EXECUTE:
            if m.is_ok(first):
                return 1, STATUS_OK, "", first.ts_ns
            if cmd == m.COM_QUERY and first.payload[:1] == b"\xfb":  # LOCAL INFILE: file, then OK/ERR
                if len(resps) < 2:
                    raise _NeedMore
                last = resps[1]
                status = STATUS_ERR if m.is_err(last) else STATUS_OK
                return 2, status, m.err_message(last) if status == STATUS_ERR else "", last.ts_ns
            return self._resultset(resps, binary=cmd == m.COM_STMT_EXECUTE)
        if cmd == m.COM_STMT_PREPARE:
            return self._prepare_ok(req, resps)
        if cmd == m.COM_FIELD_LIST:
            for i, p in enumerate(resps):
                if m.is_eof(p):
                    return i + 1, STATUS_OK, "", p.ts_ns
            raise _NeedMore
        if m.is_ok(first) or m.is_eof(first):
            return 1, STATUS_OK, "", first.ts_ns
        return 1, STATUS_OK, _text(first.payload, self.text_cap), first.ts_ns  # e.g. COM_STATISTICS

    def _resultset(self, resps: deque[Packet], binary: bool) -> tuple[int, int, str, int]:
        i = 0
        counts: list[str] = []
        while True:
            if i >= len(resps):
                raise _NeedMore
            head = resps[i].payload
            ncols, end = m.lenenc_int(head, 0)
            # MariaDB's CACHE_METADATA extension adds a "metadata follows" byte (0: no definitions).
            if ncols == 0 or end not in (len(head), len(head) - 1):
                raise ValueError("bad column count packet")
            defs = ncols if end == len(head) or head[end] else 0
            i += 1
            for _ in range(defs):
                if i >= len(resps):
                    raise _NeedMore
                if not m.is_column_def(resps[i]):
                    raise ValueError("expected a column definition")
                i += 1
            if defs and self.deprecate_eof is not True:
                if i >= len(resps):
                    raise _NeedMore
                if len(resps[i].payload) == 5 and m.is_eof(resps[i]):
                    i += 1
            rows = 0
            while True:
                if i >= len(resps):
                    raise _NeedMore
                p = resps[i]
                i += 1
                if m.is_err(p):
                    return i, STATUS_ERR, m.err_message(p), p.ts_ns
                if m.is_eof(p):
                    break
                if binary and p.payload[:1] != b"\x00":
                    raise ValueError("expected a binary row")
                rows += 1
            counts.append(f"Resultset rows = {rows}")
            if not m.status_flags(p) & m.SERVER_MORE_RESULTS_EXISTS:
                return i, STATUS_OK, ", ".join(counts), p.ts_ns
            if i < len(resps) and m.is_ok(resps[i]):  # the last "result" of a multi-statement: OK
                return i + 1, STATUS_OK, ", ".join(counts), resps[i].ts_ns

    def _prepare_ok(self, req: _Req, resps: deque[Packet]) -> tuple[int, int, str, int]:
        first = resps[0]
        b = first.payload
        if b[:1] != b"\x00" or len(b) < 12:
            raise ValueError("expected COM_STMT_PREPARE_OK")
        stmt_id, ncols, nparams = struct.unpack_from("<IHH", b, 1)
        i = 1
        last = first
        for count in (nparams, ncols):
            if not count:
                continue
            for _ in range(count):
                if i >= len(resps):
                    raise _NeedMore
                if not m.is_column_def(resps[i]):
                    raise ValueError("expected a definition packet")
                last = resps[i]
                i += 1
            if self.deprecate_eof is True:
                continue
            if i < len(resps) and len(resps[i].payload) == 5 and m.is_eof(resps[i]):
                last = resps[i]
                i += 1
            elif self.deprecate_eof is False:  # the EOF must follow
                if i >= len(resps):
                    raise _NeedMore
                raise ValueError("expected EOF after definitions")
        self._prepared[stmt_id] = _Prepared(req.payload.decode("utf-8", "replace"), nparams)
        return i, STATUS_OK, "", last.ts_ns

    def _execute_text(self, req: _Req) -> str:
        if len(req.payload) < 4:
            raise ValueError("short COM_STMT_EXECUTE")
        stmt_id = struct.unpack_from("<I", req.payload, 0)[0]
        stmt = self._prepared.get(stmt_id)
        if stmt is None:
            return f"<statement {stmt_id} prepared before tracing started>"
        try:
            values, types = m.execute_params(req.payload, stmt.nparams, stmt.types)
        except (ValueError, IndexError, struct.error):
            self.parse_errors += 1
            return stmt.query
        stmt.types = types
        parts = stmt.query.split("?")
        if len(parts) - 1 != len(values):
            return stmt.query
        return "".join(p + v for p, v in zip(parts, [*values, ""], strict=True))

    def _record(self, req: _Req, status: int, body: str, resp_ts: int) -> dict[str, Any]:
        if req.cmd in _STRING_REQUESTS:
            req_body = _text(req.payload, self.text_cap)
        elif req.cmd == m.COM_STMT_EXECUTE:
            req_body = self._execute_text(req)[: self.text_cap]
        else:
            req_body = ""
        self.records += 1
        return {
            "time_": resp_ts,
            "req_cmd": req.cmd,
            "req_body": req_body,
            "resp_status": status,
            "resp_body": body[: self.text_cap],
            "latency": max(0, resp_ts - req.ts_ns),
        }


def _text(b: bytes, cap: int) -> str:
    return b[:cap].decode("utf-8", "replace")
