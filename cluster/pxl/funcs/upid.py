"""UPID decoding.  A upid is fixed_size_binary(16), high 64-bit word first, big-endian:
the top 32 bits of the high word are the agent's ASID, the low 32 bits the PID."""

from __future__ import annotations

from collections.abc import Sequence

import pyarrow as pa
import pyarrow.compute as pc

from cluster.pxl.funcs.arrays import broadcast, is_scalar
from cluster.pxl.funcs.registry import EvalContext, Registry, ScalarFunc, Signature, Value, fixed_semantic
from cluster.pxl.types import INT64, UINT128


def _bswap32(x: pa.Array) -> pa.Array:
    """Byte-swap uint32 values (the buffer is big-endian, the view little-endian)."""
    parts = []
    for shift_in, shift_out in ((0, 24), (8, 16), (16, 8), (24, 0)):
        byte = pc.bit_wise_and(pc.shift_right(x, shift_in), 0xFF)
        parts.append(pc.shift_left(byte, shift_out))
    out = parts[0]
    for p in parts[1:]:
        out = pc.bit_wise_or(out, p)
    return out


def upid_word(upids: pa.Array, index: int) -> pa.Array:
    """Word ``index`` (0 = asid, 1 = pid, 2-3 = start time) of each upid, as int64."""
    n = len(upids)
    if n == 0:
        return pa.array([], pa.int64())
    words = pa.Array.from_buffers(pa.uint32(), 4 * (n + upids.offset), [None, upids.buffers()[1]])
    lists = pa.FixedSizeListArray.from_arrays(words, 4).slice(upids.offset, n)
    return _bswap32(pc.list_element(lists, index)).cast(pa.int64())


def _word(index: int):
    def impl(ctx: EvalContext, args: Sequence[Value], sig: Signature, n: int) -> Value:
        if is_scalar(args[0]):
            return upid_word(broadcast(args[0], 1), index)[0]
        return upid_word(args[0], index)

    return impl


def make_upid(asid: int, pid: int, start_ns: int) -> bytes:
    """The 16 bytes of a upid; a helper for sources and tests."""
    return ((asid << 32 | pid) << 64 | (start_ns & (2**64 - 1))).to_bytes(16, "big")


def register(reg: Registry) -> None:
    reg.add(ScalarFunc("upid_to_pid", (Signature((UINT128,), INT64),), _word(1), doc="PID of a upid"))
    reg.add(ScalarFunc("upid_to_asid", (Signature((UINT128,), INT64),), _word(0),
                       fixed_semantic("ST_ASID"), doc="agent short id of a upid"))
