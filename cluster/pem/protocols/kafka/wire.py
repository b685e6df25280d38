"""Kafka's primitive types (kafka.apache.org/protocol, "Protocol Primitive Types") over one frame.

Big-endian fixed-width integers; unsigned varints (7 bits a byte, little-endian groups) for the
compact lengths of flexible versions, where a length is stored plus one so that 0 means null;
zig-zag varints inside v2 record batches; 16-byte UUIDs. Strings are decoded as UTF-8 with bad
bytes replaced: they end up in JSON.

A reader works on ``buf[pos:end]`` and raises :class:`Malformed` instead of reading past ``end``.
A frame too large to buffer whole is read from a prefix: ``skip`` (an opaque blob such as a record
set) may then jump past ``end``, up to the frame's real end, and a tag section that starts past
``end`` reads as empty, so the common single-partition produce or fetch still decodes; any other
field past ``end`` is Malformed.
"""

from __future__ import annotations

import base64
import struct

_I8 = struct.Struct(">b").unpack_from
_I16 = struct.Struct(">h").unpack_from
_I32 = struct.Struct(">i").unpack_from
_I64 = struct.Struct(">q").unpack_from
MAX_VARINT_BYTES = 5  # a 32-bit unsigned varint
MAX_VARLONG_BYTES = 10


class Malformed(ValueError):
    """The bytes do not follow the layout of the message being read."""


def uuid_text(raw: bytes) -> str:
    """Kafka's rendering of a Uuid (URL-safe base64, no padding); the zero Uuid (none) is empty."""
    if raw == b"\0" * 16:
        return ""
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


class Reader:
    """Sequential reader; ``flexible`` selects the compact encodings and the tag sections."""

    __slots__ = ("buf", "end", "flexible", "frame_end", "pos")

    def __init__(self, buf: bytes, pos: int, end: int, flexible: bool, frame_end: int | None = None) -> None:
        self.buf = buf
        self.pos = pos
        self.end = end
        self.flexible = flexible
        self.frame_end = end if frame_end is None else frame_end  # > end when only a prefix is held

    def _need(self, n: int) -> int:
        pos = self.pos
        if pos + n > self.end:
            raise Malformed(f"needs {n} bytes at {pos}, has {max(0, self.end - pos)}")
        self.pos = pos + n
        return pos

    def int8(self) -> int:
        return _I8(self.buf, self._need(1))[0]

    def boolean(self) -> bool:
        return _I8(self.buf, self._need(1))[0] != 0

    def int16(self) -> int:
        return _I16(self.buf, self._need(2))[0]

    def int32(self) -> int:
        return _I32(self.buf, self._need(4))[0]

    def int64(self) -> int:
        return _I64(self.buf, self._need(8))[0]

    def uuid(self) -> str:
        pos = self._need(16)
        return uuid_text(self.buf[pos : pos + 16])

    def uvarint(self, max_bytes: int = MAX_VARINT_BYTES) -> int:
        buf, pos, end = self.buf, self.pos, self.end
        if pos < end and buf[pos] < 0x80:  # one byte: every length and count below 128
            self.pos = pos + 1
            return buf[pos]
        value = shift = 0
        for _ in range(max_bytes):
            if pos >= end:
                raise Malformed("varint runs past the end")
            b = buf[pos]
            pos += 1
            value |= (b & 0x7F) << shift
            if b < 0x80:
                self.pos = pos
                return value
            shift += 7
        raise Malformed("varint too long")

    def varint(self, max_bytes: int = MAX_VARINT_BYTES) -> int:
        """Zig-zag signed varint (record batches)."""
        v = self.uvarint(max_bytes)
        return (v >> 1) ^ -(v & 1)

    def _length(self, nullable: bool) -> int:
        """A string's or bytes' length; -1 for null."""
        n = self.uvarint() - 1 if self.flexible else self.int16()
        if n < -1 or (n == -1 and not nullable):
            raise Malformed(f"bad length {n}")
        return n

    def string(self, nullable: bool = False) -> str:
        """STRING / COMPACT_STRING (and their NULLABLE_ forms, which read as "" when null)."""
        n = self._length(nullable)
        if n <= 0:
            return ""
        pos = self._need(n)
        return self.buf[pos : pos + n].decode("utf-8", "replace")

    def legacy_string(self, nullable: bool = True) -> str:
        """An int16-prefixed string whatever the version: the request header's client_id."""
        n = self.int16()
        if n < -1 or (n == -1 and not nullable):
            raise Malformed(f"bad length {n}")
        if n <= 0:
            return ""
        pos = self._need(n)
        return self.buf[pos : pos + n].decode("utf-8", "replace")

    def blob_size(self) -> int:
        """Skip BYTES / RECORDS (int32 length, or the compact unsigned varint length plus one) and
        return the size, 0 for null."""
        n = self.uvarint() - 1 if self.flexible else self.int32()
        if n < -1:
            raise Malformed(f"bad bytes length {n}")
        if n <= 0:
            return 0
        self.skip(n)
        return n

    def skip(self, n: int) -> None:
        """Jump over ``n`` opaque bytes, past a held prefix when the frame goes on (module docstring)."""
        if self.pos + n > self.frame_end:
            raise Malformed(f"blob of {n} bytes runs past the frame")
        self.pos += n

    def array_len(self, nullable: bool = False) -> int:
        """ARRAY / COMPACT_ARRAY element count; 0 for null. Each element takes a byte at least, so a
        count larger than what is left is malformed (this bounds the work done on garbage)."""
        n = self.uvarint() - 1 if self.flexible else self.int32()
        if n == -1 and nullable:
            return 0
        if n < 0 or n > self.frame_end - self.pos:
            raise Malformed(f"bad array length {n}")
        return n

    def tags(self) -> None:
        """Skip a tag section (flexible versions only): count, then (tag, size, data) each."""
        if not self.flexible:
            return
        pos = self.pos
        if pos < self.end and self.buf[pos] == 0:  # the usual empty section
            self.pos = pos + 1
            return
        if pos >= self.end and self.frame_end > self.end:
            return  # past a held prefix: the sections there are not known (module docstring)
        for _ in range(self.uvarint()):
            self.uvarint()
            self.skip(self.uvarint())
