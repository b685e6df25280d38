"""gRPC bodies as Pixie shows them: length-prefixed messages printed in protobuf text format.

Without the service's .proto files the messages are parsed as ``google.protobuf.Empty``, so every
field is an unknown field, and printed the way protobuf's C++ ``TextFormat`` prints unknown fields
(which is what Pixie's ``ParsePB`` produces): ``1: "text"``, ``2: 150``, ``3: 0x0000002a`` (fixed32),
``4: 0x...`` (fixed64, 16 digits), and a length-delimited field that parses as a message printed as
one, ``5 {\\n  1: 2\\n}`` -- also when it was really a string (Pixie documents ``"pixielabs"``
turning into ``1 {\\n  14: 105 ...}``). Python protobuf prints fixed fields in decimal, so the
printer is written here, to the C++ rules: nesting budget 10, C-style octal escapes.

The body is the first ``body_cap`` bytes of the DATA payload (as for HTTP/1); a message cut by the
cap prints the fields that are whole, as protobuf's partial parse does. Compressed messages
(flag 1) are inflated when ``grpc-encoding`` is gzip or deflate, at most ``body_cap`` bytes out.
"""

from __future__ import annotations

import zlib

from google.protobuf.text_encoding import CEscape

MESSAGE_HEADER = 5  # compressed flag (1 byte) + big-endian length (4 bytes)
FAILED = "<Failed to parse protobuf>"
TRUNCATED = "... [TRUNCATED]"  # Pixie's DataTable::kTruncatedMsg
RECURSION_BUDGET = 10  # protobuf's kUnknownFieldRecursionLimit
_MASK64 = (1 << 64) - 1
_WBITS = {"gzip": 47, "x-gzip": 47, "deflate": 15}  # 47: gzip or zlib, detected


def body_text(data: bytes, encoding: str, cap: int) -> str:
    """Text of the gRPC messages in ``data`` (several may be concatenated, the last may be cut)."""
    if not data:
        return ""
    parts: list[str] = []
    ok = True
    pos = 0
    end = len(data)
    while pos < end:
        if end - pos < MESSAGE_HEADER:
            ok = False
            break
        compressed = data[pos] == 1
        length = int.from_bytes(data[pos + 1 : pos + 5], "big")
        msg = data[pos + 5 : pos + 5 + length]
        pos += 5 + length
        if compressed:
            wbits = _WBITS.get(encoding)
            if wbits is None:
                parts.append("<Non-gzip decompression not supported>")
                continue
            try:
                msg = zlib.decompressobj(wbits).decompress(msg, max(cap, 1))
            except zlib.error:
                parts.append("<Failed to gunzip data>")
                continue
        text, whole = message_text(msg)
        ok = whole
        parts.append(text)
    text = "".join(parts).rstrip()
    if not ok and not text:
        return FAILED
    return text


def message_text(data: bytes) -> tuple[str, bool]:
    """(text format of ``data`` parsed as unknown fields, whether it parsed whole)."""
    fields, ok, _ = _parse(data, 0, len(data), RECURSION_BUDGET, 0)
    out: list[str] = []
    _print(fields, 0, out)
    return "".join(out), ok


# A parsed field: (number, kind, value) with kind "v" varint, "32"/"64" fixed, "s" bytes, "m" message
# (value: its fields), "g" group (value: its fields).
_Field = tuple[int, str, object]


def _varint(data: bytes, pos: int, end: int) -> tuple[int, int]:
    """(value, new position); position -1 when the varint is cut off or longer than 10 bytes."""
    result = 0
    shift = 0
    while pos < end and shift < 70:
        b = data[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if not b & 0x80:
            return result & _MASK64, pos
        shift += 7
    return 0, -1


def _parse(data: bytes, pos: int, end: int, budget: int, group: int) -> tuple[list[_Field], bool, int]:
    """Parse fields in ``data[pos:end]``: (fields, parsed without error, end position).

    ``group`` is the field number of an enclosing group, whose END_GROUP tag ends this level.
    """
    fields: list[_Field] = []
    while pos < end:
        tag, pos = _varint(data, pos, end)
        if pos < 0:
            return fields, False, end
        number, wire = tag >> 3, tag & 7
        if number == 0 or number >= 1 << 29:
            return fields, False, end
        if wire == 0:
            value, pos = _varint(data, pos, end)
            if pos < 0:
                return fields, False, end
            fields.append((number, "v", value))
        elif wire == 1 or wire == 5:
            size = 8 if wire == 1 else 4
            if end - pos < size:
                return fields, False, end
            fields.append((number, "64" if wire == 1 else "32", int.from_bytes(data[pos : pos + size], "little")))
            pos += size
        elif wire == 2:
            length, pos = _varint(data, pos, end)
            if pos < 0 or end - pos < length:
                return fields, False, end
            value = data[pos : pos + length]
            pos += length
            if value and budget > 0:
                inner, ok, _ = _parse(value, 0, len(value), budget - 1, 0)
                if ok:
                    fields.append((number, "m", inner))
                    continue
            fields.append((number, "s", value))
        elif wire == 3:
            if budget <= 0:
                return fields, False, end
            inner, ok, pos = _parse(data, pos, end, budget - 1, number)
            if not ok:
                return fields, False, end
            fields.append((number, "g", inner))
        elif wire == 4:
            return fields, number == group, pos
        else:
            return fields, False, end
    return fields, group == 0, pos


def _print(fields: list[_Field], depth: int, out: list[str]) -> None:
    indent = "  " * depth
    for number, kind, value in fields:
        if kind == "v":
            out.append(f"{indent}{number}: {value}\n")
        elif kind == "s":
            out.append(f'{indent}{number}: "{CEscape(value, False)}"\n')  # type: ignore[arg-type]
        elif kind == "32":
            out.append(f"{indent}{number}: 0x{value:08x}\n")
        elif kind == "64":
            out.append(f"{indent}{number}: 0x{value:016x}\n")
        else:
            out.append(f"{indent}{number} {{\n")
            _print(value, depth + 1, out)  # type: ignore[arg-type]
            out.append(f"{indent}}}\n")
