"""MongoDB wire protocol framing: bytes of one direction -> :class:`MongoMessage` objects, rendered
as Pixie renders them (mongodb_events ``req_cmd``/``req_body``/``resp_status``/``resp_body``).

Every message starts with a 16-byte little-endian header: messageLength, requestID, responseTo,
opCode ("MongoDB Wire Protocol"). OP_MSG (2013) carries flagBits, sections and an optional CRC-32C
checksum; a kind-0 section is the command document, a kind-1 section a document sequence with an
identifier ("documents", "updates", "deletes", ...). OP_COMPRESSED (2012) wraps another message;
the noop and zlib compressors are undone here (stdlib), snappy and zstd are skipped. The legacy
opcodes (OP_QUERY/OP_REPLY, which drivers still use for the first handshake, and the rest removed
in MongoDB 5.1) are skipped too, as Pixie skips them. Skipped messages are neither records nor
errors.

Renderings (Pixie's mongodb decoder): every document of every section, in order, as canonical
Extended JSON in libbson's layout (``{ "k" : { "$numberInt" : "1" } }``, decoded with the ``bson``
module that ships with pymongo), each followed by a space, an empty document as nothing; capped at
``body_cap`` characters. The kind: the command document's first key when it is insert, delete,
update, find or cursor; hello/isMaster/ismaster mark a handshake; otherwise, for a response, the
``ok`` field as Pixie writes it (``ok: {$numberDouble: 1.0}``). Unlike Pixie, a request whose first
key is any other command (getMore, aggregate, count, ...) is kept, named by that key, instead of
being a parse error.

The parser waits (consuming nothing) while a message is incomplete, never raises on bad input and,
after garbage, resynchronises on the next offset that holds a plausible header, counting one error.
"""

from __future__ import annotations

import re
import struct
import zlib
from dataclasses import dataclass

import bson
from bson import json_util
from bson.codec_options import CodecOptions, DatetimeConversion
from bson.int64 import Int64

from cluster.pem.data_stream import DataStream
from cluster.pem.protocols.stream_parser import StreamParser

HEADER_LEN = 16
MAX_MESSAGE = 48_000_000  # maxMessageSizeBytes
MAX_BSON = 16 * 1024 * 1024 + 16 * 1024  # maxBsonObjectSize plus the server's command slack
DEFAULT_BODY_CAP = 512
OP_REPLY, OP_UPDATE, OP_INSERT, OP_RESERVED, OP_QUERY = 1, 2001, 2002, 2003, 2004
OP_GET_MORE, OP_DELETE, OP_KILL_CURSORS, OP_COMPRESSED, OP_MSG = 2005, 2006, 2007, 2012, 2013
OPCODES = frozenset(
    (
        OP_REPLY,
        OP_UPDATE,
        OP_INSERT,
        OP_RESERVED,
        OP_QUERY,
        OP_GET_MORE,
        OP_DELETE,
        OP_KILL_CURSORS,
        OP_COMPRESSED,
        OP_MSG,
    )
)
CHECKSUM_PRESENT, MORE_TO_COME, EXHAUST_ALLOWED = 1, 1 << 1, 1 << 16
REQUIRED_UNSET = 0xFFFC  # bits 2-15 must be clear
COMPRESSOR_NOOP, COMPRESSOR_SNAPPY, COMPRESSOR_ZLIB, COMPRESSOR_ZSTD = 0, 1, 2, 3
TYPED_KINDS = frozenset(("insert", "delete", "update", "find", "cursor"))
HANDSHAKES = frozenset(("hello", "isMaster", "ismaster"))

_HEADER = struct.Struct("<iiii")
_OPCODE_RE = re.compile(b"|".join(re.escape(struct.pack("<i", op)) for op in sorted(OPCODES)))
_CODEC = CodecOptions(
    unicode_decode_error_handler="replace", datetime_conversion=DatetimeConversion.DATETIME_MS, tz_aware=False
)
_CANONICAL = json_util.CANONICAL_JSON_OPTIONS


class _NeedMore(Exception):
    pass


class _Bad(Exception):
    pass


class _Skip(Exception):
    """A whole message of a kind that is not recorded (legacy opcodes, unsupported compressors)."""


@dataclass(slots=True)
class MongoMessage:
    ts_ns: int
    request_id: int
    response_to: int
    more_to_come: bool
    kind: str  # req_cmd for a request, resp_status for a response ("" when there is none)
    body: str  # the documents' Extended JSON, each followed by a space, capped
    handshake: bool = False


def _encode_str(s: str) -> str:
    return json_util.json.encoder.encode_basestring(s)  # type: ignore[attr-defined]


def extended_json(value: object) -> str:
    """Canonical Extended JSON in libbson's layout (what Pixie's bson_as_canonical_extended_json writes)."""
    t = type(value)
    if t is str:
        return _encode_str(value)  # type: ignore[arg-type]
    if t is dict:
        if not value:
            return "{ }"
        return "{ " + ", ".join(f"{_encode_str(k)} : {extended_json(v)}" for k, v in value.items()) + " }"  # type: ignore[attr-defined]
    if t is list:
        if not value:
            return "[ ]"
        return "[ " + ", ".join(extended_json(v) for v in value) + " ]"  # type: ignore[attr-defined]
    if t is bool:
        return "true" if value else "false"
    if t is int:
        return f'{{ "$numberInt" : "{value}" }}'
    if t is Int64:
        return f'{{ "$numberLong" : "{int(value)}" }}'  # type: ignore[call-overload]
    if t is float:
        return f'{{ "$numberDouble" : "{_double(value)}" }}'  # type: ignore[arg-type]
    if value is None:
        return "null"
    return _plain(json_util.default(value, _CANONICAL))


def _double(x: float) -> str:
    if x != x:
        return "NaN"
    if x in (float("inf"), float("-inf")):
        return "Infinity" if x > 0 else "-Infinity"
    return repr(x)


def _plain(value: object) -> str:
    """json_util's already-converted output (plain JSON types) in libbson's layout."""
    if isinstance(value, dict):
        if not value:
            return "{ }"
        return "{ " + ", ".join(f"{_encode_str(str(k))} : {_plain(v)}" for k, v in value.items()) + " }"
    if isinstance(value, list | tuple):
        return "[ " + ", ".join(_plain(v) for v in value) + " ]" if value else "[ ]"
    if isinstance(value, str):
        return _encode_str(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    return str(value)


def ok_status(ok: object) -> str:
    """Pixie's resp_status from a reply's ``ok`` field (its canonical form, braces and all)."""
    t = type(ok)
    if t is float:
        return f"ok: {{$numberDouble: {_double(ok)}}}"  # type: ignore[arg-type]
    if t is int:
        return f"ok: {{$numberInt: {ok}}}"
    if t is Int64:
        return f"ok: {{$numberLong: {int(ok)}}}"  # type: ignore[call-overload]
    if t is bool:
        return f"ok: {'true' if ok else 'false'}"
    return f"ok: {extended_json(ok)}"


class MongoParser(StreamParser):
    """Incremental parser for one direction; kept in ``DataStream.state``."""

    __slots__ = ("_in_garbage", "body_cap", "is_request", "skipped")

    def __init__(self, is_request: bool, body_cap: int = DEFAULT_BODY_CAP) -> None:
        self.is_request = is_request
        self.body_cap = body_cap
        self.errors = 0
        self.skipped = 0
        self._in_garbage = False

    def next_message(self, stream: DataStream) -> MongoMessage | None:
        """Parse and consume the next complete OP_MSG, or None if there is none yet."""
        buf, start = stream.view()
        end = len(buf)
        pos = start
        if stream.needs_resync:  # bytes were lost: what follows is probably mid-message
            stream.needs_resync = False
            if not _plausible(buf, pos, end):
                pos = self._skip_garbage(buf, pos + 1, end)
        while pos < end:
            try:
                msg, after = self._parse(buf, pos, end)
            except _NeedMore:
                break
            except _Skip as skip:
                self.skipped += 1
                pos = skip.args[0]
                stream.consume(pos - start)
                buf, start = stream.view()
                end, pos = len(buf), start
                continue
            except _Bad:
                pos = self._skip_garbage(buf, pos + 1, end)
                continue
            msg.ts_ns = stream.ts_at(pos - start)
            stream.consume(after - start)
            self._in_garbage = False
            return msg
        stream.consume(pos - start)
        return None

    def _skip_garbage(self, buf: bytes, pos: int, end: int) -> int:
        """The next offset whose opCode field (12 bytes on) is known and whose length is plausible."""
        if not self._in_garbage:
            self.errors += 1
            self._in_garbage = True
        search = pos + 12
        while (hit := _OPCODE_RE.search(buf, search, end)) is not None:
            cand = hit.start() - 12
            if _plausible(buf, cand, end):
                return cand
            search = hit.start() + 1
        return max(pos, end - (HEADER_LEN - 1))  # the tail may be the start of a header

    def _parse(self, buf: bytes, pos: int, end: int) -> tuple[MongoMessage, int]:
        if end - pos < HEADER_LEN:
            if end - pos >= 4 and not HEADER_LEN <= int.from_bytes(buf[pos : pos + 4], "little") <= MAX_MESSAGE:
                raise _Bad
            raise _NeedMore
        length, request_id, response_to, op_code = _HEADER.unpack_from(buf, pos)
        if not HEADER_LEN <= length <= MAX_MESSAGE or op_code not in OPCODES:
            raise _Bad
        after = pos + length
        if after > end:
            raise _NeedMore
        body = buf[pos + HEADER_LEN : after]
        if op_code == OP_COMPRESSED:
            op_code, body = _decompress(body, after)
        if op_code != OP_MSG:
            raise _Skip(after)
        more, kind, text, handshake = self._op_msg(body)
        return MongoMessage(0, request_id, response_to, more, kind, text, handshake), after

    def _op_msg(self, body: bytes) -> tuple[bool, str, str, bool]:
        if len(body) < 5:
            raise _Bad
        flags = int.from_bytes(body[:4], "little")
        if flags & REQUIRED_UNSET:
            raise _Bad
        end = len(body) - (4 if flags & CHECKSUM_PRESENT else 0)
        pos = 4
        kind = ""
        handshake = False
        parts: list[str] = []
        size = 0
        seen_body = False
        while pos < end:
            section = body[pos]
            pos += 1
            if section == 0:
                doc_len = _doc_len(body, pos, end)
                doc = _decode(body[pos : pos + doc_len])
                if seen_body:
                    raise _Bad  # exactly one kind-0 section
                seen_body = True
                kind, handshake = self._kind(doc)
                size = _append(parts, doc, size, self.body_cap)
                pos += doc_len
            elif section == 1:
                if end - pos < 4:
                    raise _Bad
                seq_len = int.from_bytes(body[pos : pos + 4], "little")
                seq_end = pos + seq_len
                nul = body.find(b"\x00", pos + 4, seq_end)
                if seq_len < 5 or seq_end > end or nul < 0:
                    raise _Bad
                pos = nul + 1
                while pos < seq_end:
                    doc_len = _doc_len(body, pos, seq_end)
                    if size < self.body_cap:
                        size = _append(parts, _decode(body[pos : pos + doc_len]), size, self.body_cap)
                    pos += doc_len
            else:
                raise _Bad
        if not seen_body:
            raise _Bad
        text = "".join(parts)
        return bool(flags & MORE_TO_COME), kind, text[: self.body_cap], handshake

    def _kind(self, doc: dict) -> tuple[str, bool]:
        first = next(iter(doc), "")
        if first in TYPED_KINDS:
            return first, False
        if first in HANDSHAKES:
            return first, True
        if self.is_request:
            return first, False
        if "ok" in doc:
            return ok_status(doc["ok"]), False
        return "", False


def _doc_len(body: bytes, pos: int, end: int) -> int:
    if end - pos < 5:
        raise _Bad
    n = int.from_bytes(body[pos : pos + 4], "little")
    if not 5 <= n <= MAX_BSON or pos + n > end:
        raise _Bad
    return n


def _decode(raw: bytes) -> dict:
    try:
        return bson.decode(raw, _CODEC)
    except Exception:  # InvalidBSON and whatever a malformed element trips in the C decoder
        raise _Bad from None


def _append(parts: list[str], doc: dict, size: int, cap: int) -> int:
    text = extended_json(doc) + " " if doc else " "
    parts.append(text)
    return size + len(text)


def _decompress(body: bytes, after: int) -> tuple[int, bytes]:
    """OP_COMPRESSED: originalOpcode, uncompressedSize, compressorId, compressedMessage."""
    if len(body) < 9:
        raise _Bad
    original, size = struct.unpack_from("<ii", body)
    compressor = body[8]
    if original == OP_COMPRESSED or not 0 <= size <= MAX_MESSAGE:
        raise _Bad
    data = body[9:]
    if compressor == COMPRESSOR_NOOP:
        inner = data
    elif compressor == COMPRESSOR_ZLIB:
        try:
            d = zlib.decompressobj()
            inner = d.decompress(data, size + 1)
        except zlib.error:
            raise _Bad from None
    else:
        raise _Skip(after)  # snappy / zstd: not decoded here
    if len(inner) != size:
        raise _Bad
    return original, inner


def _plausible(buf: bytes, pos: int, end: int) -> bool:
    """Could a message header start at ``pos``? (length in range, a known opCode)."""
    if end - pos < HEADER_LEN:
        return end - pos < 4 or HEADER_LEN <= int.from_bytes(buf[pos : pos + 4], "little") <= MAX_MESSAGE
    length, _, _, op_code = _HEADER.unpack_from(buf, pos)
    return HEADER_LEN <= length <= MAX_MESSAGE and op_code in OPCODES
