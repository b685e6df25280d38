"""RESP2/RESP3 framing: bytes of one direction -> :class:`RedisMessage` objects, rendered as Pixie
renders them.

Rendering (Pixie's redis parser): a simple string, error, integer or bulk string is its text; a null
is ``<NULL>`` and a null array ``[NULL]``; an array is a JSON array of its elements' renderings (a
nested array is therefore a JSON string inside). A request is an array whose first one or two
elements name a command from :mod:`.commands`; its arguments become a JSON object of named arguments
or, when the signature is not understood, a JSON array. RESP3 types, which Pixie does not parse, are
rendered in the same spirit: booleans ``true``/``false``, doubles and big numbers as text, verbatim
strings without their format prefix, sets as arrays, maps as JSON objects, attributes skipped.

The parser waits (consuming nothing) while a message is incomplete, never raises on bad input and,
after garbage, resynchronises on the next byte that can start a message, counting one error.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

from cluster.pem.data_stream import DataStream
from cluster.pem.protocols.redis.commands import COMMANDS, FIXED, LIST, Command
from cluster.pem.protocols.stream_parser import StreamParser

MAX_DEPTH = 16
MAX_BULK = 512 * 1024 * 1024
MAX_SIZE_DIGITS = 16  # Pixie: a longer size means the traffic is not Redis
MAX_LINE = 64 * 1024  # a simple string / error line longer than this is garbage
NULL = "<NULL>"
NULL_ARRAY = "[NULL]"
_MARKERS = b"+-:$*_,#!=(%~>|"
_REQUEST_MARKERS = b"*"
_FIND_MARKER = {False: re.compile(rb"[-+:$*_,#!=(%~>|]"), True: re.compile(rb"\*")}
# Replies that confirm a (un)subscription; they answer SUBSCRIBE-family requests, one per channel.
SUBSCRIBE_REPLIES = frozenset(("subscribe", "psubscribe", "ssubscribe", "unsubscribe", "punsubscribe", "sunsubscribe"))
PUBLISHED = frozenset(("message", "pmessage", "smessage"))

_encode = json.encoder.encode_basestring  # JSON string escaping, non-ASCII kept as UTF-8


class _NeedMore(Exception):
    pass


class _Bad(Exception):
    pass


@dataclass(slots=True)
class RedisMessage:
    ts_ns: int
    payload: str  # the rendering (req_args for a request, resp for a response)
    command: str = ""  # requests: the command name ("" when unknown)
    elements: list[str] | None = None  # top-level array elements (responses), to spot pub/sub
    push: bool = False  # a RESP3 push (">") rather than an array


def json_array(items: list[str]) -> str:
    return "[" + ",".join([_encode(i) for i in items]) + "]"


def format_args(cmd: Command, args: list[str]) -> str:
    """Pixie's req_args: a JSON object by the command's signature, else a JSON array."""
    if cmd.name == "SET" and len(args) >= 2:
        return _format_set(args)
    if cmd.name == "EVALSHA" and len(args) >= 4 and len(args) % 2 == 0:
        rest = args[2:]
        half = len(rest) // 2
        return (
            f'{{"sha1":{_encode(args[0])},"numkeys":{_encode(args[1])},'
            f'"key":{json_array(rest[:half])},"value":{json_array(rest[half:])}}}'
        )
    if cmd.args is None:
        return json_array(args)
    parts: list[str] = []
    i = 0
    for desc in cmd.args:
        if desc.kind == FIXED:
            if i >= len(args):
                return json_array(args)
            parts.append(f"{_encode(desc.name)}:{_encode(args[i])}")
            i += 1
        elif desc.kind == LIST:
            rest = args[i:]
            if not rest:
                return json_array(args)
            n = len(desc.sub_fields)
            if n == 1:
                parts.append(f"{_encode(desc.name)}:{json_array(rest)}")
            elif len(rest) % n == 0:
                objs = [f"{{{_encode(desc.sub_fields[k % n])}:{_encode(v)}}}" for k, v in enumerate(rest)]
                parts.append(f"{_encode(desc.name)}:[{','.join(objs)}]")
            else:
                return json_array(args)
            i = len(args)
        elif i < len(args):  # optional
            parts.append(f"{_encode(desc.name)}:{_encode(args[i])}")
            i += 1
    return "{" + ",".join(parts) + "}"


def _format_set(args: list[str]) -> str:
    opts: list[str] = []
    rest = args[2:]
    i = 0
    while i < len(rest):
        if rest[i].upper() in ("EX", "PX", "EXAT", "PXAT"):
            if i + 1 >= len(rest):
                return json_array(args)
            opts.append(f"{rest[i]} {rest[i + 1]}")
            i += 2
        else:
            opts.append(rest[i])
            i += 1
    return f'{{"key":{_encode(args[0])},"value":{_encode(args[1])},"options":{json_array(opts)}}}'


def command_of(elements: list[str]) -> tuple[Command | None, list[str]]:
    """The command named by the first one or two elements (two-word names first), and its args."""
    if len(elements) >= 2:
        cmd = COMMANDS.get(f"{elements[0]} {elements[1]}".upper())
        if cmd is not None:
            return cmd, elements[2:]
    if elements:
        cmd = COMMANDS.get(elements[0].upper())
        if cmd is not None:
            return cmd, elements[1:]
    return None, elements


class _Reader:
    """Recursive-descent RESP reader over ``buf[pos:end]``; raises _NeedMore or _Bad."""

    __slots__ = ("buf", "end", "pos")

    def __init__(self, buf: bytes, pos: int, end: int) -> None:
        self.buf = buf
        self.pos = pos
        self.end = end

    def line(self) -> bytes:
        nl = self.buf.find(b"\r\n", self.pos, min(self.end, self.pos + MAX_LINE))
        if nl < 0:
            if self.end - self.pos >= MAX_LINE:
                raise _Bad
            raise _NeedMore
        out = self.buf[self.pos : nl]
        self.pos = nl + 2
        return out

    def size(self) -> int:
        raw = self.line()
        if len(raw) > MAX_SIZE_DIGITS or not raw:
            raise _Bad
        try:
            n = int(raw)
        except ValueError:
            raise _Bad from None
        if n < -1:
            raise _Bad
        return n

    def blob(self) -> bytes | None:
        n = self.size()
        if n == -1:
            return None
        if n > MAX_BULK:
            raise _Bad
        if self.end - self.pos < n + 2:
            raise _NeedMore
        out = self.buf[self.pos : self.pos + n]
        if self.buf[self.pos + n : self.pos + n + 2] != b"\r\n":
            raise _Bad
        self.pos += n + 2
        return out

    def value(self, depth: int = 0) -> tuple[str, list[str] | None]:
        """(rendering, top-level elements if an aggregate)."""
        if self.pos >= self.end:
            raise _NeedMore
        marker = self.buf[self.pos]
        self.pos += 1
        if marker in b"+-:(,":  # simple string, error, integer, big number, double
            return _text(self.line()), None
        if marker == 36:  # $ bulk string
            data = self.blob()
            return (NULL if data is None else _text(data)), None
        if marker in b"*~>":  # array, set, push
            n = self.size()
            if n == -1:
                return NULL_ARRAY, None
            if depth >= MAX_DEPTH:
                raise _Bad
            items = [self.value(depth + 1)[0] for _ in range(n)]
            return json_array(items), items
        if marker == 95:  # _ null
            self.line()
            return NULL, None
        if marker == 35:  # # boolean
            flag = self.line()
            if flag not in (b"t", b"f"):
                raise _Bad
            return ("true" if flag == b"t" else "false"), None
        if marker == 33:  # ! blob error
            data = self.blob()
            return (NULL if data is None else _text(data)), None
        if marker == 61:  # = verbatim string, "txt:" prefix
            data = self.blob()
            return (NULL if data is None else _text(data[4:])), None
        if marker == 37:  # % map
            n = self.size()
            if n == -1:
                return NULL, None
            if depth >= MAX_DEPTH:
                raise _Bad
            pairs = []
            for _ in range(n):
                k = self.value(depth + 1)[0]
                v = self.value(depth + 1)[0]
                pairs.append(f"{_encode(k)}:{_encode(v)}")
            return "{" + ",".join(pairs) + "}", None
        if marker == 124:  # | attribute: metadata before the real value
            n = self.size()
            if depth >= MAX_DEPTH or n < 0:
                raise _Bad
            for _ in range(2 * n):
                self.value(depth + 1)
            return self.value(depth + 1)
        raise _Bad


def _text(b: bytes) -> str:
    return b.decode("utf-8", "replace")


class RespParser(StreamParser):
    """Incremental parser for one direction; kept in ``DataStream.state``."""

    __slots__ = ("_in_garbage", "is_request")

    def __init__(self, is_request: bool) -> None:
        self.is_request = is_request
        self.errors = 0
        self._in_garbage = False

    def next_message(self, stream: DataStream) -> RedisMessage | None:
        """Parse and consume the next complete message, or None if there is none yet."""
        stream.needs_resync = False  # RESP resynchronises on its own: a marker byte starts a message
        buf, start = stream.view()
        end = len(buf)
        pos = start
        markers = _REQUEST_MARKERS if self.is_request else _MARKERS
        while pos < end:
            if buf[pos] not in markers:
                pos = self._skip_garbage(buf, pos, end)
                continue
            reader = _Reader(buf, pos, end)
            try:
                payload, elements = reader.value()
            except _NeedMore:
                break
            except _Bad:
                pos = self._skip_garbage(buf, pos + 1, end)
                continue
            ts = stream.ts_at(pos - start)
            stream.consume(reader.pos - start)
            self._in_garbage = False
            if self.is_request:
                return self._request(ts, payload, elements)
            return RedisMessage(ts, payload, elements=elements, push=buf[pos] == 62)
        stream.consume(pos - start)
        return None

    def _skip_garbage(self, buf: bytes, pos: int, end: int) -> int:
        if not self._in_garbage:
            self.errors += 1
            self._in_garbage = True
        hit = _FIND_MARKER[self.is_request].search(buf, pos, end)
        return end if hit is None else hit.start()

    @staticmethod
    def _request(ts: int, payload: str, elements: list[str] | None) -> RedisMessage:
        if not elements:
            return RedisMessage(ts, payload)
        cmd, args = command_of(elements)
        if cmd is None:
            return RedisMessage(ts, json_array(elements))
        return RedisMessage(ts, format_args(cmd, args), command=cmd.name, elements=args)
