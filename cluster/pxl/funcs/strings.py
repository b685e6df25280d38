"""String UDFs.  Byte semantics like Pixie's std::string (length and find count bytes)."""

from __future__ import annotations

from collections.abc import Sequence

import pyarrow as pa
import pyarrow.compute as pc

from cluster.pxl.funcs.arrays import broadcast, is_scalar, py, rowwise
from cluster.pxl.funcs.registry import EvalContext, Registry, ScalarFunc, Signature, Value
from cluster.pxl.types import BOOLEAN, INT64, STRING

B, N, S = BOOLEAN, INT64, STRING


def _contains(ctx: EvalContext, args: Sequence[Value], sig: Signature, n: int) -> Value:
    s, sub = args
    if is_scalar(sub):
        # contains(x, "") is true for every row: scripts use it to make an empty filter keep all.
        return pc.match_substring(s, py(sub))
    return rowwise(lambda a, b: b in a, args, n, pa.bool_())


def _length(ctx: EvalContext, args: Sequence[Value], sig: Signature, n: int) -> Value:
    return pc.binary_length(args[0]).cast(pa.int64())


def _find(ctx: EvalContext, args: Sequence[Value], sig: Signature, n: int) -> Value:
    s, sub = args
    if is_scalar(sub) and not is_scalar(s):
        return pc.find_substring(s, py(sub)).cast(pa.int64())
    return rowwise(lambda a, b: a.encode().find(b.encode()), args, n, pa.int64())


def _substr_bytes(s: str, pos: int, length: int) -> str:
    raw = s.encode()
    if pos < 0 or pos > len(raw) or length < 0:
        return ""
    return raw[pos: pos + length].decode("utf-8", errors="replace")


def _substring(ctx: EvalContext, args: Sequence[Value], sig: Signature, n: int) -> Value:
    s, pos, length = args
    if is_scalar(pos) and is_scalar(length) and not is_scalar(s):
        p, ln = py(pos), py(length)
        if p < 0 or ln < 0:
            return broadcast(pa.scalar(""), len(s))
        sliced = pc.binary_slice(s.cast(pa.binary()), p, p + ln)
        try:
            return sliced.cast(pa.string())
        except pa.ArrowInvalid:  # cut inside a multi-byte character
            pass
    return rowwise(_substr_bytes, args, n, pa.string())


def _atoi_one(s: str, default: int) -> int:
    t = s.strip()
    body = t[1:] if t[:1] in "+-" else t
    if not body.isascii() or not body.isdigit():
        return default
    v = int(t)
    return v if -(2**63) <= v < 2**63 else default


def _atoi(ctx: EvalContext, args: Sequence[Value], sig: Signature, n: int) -> Value:
    s, default = args
    if not is_scalar(s) and is_scalar(default):
        d = py(default)
        ok = pc.match_substring_regex(s, r"^\s*[+-]?[0-9]{1,18}\s*$")
        cleaned = pc.replace_substring(pc.utf8_trim_whitespace(pc.if_else(ok, s, "0")), "+", "")
        return pc.if_else(ok, cleaned.cast(pa.int64()), d) if len(s) else pa.array([], pa.int64())
    return rowwise(_atoi_one, args, n, pa.int64())


def _itoa(ctx: EvalContext, args: Sequence[Value], sig: Signature, n: int) -> Value:
    return args[0].cast(pa.string())


def _unary(kernel: str):
    fn = getattr(pc, kernel)

    def impl(ctx: EvalContext, args: Sequence[Value], sig: Signature, n: int) -> Value:
        return fn(args[0])

    return impl


def register(reg: Registry) -> None:
    reg.add(ScalarFunc("contains", (Signature((S, S), B),), _contains, doc="substring test"))
    reg.add(ScalarFunc("length", (Signature((S,), N),), _length, doc="length in bytes"))
    reg.add(ScalarFunc("find", (Signature((S, S), N),), _find, doc="byte index of sub, or -1"))
    reg.add(ScalarFunc("substring", (Signature((S, N, N), S),), _substring, doc="std::string::substr"))
    reg.add(ScalarFunc("atoi", (Signature((S, N), N),), _atoi, doc="decimal int or the default"))
    reg.add(ScalarFunc("itoa", (Signature((N,), S),), _itoa, doc="int to decimal string"))
    reg.add(ScalarFunc("toupper", (Signature((S,), S),), _unary("utf8_upper"), doc="upper case"))
    reg.add(ScalarFunc("tolower", (Signature((S,), S),), _unary("utf8_lower"), doc="lower case"))
    reg.add(ScalarFunc("trim", (Signature((S,), S),), _unary("utf8_trim_whitespace"), doc="strip spaces"))
