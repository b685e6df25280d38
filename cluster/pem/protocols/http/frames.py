"""HTTP/1.x message framing: bytes of one direction -> :class:`HttpMessage` objects.

Written by hand (no third-party parser) because the input is sniffed traffic, not a conversation
we take part in: a stream may start mid-message, lose bytes, carry garbage or switch protocols, and
every message may arrive split at any byte. The parser therefore

* never raises on bad input: it counts a parse error and searches for the next plausible message
  start (Pixie's FindFrameBoundary idea), or drops what cannot be a message;
* waits (consuming nothing) while a header block is incomplete, so a split costs one re-parse of a
  short header, but consumes bodies as they arrive, keeping at most ``body_cap`` bytes: a 100 MB
  download neither grows the stream buffer nor gets copied;
* works with ``bytes.find``/``partition``/``split`` on whole blocks, never a Python loop per byte.

A :class:`HttpParser` holds the state of one stream (a half-received body) and lives in
``DataStream.state``; the stitcher calls :meth:`HttpParser.next_message` one message at a time so it
can say whether the next response answers a HEAD request (which has headers but no body).
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass, field

from cluster.pem.data_stream import DataStream
from cluster.pem.protocols.http.infer import (
    MAX_METHOD_SPAN,
    METHOD_NAMES,
    METHODS,
    REQUEST_STARTS,
    RESPONSE_START,
    MessageKind,
)
from cluster.pem.protocols.http.repeat_cache import RepeatCache
from cluster.pem.protocols.stream_parser import StreamParser

DEFAULT_BODY_CAP = 512  # Pixie's http body limit
MAX_HEADER_BYTES = 64 * 1024  # a larger header block is treated as garbage
MAX_CHUNK_LINE = 4096  # chunk-size line including extensions
COMPRESSED_KEEP = 64 * 1024  # compressed bytes kept so that decoding can fill the cap
MAX_LINE_KEEP = 8192  # a partial request line kept across a resync

# Body framing modes.
NO_BODY, LENGTH, CHUNKED, UNTIL_CLOSE = 0, 1, 2, 3
# Progress of a feed / head parse.
_DONE, _MORE, _BAD = 0, 1, 2
# Where we are inside a chunked body.
_C_SIZE, _C_DATA, _C_CRLF, _C_TRAILER, _C_END = 0, 1, 2, 3, 4

_HEX = b"0123456789abcdefABCDEF"
_DIGITS = "0123456789"
_WS = " \t"
_H_CONTENT_LENGTH, _H_TRANSFER_ENCODING, _H_CONTENT_ENCODING, _H_CONTENT_TYPE = range(4)
_SPECIAL_HEADERS = {
    "content-length": _H_CONTENT_LENGTH,
    "transfer-encoding": _H_TRANSFER_ENCODING,
    "content-encoding": _H_CONTENT_ENCODING,
    "content-type": _H_CONTENT_TYPE,
}
_COMPRESSED = frozenset(("gzip", "x-gzip", "deflate"))
_SPECIAL_LENGTHS = frozenset(len(name) for name in _SPECIAL_HEADERS)  # skips lower() for most
_BAD_NAME_END = ("", " ", "\t")
# Every non-empty prefix of a start token: a buffer tail in here may be a message's first bytes.
_REQUEST_PREFIXES = frozenset(t[:i] for t in REQUEST_STARTS for i in range(1, len(t) + 1))
_RESPONSE_PREFIXES = frozenset(RESPONSE_START[:i] for i in range(1, len(RESPONSE_START) + 1))
# Header blocks parsed recently -> what the parse found, per message kind (repeat_cache.py says why).
_HEAD_CACHE_BLOCK_MAX = 2048  # longer blocks are rarely repeated byte for byte: not cached
_REQUEST = MessageKind.REQUEST  # enum attribute lookups are slow on the hot path
_RESPONSE = MessageKind.RESPONSE
_HEAD_CACHES = {_REQUEST: RepeatCache(), _RESPONSE: RepeatCache()}


@dataclass(slots=True)
class HttpMessage:
    """One parsed request or response. ``body`` is capped and decoded; ``body_size`` is the full
    size on the wire after de-chunking (before decompression), as Pixie reports it."""

    kind: MessageKind
    ts_ns: int = 0  # timestamp of the chunk holding the message's first byte
    minor_version: int = 1
    method: str = ""
    path: str = ""
    status: int = 0
    reason: str = ""
    headers: list[tuple[str, str]] = field(default_factory=list)  # wire order and case
    body: bytes = b""
    body_size: int = 0
    content_type: str = ""  # first Content-Type, lower-cased (the stitcher's JSON flag)
    content_encoding: str = ""  # lower-cased Content-Encoding

    def header(self, name: str) -> str | None:
        """First value of a header, matched case-insensitively."""
        lname = name.lower()
        for key, value in self.headers:
            if key.lower() == lname:
                return value
        return None


class _Body:
    """A message whose headers are parsed and whose body is still arriving."""

    __slots__ = ("chunk_state", "keep", "kept", "mode", "msg", "parts", "remaining", "size")

    def __init__(self, msg: HttpMessage, mode: int, length: int, keep: int) -> None:
        self.msg = msg
        self.mode = mode
        self.remaining = length  # LENGTH: body bytes left; CHUNKED: bytes left in this chunk
        self.chunk_state = _C_SIZE
        self.keep = keep
        self.kept = 0
        self.parts: list[bytes] = []
        self.size = 0

    def feed(self, buf: bytes, pos: int, end: int) -> tuple[int, int]:
        """Take what is available of the body from ``buf[pos:end]``: (new position, progress)."""
        if self.mode == LENGTH:
            take = min(self.remaining, end - pos)
            self._capture(buf, pos, take)
            self.remaining -= take
            return pos + take, (_MORE if self.remaining else _DONE)
        if self.mode == UNTIL_CLOSE:
            self._capture(buf, pos, end - pos)
            return end, _MORE
        return self._feed_chunked(buf, pos, end)

    def raw(self) -> bytes:
        return self.parts[0] if len(self.parts) == 1 else b"".join(self.parts)

    def _capture(self, buf: bytes, pos: int, n: int) -> None:
        """Count ``n`` body bytes and keep a copy of those that fit under the cap."""
        self.size += n
        room = self.keep - self.kept
        if room > 0 and n > 0:
            k = min(room, n)
            self.parts.append(buf[pos : pos + k])
            self.kept += k

    def _feed_chunked(self, buf: bytes, pos: int, end: int) -> tuple[int, int]:
        while True:
            state = self.chunk_state
            if state == _C_DATA:
                take = min(self.remaining, end - pos)
                self._capture(buf, pos, take)
                self.remaining -= take
                pos += take
                if self.remaining:
                    return pos, _MORE
                self.chunk_state = _C_CRLF
            elif state == _C_SIZE:
                pos, progress = self._chunk_size(buf, pos, end)
                if progress != _DONE:
                    return pos, progress
            elif state == _C_CRLF:
                if buf.startswith(b"\r\n", pos, end):
                    pos += 2
                elif buf.startswith(b"\n", pos, end):
                    pos += 1
                elif end == pos or (end - pos == 1 and buf[pos] == 13):
                    return pos, _MORE
                else:
                    return pos, _BAD
                self.chunk_state = _C_SIZE
            else:
                pos, progress = self._trailer_line(buf, pos, end)
                if progress != _DONE:
                    return pos, progress
                if self.chunk_state == _C_END:
                    return pos, _DONE

    def _chunk_size(self, buf: bytes, pos: int, end: int) -> tuple[int, int]:
        """Parse ``hex-size[;ext...]CRLF``; _DONE means the line was read, not the body."""
        nl = buf.find(b"\n", pos, min(end, pos + MAX_CHUNK_LINE))
        if nl < 0:
            return pos, (_BAD if end - pos >= MAX_CHUNK_LINE else _MORE)
        line = buf[pos:nl]
        semi = line.find(b";")
        if semi >= 0:
            line = line[:semi]
        line = line.strip()
        if not line or len(line) > 15 or line.translate(None, _HEX):
            return pos, _BAD
        size = int(line, 16)
        if size:
            self.remaining = size
            self.chunk_state = _C_DATA
        else:
            self.chunk_state = _C_TRAILER
        return nl + 1, _DONE

    def _trailer_line(self, buf: bytes, pos: int, end: int) -> tuple[int, int]:
        """Skip one trailer field (Pixie drops trailers too); the empty line ends the message."""
        nl = buf.find(b"\n", pos, min(end, pos + MAX_HEADER_BYTES))
        if nl < 0:
            return pos, (_BAD if end - pos >= MAX_HEADER_BYTES else _MORE)
        if nl == pos or (nl == pos + 1 and buf[pos] == 13):
            self.chunk_state = _C_END
        return nl + 1, _DONE


def decode_body(raw: bytes, encoding: str, cap: int) -> bytes:
    """Decompress at most ``cap`` bytes of a gzip/deflate body; other encodings pass through.

    ``max_length`` bounds the work: zlib stops once the cap is filled, whatever the ratio.
    """
    if encoding not in _COMPRESSED:
        return raw[:cap]
    if cap <= 0 or not raw:
        return b""
    if encoding == "deflate":
        # "deflate" is meant to be zlib-wrapped but some servers send raw deflate.
        zlib_wrapped = len(raw) >= 2 and raw[0] & 0x0F == 8 and ((raw[0] << 8) | raw[1]) % 31 == 0
        wbits = 15 if zlib_wrapped else -15
    else:
        wbits = 47  # gzip, or zlib mislabelled as gzip: auto-detected
    try:
        return zlib.decompressobj(wbits).decompress(raw, cap)
    except zlib.error:
        return b"<Failed to gunzip body>" if wbits == 47 else b"<Failed to inflate body>"


class HttpParser(StreamParser):
    """Incremental parser for one direction; all state between calls lives here."""

    __slots__ = ("_body", "_head_cache", "_in_garbage", "body_cap", "kind", "tunnel")

    def __init__(self, kind: MessageKind, body_cap: int = DEFAULT_BODY_CAP) -> None:
        self.kind = kind
        self.body_cap = body_cap
        self.errors = 0
        # Once a connection is upgraded (101, CONNECT) its bytes are no longer HTTP: skip them.
        self.tunnel = False
        self._body: _Body | None = None
        self._in_garbage = False  # count one error per run of garbage, not one per call
        self._head_cache = _HEAD_CACHES[kind]

    @property
    def busy(self) -> bool:
        """True while a message body is half received."""
        return self._body is not None

    def next_message(self, stream: DataStream, head_response: bool = False) -> HttpMessage | None:
        """Parse and consume the next complete message, or return None if there is none yet.

        ``head_response`` says that the next response answers a HEAD request, so it has no body
        whatever its Content-Length says.
        """
        if stream.needs_resync:
            stream.needs_resync = False
            if self._body is not None:
                self._body = None
                self._error()
        if self.tunnel:
            stream.consume(len(stream))
            return None
        buf, start = stream.view()
        end = len(buf)
        pos = start
        while True:
            body = self._body
            if body is not None:
                pos, progress = body.feed(buf, pos, end)
                if progress == _BAD:
                    self._body = None
                    self._error()
                    pos = self._resync(buf, pos, end)
                    continue
                stream.consume(pos - start)
                if progress == _MORE:
                    return None
                self._body = None
                return self._finish(body)
            if pos >= end:
                stream.consume(pos - start)
                return None
            progress, msg, body_pos, mode, length = self._parse_head(buf, pos, end, head_response)
            if progress == _MORE:
                stream.consume(pos - start)
                return None
            if progress == _BAD or msg is None:
                self._error()
                pos = self._resync(buf, pos + 1, end)
                continue
            msg.ts_ns = stream.ts_at(pos - start)
            self._in_garbage = False
            if mode == NO_BODY:
                stream.consume(body_pos - start)
                return msg
            keep = self._keep(msg)
            if mode == LENGTH and end - body_pos >= length:  # fast path: body already here
                msg.body_size = length
                msg.body = self._decode(buf[body_pos : body_pos + min(length, keep)], msg)
                stream.consume(body_pos + length - start)
                return msg
            self._body = _Body(msg, mode, length, keep)
            pos = body_pos

    def flush_on_close(self, stream: DataStream) -> HttpMessage | None:
        """The connection closed: finish a close-delimited body; anything else half-read is lost.

        Call :meth:`next_message` until it returns None first, so complete messages are taken.
        """
        body = self._body
        self._body = None
        if body is not None and body.mode == UNTIL_CLOSE:
            buf, start = stream.view()
            body.feed(buf, start, len(buf))
            stream.consume(len(stream))
            return self._finish(body)
        if (body is not None or len(stream)) and not self.tunnel:
            self.errors += 1  # truncated message
        stream.consume(len(stream))
        return None

    # -- header block -------------------------------------------------------------------------

    def _parse_head(
        self, buf: bytes, pos: int, end: int, head_response: bool
    ) -> tuple[int, HttpMessage | None, int, int, int]:
        """Parse start line and headers at ``pos``: (progress, message, body start, mode, length)."""
        limit = pos + MAX_HEADER_BYTES + 4
        hdr_end = buf.find(b"\r\n\r\n", pos, limit)
        if hdr_end > pos + 2048 and self._start_state(buf, pos, end) != _DONE:
            return _BAD, None, 0, 0, 0  # noise ahead of a far blank line: don't decode it all
        if hdr_end >= 0:
            block = buf[pos:hdr_end]
            if len(block) <= _HEAD_CACHE_BLOCK_MAX:
                return self._parse_block_cached(block, hdr_end + 4, head_response)
            lines = block.decode("utf-8", "replace").split("\r\n")
            body_pos = hdr_end + 4
        else:
            hdr_end = buf.find(b"\n\n", pos, limit)  # bare-LF senders (scripts, old servers)
            if hdr_end < 0:
                return self._incomplete_head(buf, pos, end), None, 0, 0, 0
            text = buf[pos:hdr_end].decode("utf-8", "replace")
            lines = [line.rstrip("\r") for line in text.split("\n")]
            body_pos = hdr_end + 2
        msg = self._start_line(lines[0])
        if msg is None:
            return _BAD, None, 0, 0, 0
        fields = _read_headers(lines, msg)
        if fields is None:
            return _BAD, None, 0, 0, 0
        mode, length = _framing(msg, fields[0], fields[1], head_response)
        return _DONE, msg, body_pos, mode, length

    def _parse_block_cached(
        self, block: bytes, body_pos: int, head_response: bool
    ) -> tuple[int, HttpMessage | None, int, int, int]:
        """_parse_head for a CRLF header block, through the cache of recent blocks (RepeatCache)."""
        cache = self._head_cache
        use = cache.on()
        hit = cache.get(block) if use else None
        if hit is None:
            lines = block.decode("utf-8", "replace").split("\r\n")
            msg = self._start_line(lines[0])
            fields = None if msg is None else _read_headers(lines, msg)
            if msg is None or fields is None:
                return _BAD, None, 0, 0, 0
            content_length, transfer_encoding = fields
            if use:
                cache.put(block, (msg.minor_version, msg.method, msg.path, msg.status, msg.reason,
                                  tuple(msg.headers), msg.content_type, msg.content_encoding,
                                  content_length, transfer_encoding))  # fmt: skip
        else:
            version, method, path, status, reason, headers, ctype, cenc, content_length, transfer_encoding = hit
            msg = HttpMessage(self.kind, 0, version, method, path, status, reason, list(headers), b"", 0, ctype, cenc)
        mode, length = _framing(msg, content_length, transfer_encoding, head_response)
        return _DONE, msg, body_pos, mode, length

    def _start_state(self, buf: bytes, pos: int, end: int) -> int:
        """Cheap check of the first bytes: _DONE plausible, _MORE too short to say, _BAD garbage."""
        if self.kind is _RESPONSE:
            if end - pos >= 7:
                return _DONE if buf.startswith(RESPONSE_START, pos) else _BAD
            return _MORE if RESPONSE_START.startswith(buf[pos:end]) else _BAD
        sp = buf.find(b" ", pos, pos + MAX_METHOD_SPAN)
        if sp >= 0:
            return _DONE if buf[pos:sp] in METHODS else _BAD
        if end - pos >= MAX_METHOD_SPAN:
            return _BAD
        head = buf[pos:end]
        return _MORE if head in _REQUEST_PREFIXES else _BAD

    def _incomplete_head(self, buf: bytes, pos: int, end: int) -> int:
        """No blank line yet: wait, unless the block is too big or its first line is already bad."""
        start_ok = self._start_state(buf, pos, end)
        if start_ok != _DONE:
            return start_ok
        if end - pos > MAX_HEADER_BYTES + 4:
            return _BAD
        nl = buf.find(b"\n", pos, end)
        if nl >= 0 and self._start_line(buf[pos:nl].rstrip(b"\r").decode("utf-8", "replace")) is None:
            return _BAD
        return _MORE

    def _start_line(self, line: str) -> HttpMessage | None:
        if self.kind is _REQUEST:
            return _request_line(line)
        return _status_line(line)

    # -- bodies -------------------------------------------------------------------------------

    def _keep(self, msg: HttpMessage) -> int:
        """Raw bytes worth keeping: the cap, or more for compressed bodies (decoded to the cap)."""
        if msg.content_encoding in _COMPRESSED:
            return max(COMPRESSED_KEEP, self.body_cap)
        return self.body_cap

    def _decode(self, raw: bytes, msg: HttpMessage) -> bytes:
        if msg.content_encoding:
            return decode_body(raw, msg.content_encoding, self.body_cap)
        return raw

    def _finish(self, body: _Body) -> HttpMessage:
        msg = body.msg
        msg.body_size = body.size
        msg.body = self._decode(body.raw(), msg)
        return msg

    # -- resynchronisation --------------------------------------------------------------------

    def _error(self) -> None:
        if not self._in_garbage:
            self.errors += 1
            self._in_garbage = True

    def _resync(self, buf: bytes, pos: int, end: int) -> int:
        """Position of the next plausible message start at or after ``pos``, or of a tail that
        may be the beginning of one, or ``end`` (drop everything)."""
        if self.kind is _REQUEST:
            return _resync_request(buf, pos, end)
        return _resync_response(buf, pos, end)


def _request_line(line: str) -> HttpMessage | None:
    """``METHOD SP target SP HTTP/1.x`` -> message, or None if it is not one.

    Strict about spaces in the target so that a stray method token in front of a real request
    line (``PUT GET / HTTP/1.1``) is rejected and resync finds the real one."""
    method, _, rest = line.partition(" ")
    target, _, version = rest.rpartition(" ")
    if (
        method not in METHOD_NAMES
        or not target
        or " " in target
        or len(version) != 8
        or not version.startswith("HTTP/1.")
        or version[7] not in _DIGITS
    ):
        return None
    return HttpMessage(_REQUEST, 0, int(version[7]), method, target)


def _status_line(line: str) -> HttpMessage | None:
    """``HTTP/1.x SP 3DIGIT [SP reason]`` -> message, or None if it is not one."""
    code = line[9:12]
    if (
        len(line) < 12
        or not line.startswith("HTTP/1.")
        or line[7] not in _DIGITS
        or line[8] != " "
        or not (code.isascii() and code.isdigit())
        or (len(line) > 12 and line[12] != " ")
    ):
        return None
    return HttpMessage(_RESPONSE, 0, int(line[7]), "", "", int(code), line[13:])


def _read_headers(lines: list[str], msg: HttpMessage) -> tuple[int, str] | None:
    """Fill ``msg.headers``, content type and encoding; (Content-Length or -1, Transfer-Encoding) for
    _framing, or None if the block is bad."""
    headers = msg.headers
    content_length = -1
    transfer_encoding = ""
    lines_iter = iter(lines)
    next(lines_iter)  # the start line
    for line in lines_iter:
        name, sep, value = line.partition(":")
        if not sep or name[-1:] in _BAD_NAME_END or name[0] in _WS:
            if line[:1] in _WS and line and headers:  # obsolete line folding
                key, prev = headers[-1]
                headers[-1] = (key, f"{prev} {line.strip(_WS)}")
                continue
            return None
        value = value.strip(_WS)
        headers.append((name, value))
        if len(name) not in _SPECIAL_LENGTHS:
            continue
        special = _SPECIAL_HEADERS.get(name.lower())
        if special is None:
            continue
        if special == _H_CONTENT_LENGTH:
            length = _content_length(value)
            if length < 0 or (content_length >= 0 and length != content_length):
                return None
            content_length = length
        elif special == _H_TRANSFER_ENCODING:
            transfer_encoding = f"{transfer_encoding},{value}" if transfer_encoding else value
        elif special == _H_CONTENT_ENCODING:
            msg.content_encoding = value.lower()
        elif not msg.content_type:
            msg.content_type = value.lower()
    return content_length, transfer_encoding


def _content_length(value: str) -> int:
    """Content-Length as an int, -1 if invalid; ``5, 5`` (a repeated field joined) is accepted."""
    if value.isascii() and value.isdigit() and len(value) < 19:
        return int(value)
    parts = {p.strip(_WS) for p in value.split(",")}
    if len(parts) == 1:
        only = parts.pop()
        if only.isascii() and only.isdigit() and len(only) < 19:
            return int(only)
    return -1


def _framing(msg: HttpMessage, content_length: int, transfer_encoding: str, head_response: bool) -> tuple[int, int]:
    """RFC 9112 §6.3 message body length rules."""
    chunked = bool(transfer_encoding) and (transfer_encoding.rpartition(",")[2].strip(_WS).lower() == "chunked")
    if msg.kind is _RESPONSE:
        status = msg.status
        if head_response or status < 200 or status == 204 or status == 304:
            return NO_BODY, 0
        if chunked:
            return CHUNKED, 0
        if transfer_encoding:
            return UNTIL_CLOSE, 0
        if content_length >= 0:
            return (LENGTH, content_length) if content_length else (NO_BODY, 0)
        return UNTIL_CLOSE, 0
    if chunked:
        return CHUNKED, 0
    if content_length > 0 and not transfer_encoding:
        return LENGTH, content_length
    return NO_BODY, 0  # requests are never close-delimited


def _resync_request(buf: bytes, pos: int, end: int) -> int:
    """Find ``METHOD SP target SP HTTP/1.`` anchored on the version, which bodies rarely contain."""
    search = pos
    while True:
        hit = buf.find(b" HTTP/1.", search, end)
        if hit < 0:
            break
        window = max(pos, hit - MAX_HEADER_BYTES)  # bounds the backward scan in newline-free noise
        line_start = max(buf.rfind(b"\n", window, hit) + 1, window)
        sp = buf.rfind(b" ", line_start, hit)
        if sp > line_start:
            for method in METHODS:
                if buf.endswith(method, line_start, sp):
                    return sp - len(method)
        search = hit + 1
    # No complete request line: keep a tail that may be the start of one.
    line_start = max(buf.rfind(b"\n", pos, end) + 1, pos)
    if end - line_start <= MAX_LINE_KEEP:
        sp = buf.find(b" ", line_start, line_start + MAX_METHOD_SPAN)
        if (sp >= 0 and buf[line_start:sp] in METHODS) or (sp < 0 and buf[line_start:end] in _REQUEST_PREFIXES):
            return line_start
    return _partial_suffix(buf, pos, end, _REQUEST_PREFIXES)


def _resync_response(buf: bytes, pos: int, end: int) -> int:
    """Find the next ``HTTP/1.x NNN`` status line start."""
    search = pos
    while True:
        hit = buf.find(RESPONSE_START, search, end)
        if hit < 0:
            return _partial_suffix(buf, pos, end, _RESPONSE_PREFIXES)
        if end - hit < 12:
            return hit  # too short to judge: wait for more
        code = buf[hit + 9 : hit + 12]
        if buf[hit + 7 : hit + 8].isdigit() and buf[hit + 8] == 32 and code.isdigit():
            return hit
        search = hit + 1


def _partial_suffix(buf: bytes, pos: int, end: int, prefixes: frozenset[bytes]) -> int:
    """Start of the longest buffer tail that begins a start token, or ``end`` if none does."""
    for k in range(min(MAX_METHOD_SPAN, end - pos), 0, -1):
        if buf[end - k : end] in prefixes:
            return end - k
    return end
