"""Type conversions Pixie registers as UDFs: time <-> int64 and the UPID helpers that build or show
a UPID (the decoding ones are in upid.py)."""

from __future__ import annotations

from collections.abc import Sequence

import pyarrow as pa
import pyarrow.compute as pc

from cluster.pxl.funcs.arrays import rowwise
from cluster.pxl.funcs.registry import EvalContext, Registry, ScalarFunc, Signature, Value, fixed_semantic
from cluster.pxl.funcs.upid import upid_word
from cluster.pxl.types import ARROW_TYPES, INT64, STRING, TIME64NS, UINT128

_MASK64 = 2**64 - 1


def _time_to_int64(ctx: EvalContext, args: Sequence[Value], sig: Signature, n: int) -> Value:
    return args[0].cast(pa.int64())


def _int64_to_time(ctx: EvalContext, args: Sequence[Value], sig: Signature, n: int) -> Value:
    return args[0].cast(ARROW_TYPES[TIME64NS])


def _as_array(v: Value) -> tuple[pa.Array, bool]:
    if isinstance(v, pa.Scalar):
        return pa.array([v.as_py()], v.type), True
    return v, False


def _start_word(upids: pa.Array) -> pa.Array:
    """The low 64-bit word (process start, in clock ticks) as int64 bits."""
    low_hi = upid_word(upids, 2).cast(pa.uint64())
    low_lo = upid_word(upids, 3).cast(pa.uint64())
    word = pc.bit_wise_or(pc.shift_left(low_hi, 32), low_lo)
    return word.view(pa.int64())


def _upid_to_start_ts(ctx: EvalContext, args: Sequence[Value], sig: Signature, n: int) -> Value:
    arr, scalar = _as_array(args[0])
    out = _start_word(arr).cast(ARROW_TYPES[TIME64NS])
    return out[0] if scalar else out


def upid_text(u: bytes) -> str:
    value = int.from_bytes(u, "big")
    high, low = value >> 64, value & _MASK64
    return f"{high >> 32}:{high & 0xFFFFFFFF}:{low}"


def _upid_to_string(ctx: EvalContext, args: Sequence[Value], sig: Signature, n: int) -> Value:
    return rowwise(upid_text, args, n, pa.string())


def upid_bytes(asid: int, pid: int, start: int) -> bytes:
    """UPID(asid, pid, start) with Pixie's widths: asid and pid are uint32, start uint64."""
    high = (asid & 0xFFFFFFFF) << 32 | (pid & 0xFFFFFFFF)
    return (high << 64 | (start & _MASK64)).to_bytes(16, "big")


def _make_upid(ctx: EvalContext, args: Sequence[Value], sig: Signature, n: int) -> Value:
    return rowwise(upid_bytes, args, n, ARROW_TYPES[UINT128])


def register(reg: Registry) -> None:
    reg.add(ScalarFunc("time_to_int64", (Signature((TIME64NS,), INT64),), _time_to_int64,
                       doc="ns since the epoch as a plain INT64"))
    reg.add(ScalarFunc("int64_to_time", (Signature((INT64,), TIME64NS),), _int64_to_time,
                       doc="INT64 ns since the epoch as a TIME64NS"))
    reg.add(ScalarFunc("upid_to_start_ts", (Signature((UINT128,), TIME64NS),), _upid_to_start_ts,
                       doc="low word of a upid (process start in clock ticks, typed as time)"))
    reg.add(ScalarFunc("upid_to_string", (Signature((UINT128,), STRING),), _upid_to_string,
                       doc="'asid:pid:start' text of a upid"))
    reg.add(ScalarFunc("make_upid", (Signature((INT64, INT64, INT64), UINT128),), _make_upid,
                       fixed_semantic("ST_UPID"), doc="upid from (asid, pid, start ticks)"))
