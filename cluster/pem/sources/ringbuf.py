"""Pure-Python reader of a BPF_MAP_TYPE_RINGBUF through mmap.

Why not BCC's ring_buffer_consume(): it calls back into Python through ctypes once per record
(about 1.5 us per event); reading the mmap directly costs about 0.8 us (ebpf-notes §2).

Layout of the map's mmap (kernel/bpf/ringbuf.c):
  offset 0           one page holding consumer_pos: the only page user space may write;
  offset PAGE        one page holding producer_pos, then the data area mapped twice back to
                     back, so a record that wraps around the end is still contiguous.
Each record starts with an 8-byte header: u32 len (bit 31 BUSY: reserved, not committed yet;
bit 30 DISCARD: skip it) and u32 page offset; the next record starts at the 8-aligned end.
"""

from __future__ import annotations

import mmap
import struct
from collections.abc import Callable

BUSY_BIT = 1 << 31
DISCARD_BIT = 1 << 30
_LEN_MASK = DISCARD_BIT - 1
_REC_HDR = 8
_PAGE = mmap.PAGESIZE
# Publish consumer_pos at least this often inside one drain, so a long drain frees ring space
# for the producer before it ends.
_PUBLISH_EVERY = 1024

_u32 = struct.Struct("<I")


class RingBufReader:
    """Consumer side of one BPF ring buffer, given its map fd and data size (bytes, power of two).

    Single consumer only: consumer_pos is owned by this object.
    """

    def __init__(self, map_fd: int, data_size: int) -> None:
        if data_size <= 0 or data_size & (data_size - 1):
            raise ValueError(f"ring buffer size must be a power of two, got {data_size}")
        self.data_size = data_size
        self._mask = data_size - 1
        self._cons_mm = mmap.mmap(map_fd, _PAGE, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE, offset=0)
        self._prod_mm = mmap.mmap(map_fd, _PAGE + 2 * data_size, mmap.MAP_SHARED, mmap.PROT_READ, offset=_PAGE)
        self._prod_mv = memoryview(self._prod_mm)
        self._cons_mv = memoryview(self._cons_mm)
        # cast("Q") makes reads and writes single aligned 8-byte accesses. struct.pack_into writes
        # byte by byte, and the kernel then sometimes saw a torn consumer_pos and dropped records.
        self._prod_q = self._prod_mv[:8].cast("Q")
        self._cons_q = self._cons_mv[:8].cast("Q")
        self._data = self._prod_mv[_PAGE:]

    def pending_bytes(self) -> int:
        """Bytes produced but not yet consumed (records, headers and padding)."""
        return self._prod_q[0] - self._cons_q[0]

    def drain(self, handler: Callable[[memoryview], object], max_records: int = 1 << 30) -> int:
        """Call handler(record) for each committed record, in ring order; return how many.

        The memoryview is only valid during the call: the handler must copy what it keeps.
        Stops at the first record still BUSY (being written), since later ones cannot be
        consumed before it.
        """
        cons_q = self._cons_q
        cons = cons_q[0]
        prod = self._prod_q[0]
        if cons >= prod:
            return 0
        data = self._data
        mask = self._mask
        unpack_len = _u32.unpack_from
        n = 0
        since_publish = 0
        while cons < prod and n < max_records:
            off = cons & mask
            hdr = unpack_len(data, off)[0]
            if hdr & BUSY_BIT:
                break
            ln = hdr & _LEN_MASK
            if not hdr & DISCARD_BIT:
                start = off + _REC_HDR
                handler(data[start : start + ln])
                n += 1
            cons += (ln + _REC_HDR + 7) & ~7
            since_publish += 1
            if since_publish >= _PUBLISH_EVERY:
                cons_q[0] = cons
                since_publish = 0
                prod = self._prod_q[0]
        cons_q[0] = cons
        return n

    def close(self) -> None:
        """Unmap. Safe to call twice."""
        if self._prod_mm is None:
            return
        for mv in (self._prod_q, self._cons_q, self._data, self._prod_mv, self._cons_mv):
            mv.release()
        self._prod_mm.close()
        self._cons_mm.close()
        self._prod_mm = None  # type: ignore[assignment]
