"""Reader of HotSpot's PerfData files (/tmp/hsperfdata_<user>/<pid>), the source jstat reads.

Why parse it ourselves: no maintained Python package reads the format, and it is small. Each JVM
(unless started with -XX:-UsePerfData) keeps a memory-mapped file of named counters; jstat and
Pixie's jvm_stats read it without attaching to the JVM, so the JVM never notices.

Layout (hotspot/share/runtime/perfMemory.hpp, perfData.hpp):
  prologue  u32 magic 0xcafec0c0 (always big-endian), u8 byte_order (0 big, 1 little),
            u8 major, u8 minor, u8 accessible, i32 used, i32 overflow, i64 mod_time_stamp,
            i32 entry_offset, i32 num_entries              (in the file's byte order after magic)
  entry     i32 entry_length, i32 name_offset, i32 vector_length, u8 data_type, u8 flags,
            u8 data_units, u8 data_variability, i32 data_offset; the name is NUL-terminated at
            entry+name_offset and the value at entry+data_offset. data_type 'J' is an i64 scalar
            (vector_length 0); 'B' with vector_length > 0 is a byte array used for strings.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

MAGIC = 0xCAFEC0C0
_PROLOGUE_TAIL = "BBBBiiqii"  # byte_order, major, minor, accessible, used, overflow, mod_ts, offset, n
_ENTRY = "iiiBBBBi"


class PerfDataError(ValueError):
    """The bytes are not a readable PerfData file; the message says which part is wrong."""


def parse(data: bytes) -> dict[str, int | str]:
    """Every long counter (as int) and string counter (as str) in one PerfData image."""
    if len(data) < 32:
        raise PerfDataError(f"PerfData file too short ({len(data)} bytes)")
    (magic,) = struct.unpack_from(">I", data, 0)
    if magic != MAGIC:
        raise PerfDataError(f"bad PerfData magic {magic:#x} (expected {MAGIC:#x})")
    order = "<" if data[4] == 1 else ">"
    _bo, major, _minor, accessible, used, _ovf, _ts, entry_off, n = struct.unpack_from(order + _PROLOGUE_TAIL, data, 4)
    if major != 2:
        raise PerfDataError(f"unsupported PerfData major version {major} (only 2 is known)")
    if not accessible:
        raise PerfDataError("PerfData not accessible yet (the JVM is still starting)")
    entry = struct.Struct(order + _ENTRY)
    out: dict[str, int | str] = {}
    off = entry_off
    end = min(len(data), used) if used > 0 else len(data)
    for _ in range(n):
        if off + entry.size > end:
            raise PerfDataError(f"entry at offset {off} runs past the used area ({end} bytes)")
        length, name_off, vlen, dtype, _flags, _units, _var, data_off = entry.unpack_from(data, off)
        if length <= 0:
            raise PerfDataError(f"entry at offset {off} has length {length}")
        name_start = off + name_off
        name = data[name_start : data.index(b"\0", name_start)].decode("ascii", "replace")
        if dtype == ord("J") and vlen == 0:
            (out[name],) = struct.unpack_from(order + "q", data, off + data_off)
        elif dtype == ord("B") and vlen > 0:
            raw = data[off + data_off : off + data_off + vlen]
            out[name] = raw.split(b"\0", 1)[0].decode("utf-8", "replace")
        off += length
    return out


@dataclass(frozen=True, slots=True)
class JvmHeap:
    """The jvm_stats columns of one JVM (times in ns, sizes in bytes)."""

    young_gc_time: int
    full_gc_time: int
    used_heap_size: int
    total_heap_size: int
    max_heap_size: int
    young_gc_count: int
    full_gc_count: int


def _sum(counters: dict[str, int | str], prefix: str, suffix: str) -> list[int]:
    return [v for k, v in counters.items() if k.startswith(prefix) and k.endswith(suffix) and isinstance(v, int)]


def heap_stats(counters: dict[str, int | str]) -> JvmHeap:
    """Heap and GC figures the way jstat computes them.

    collector.0 is the young collector and collector.1 the full (old) one for every HotSpot GC that
    has generations (Serial, Parallel, G1); their times are in hrt ticks. Used and committed heap
    sum the generations' spaces. The maximum sums the generations' maxCapacity, except under G1
    where every generation reports the whole heap's maximum, so it is their largest.
    """
    freq = counters.get("sun.os.hrt.frequency")
    if not isinstance(freq, int) or freq <= 0:
        raise PerfDataError("sun.os.hrt.frequency missing: not a HotSpot PerfData file")

    def ns(name: str) -> int:
        v = counters.get(name, 0)
        return int(v) * 1_000_000_000 // freq if isinstance(v, int) else 0

    used = _sum(counters, "sun.gc.generation.", ".used")
    gens = [k for k in counters if k.startswith("sun.gc.generation.") and k.count(".") == 4]
    capacity = [counters[k] for k in gens if k.endswith(".capacity")]
    max_caps = [counters[k] for k in gens if k.endswith(".maxCapacity")]
    if not capacity:
        raise PerfDataError("no sun.gc.generation.* counters: GC counters are disabled in this JVM")
    g1 = counters.get("sun.gc.policy.name") == "GarbageFirst"
    yc = counters.get("sun.gc.collector.0.invocations", 0)
    fc = counters.get("sun.gc.collector.1.invocations", 0)
    return JvmHeap(
        young_gc_time=ns("sun.gc.collector.0.time"),
        full_gc_time=ns("sun.gc.collector.1.time"),
        used_heap_size=sum(used),
        total_heap_size=sum(int(c) for c in capacity),
        max_heap_size=max(int(c) for c in max_caps) if g1 else sum(int(c) for c in max_caps),
        young_gc_count=int(yc) if isinstance(yc, int) else 0,
        full_gc_count=int(fc) if isinstance(fc, int) else 0,
    )
