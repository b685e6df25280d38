"""HTTP/2 and gRPC stitching: a connection's two directions -> http_events rows (major_version 2).

HTTP/2 multiplexes: requests and responses interleave frame by frame and pair by stream id, not by
order. Each direction's :class:`~cluster.pem.protocols.http2.frames.H2Parser` reports frames to this
stitcher (it is the parsers' sink); a stream collects its request half (headers, body, trailers)
from the client's frames and its response half from the server's. A stream becomes a row when the
server ends it (END_STREAM on its last DATA or trailers) or either side resets it (RST_STREAM)
after the response began; a server-streaming RPC is therefore one row, written when it finishes,
as in Pixie.

Columns follow Pixie's HTTP/2 records (socket_trace_connector.cc): ``req_method``/``req_path`` from
``:method``/``:path``, ``resp_status`` from ``:status``, headers as JSON with pseudo-headers and the
trailers merged in (so ``grpc-status`` and ``grpc-message`` are in ``resp_headers``), ``content_type``
2 for ``application/grpc``, gRPC bodies in protobuf text format (grpc.py), a truncated body ending in
"... [TRUNCATED]", ``minor_version`` 0. ``resp_message`` is "OK" as in Pixie, except for a gRPC call
that ended with a non-zero grpc-status, where it carries that status and grpc-message from the
trailers ("NOT_FOUND: no such key") -- Pixie leaves this column a TODO and the status otherwise only
shows in the headers. ``resp_status`` stays the HTTP status so that scripts' ``resp_status >= 400``
keeps its meaning.

Header fields that could not be decoded (on a connection first seen mid-stream, fields naming a
dynamic-table entry sent before the capture; after lost bytes, whole blocks) are never guessed: the
fields that did decode are kept, the row's headers gain ``"<undecoded>": "<reason>"``, a missing
``:method``/``:path`` stays empty and a missing ``:status`` is -1, and the block is counted in
``parse_errors`` and ``undecoded_headers``.

State per connection lives in this stitcher (one per connection, made by the registry); the
parsers' state lives in the DataStreams, as for the other protocols.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import unquote

from cluster.pem.data_stream import DataStream
from cluster.pem.protocols.http.frames import COMPRESSED_KEEP, decode_body
from cluster.pem.protocols.http.stitch import headers_json
from cluster.pem.protocols.http2 import grpc
from cluster.pem.protocols.http2.frames import SETTINGS_HEADER_TABLE_SIZE, SETTINGS_MAX_FRAME_SIZE, H2Parser
from cluster.pem.protocols.stitching import GuardedStitcher
from cluster.schemas import CONTENT_GRPC, CONTENT_UNKNOWN

DEFAULT_BODY_CAP = 512
DEFAULT_MAX_STREAMS = 1024  # open streams tracked per connection; the oldest is dropped beyond
MAX_HELD_BYTES = 4 << 20  # headers and kept bodies of a connection's open streams; the oldest go first
UNDECODED_KEY = "<undecoded>"  # '<' cannot start a real header name, so it never collides

Record = dict[str, Any]

# gRPC status codes (grpc/doc/statuscodes.md).
GRPC_CODES = (
    "OK", "CANCELLED", "UNKNOWN", "INVALID_ARGUMENT", "DEADLINE_EXCEEDED", "NOT_FOUND", "ALREADY_EXISTS",
    "PERMISSION_DENIED", "RESOURCE_EXHAUSTED", "FAILED_PRECONDITION", "ABORTED", "OUT_OF_RANGE",
    "UNIMPLEMENTED", "INTERNAL", "UNAVAILABLE", "DATA_LOSS", "UNAUTHENTICATED",
)  # fmt: skip
_COMPRESSING = frozenset(("gzip", "x-gzip", "deflate"))


class _Half:
    """One direction of a stream: a request or a response."""

    __slots__ = ("body", "ended", "headers", "keep", "kept", "size", "trailers", "ts", "undecoded")

    def __init__(self) -> None:
        self.headers: list[tuple[str, str]] | None = None  # None until the first header block
        self.trailers: list[tuple[str, str]] = []
        self.undecoded = ""  # why a header block of this half could not be decoded
        self.ts = 0
        self.body: list[bytes] = []
        self.kept = 0
        self.keep = 0
        self.size = 0
        self.ended = False

    def header(self, name: str) -> str:
        for key, value in self.headers or ():
            if key == name:
                return value
        for key, value in self.trailers:
            if key == name:
                return value
        return ""


class _Stream:
    __slots__ = ("held", "req", "resp")

    def __init__(self) -> None:
        self.req = _Half()
        self.resp = _Half()
        self.held = 0  # bytes of headers and body kept, for the connection's budget


class Http2Stitcher(GuardedStitcher):
    """Turns one HTTP/2 connection's two streams into http_events rows."""

    __slots__ = (
        "_held",
        "_last_client_stream",
        "_out",
        "_req_parser",
        "_resets",
        "_resp_parser",
        "body_cap",
        "mid_stream",
        "streams",
        "undecoded_headers",
    )

    def __init__(self, body_cap: int = DEFAULT_BODY_CAP, max_streams: int = DEFAULT_MAX_STREAMS) -> None:
        super().__init__(max_streams)
        self.body_cap = body_cap
        self.streams: dict[int, _Stream] = {}
        self.mid_stream = False  # set once either direction turned out not to start at its first byte
        self.undecoded_headers = 0
        self._out: list[Record] = []
        self._resets: list[int] = []
        self._held = 0  # bytes held by open streams (MAX_HELD_BYTES)
        self._last_client_stream = 0  # highest client stream id opened: lower unknown ids are closed
        self._req_parser: H2Parser | None = None
        self._resp_parser: H2Parser | None = None

    # -- GuardedStitcher ----------------------------------------------------------------------

    def _process(self, requests: DataStream, responses: DataStream) -> list[Record]:
        req_p = H2Parser.for_stream(requests, True)  # client
        resp_p = H2Parser.for_stream(responses, False)  # server
        if req_p is not self._req_parser or resp_p is not self._resp_parser:
            if self._req_parser is not None:  # the streams were reset: what was open is lost
                self._drop_all()
            self._req_parser, self._resp_parser = req_p, resp_p
        out = self._out = []
        req_p.parse(requests, self)
        resp_p.parse(responses, self)
        # Resets and GOAWAYs act after both directions are parsed: a client's RST_STREAM is parsed
        # before the server's frames of this call, which may be older (the response it cancels).
        for stream_id in self._resets:
            if stream_id in self.streams:
                self._emit(stream_id, self.streams[stream_id])
        self._resets.clear()
        self.mid_stream = self.mid_stream or req_p.mid_stream or resp_p.mid_stream
        undecoded = req_p.take_undecoded() + resp_p.take_undecoded()
        self.undecoded_headers += undecoded
        self.parse_errors += req_p.take_errors() + resp_p.take_errors() + undecoded
        while len(self.streams) > self.max_pending or (self._held > MAX_HELD_BYTES and self.streams):
            self._drop(next(iter(self.streams)))
        self._out = []
        return out

    def _close(self, requests: DataStream, responses: DataStream, out: list[Record]) -> None:
        """Streams still open at close never finished: counted as dropped, no row."""
        self._drop_all()

    # -- FrameSink ----------------------------------------------------------------------------

    def on_headers(
        self,
        client: bool,
        stream_id: int,
        ts_ns: int,
        headers: list[tuple[str, str]] | None,
        error: str,
        end_stream: bool,
        promised_id: int,
    ) -> None:
        if promised_id:  # PUSH_PROMISE: the server sends the request headers of a pushed stream
            stream = self._stream(promised_id)
            self._set_headers(stream.req, ts_ns, headers, error)
            stream.req.ended = True
            if headers:
                self._hold(stream, sum(len(k) + len(v) for k, v in headers))
            return
        stream = self.streams.get(stream_id)
        if stream is None:
            if not client and stream_id & 1 and stream_id <= self._last_client_stream:
                return  # a late frame of a stream already finished or reset
            stream = self._stream(stream_id)
        half = stream.req if client else stream.resp
        if half.headers is None and not half.undecoded:
            if not client and headers is not None and _informational(headers):
                return  # 1xx: the final response headers follow
            self._set_headers(half, ts_ns, headers, error)
        elif headers:  # trailers
            half.trailers.extend(headers)
        if error and not half.undecoded:
            half.undecoded = error
        if headers:
            self._hold(stream, sum(len(k) + len(v) for k, v in headers))
        if end_stream:
            self._end(stream_id, stream, half)

    def on_data(self, client: bool, stream_id: int, ts_ns: int, buf: bytes, pos: int, n: int, end: bool) -> None:
        stream = self.streams.get(stream_id)
        if stream is None:
            return  # a stream whose headers we never saw (mid-stream, or already reset)
        half = stream.req if client else stream.resp
        if n:
            half.size += n
            room = half.keep - half.kept
            if room > 0:
                take = min(room, n)
                half.body.append(buf[pos : pos + take])
                half.kept += take
                self._hold(stream, take)
        if end:
            self._end(stream_id, stream, half)

    def on_rst(self, client: bool, stream_id: int, error_code: int) -> None:
        """The stream ends now; a row if its response had begun (acted on after both directions)."""
        self._resets.append(stream_id)

    def on_settings(self, client: bool, settings: list[tuple[int, int]]) -> None:
        """A peer's settings bound what the *other* peer may send it."""
        other = self._resp_parser if client else self._req_parser
        if other is None:
            return
        for ident, value in settings:
            if ident == SETTINGS_HEADER_TABLE_SIZE:
                other.set_max_allowed_table(value)
            elif ident == SETTINGS_MAX_FRAME_SIZE and not other.mid_stream:
                other.max_frame = max(other.max_frame, value)

    def on_goaway(self, client: bool, last_stream_id: int, error_code: int) -> None:
        """Streams the sender of GOAWAY will never process (ids above the last one it accepted, opened
        by the other side) are dropped."""
        for sid in [s for s in self.streams if s > last_stream_id and (s & 1) != client]:
            self._drop(sid)

    # -- internals ----------------------------------------------------------------------------

    def _stream(self, stream_id: int) -> _Stream:
        stream = self.streams.get(stream_id)
        if stream is None:
            stream = self.streams[stream_id] = _Stream()
            if stream_id & 1 and stream_id > self._last_client_stream:
                self._last_client_stream = stream_id
        return stream

    def _set_headers(self, half: _Half, ts_ns: int, headers: list[tuple[str, str]] | None, error: str) -> None:
        half.ts = ts_ns
        half.headers = headers
        half.undecoded = error
        encoding = ""
        for key, value in headers or ():
            if key == "content-encoding" or key == "grpc-encoding":
                encoding = value.strip().lower()
        half.keep = COMPRESSED_KEEP if encoding in _COMPRESSING else self.body_cap

    def _end(self, stream_id: int, stream: _Stream, half: _Half) -> None:
        half.ended = True
        if half is stream.resp:
            self._emit(stream_id, stream)

    def _hold(self, stream: _Stream, n: int) -> None:
        stream.held += n
        self._held += n

    def _forget(self, stream_id: int) -> _Stream:
        stream = self.streams.pop(stream_id)
        self._held -= stream.held
        return stream

    def _emit(self, stream_id: int, stream: _Stream) -> None:
        self._forget(stream_id)
        if stream.resp.headers is None and not stream.resp.undecoded:
            self.dropped_requests += 1  # ended or reset before any response header: nothing to pair
            return
        if stream.req.headers is None and not stream.req.undecoded:
            self.unmatched_responses += 1  # its request was sent before we saw the connection
            return
        self._out.append(self._record(stream))
        self.records += 1

    def _drop(self, stream_id: int) -> None:
        self._forget(stream_id)
        self.dropped_requests += 1

    def _drop_all(self) -> None:
        self.dropped_requests += len(self.streams)
        self.streams.clear()
        self._held = 0

    def _record(self, stream: _Stream) -> Record:
        req, resp = stream.req, stream.resp
        grpc_call = "application/grpc" in req.header("content-type") or "application/grpc" in resp.header(
            "content-type"
        )
        status = resp.header(":status")
        return {
            "time_": resp.ts,
            "major_version": 2,
            "minor_version": 0,
            "content_type": CONTENT_GRPC if grpc_call else CONTENT_UNKNOWN,
            "req_headers": _headers(req),
            "req_method": req.header(":method"),
            "req_path": req.header(":path"),
            "req_body": self._body(req, grpc_call),
            "req_body_size": req.size,
            "resp_headers": _headers(resp),
            "resp_status": int(status) if status.isdigit() else -1,
            "resp_message": _message(resp) if grpc_call else "OK",
            "resp_body": self._body(resp, grpc_call),
            "resp_body_size": resp.size,
            "latency": max(0, resp.ts - req.ts) if req.ts else 0,
        }

    def _body(self, half: _Half, grpc_call: bool) -> str:
        if not half.body:
            return ""
        raw = half.body[0] if len(half.body) == 1 else b"".join(half.body)
        cap = self.body_cap
        if grpc_call:
            text = grpc.body_text(raw, half.header("grpc-encoding").strip().lower(), cap)
        else:
            text = decode_body(raw, half.header("content-encoding").strip().lower(), cap).decode("utf-8", "replace")
        return text + grpc.TRUNCATED if half.size > half.kept else text


def _informational(headers: list[tuple[str, str]]) -> bool:
    for key, value in headers:
        if key == ":status":
            return len(value) == 3 and value[0] == "1"
    return False


def _headers(half: _Half) -> str:
    pairs = half.headers or []
    if half.trailers:
        pairs = pairs + half.trailers
    if half.undecoded:  # a block of this half (headers or trailers) could not be decoded
        pairs = [*pairs, (UNDECODED_KEY, half.undecoded)]
    return headers_json(pairs)


def _message(resp: _Half) -> str:
    """ "OK", or the gRPC status name and grpc-message of a failed call (see the module docstring)."""
    code = resp.header("grpc-status").strip()
    if not code or code == "0":
        return "OK"
    name = GRPC_CODES[int(code)] if code.isdigit() and int(code) < len(GRPC_CODES) else f"CODE {code}"
    text = unquote(resp.header("grpc-message"))
    return f"{name}: {text}" if text else name
