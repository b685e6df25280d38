"""One direction of a connection's byte stream, as the protocol parsers see it.

The connection tracker appends what one syscall moved (with its timestamp); a protocol parser reads
the unconsumed bytes, turns a prefix into frames and consumes it. Three properties matter on the
agent's hot path:

* Appending is O(1): chunks are queued and only joined when a parser asks for a contiguous view,
  so thousands of tiny writes do not cost a quadratic number of copies.
* Consuming is O(1): it moves an offset; the consumed prefix is dropped at the next join.
* Memory is bounded: past ``max_bytes`` the buffered bytes are dropped, the loss is counted in
  ``overflows`` and ``needs_resync`` tells the parser that the next byte is probably mid-message.

Besides bytes, the stream carries what its parser needs between calls (``state``) and frames parsed
but not yet stitched (``frames``), the way Pixie's DataStream owns its protocol state and frame
deque, so a stitcher can stay free of per-connection dictionaries.
"""

from __future__ import annotations

from bisect import bisect_right
from collections import deque
from typing import Any

DEFAULT_MAX_BYTES = 1 << 20


class DataStream:
    """Ordered bytes of one direction with the timestamp of every appended chunk.

    Offsets given to :meth:`ts_at` and :meth:`consume` are relative to the first unconsumed byte.
    Internally chunk starts are absolute stream offsets (bytes ever appended), so consuming never
    rewrites the timestamp index.
    """

    __slots__ = (
        "_base",
        "_buf",
        "_first",
        "_head",
        "_pending",
        "_pending_len",
        "_starts",
        "_tss",
        "frames",
        "max_bytes",
        "needs_resync",
        "overflows",
        "state",
    )

    def __init__(self, max_bytes: int = DEFAULT_MAX_BYTES) -> None:
        self.max_bytes = max_bytes
        self.overflows = 0
        # Set when bytes were lost (overflow, clear): the parser must drop any half-parsed message.
        self.needs_resync = False
        # Protocol parser state kept between calls (owned by whichever parser handles the stream).
        self.state: Any = None
        # Frames parsed from this stream and waiting for their counterpart (e.g. HTTP requests).
        self.frames: deque[Any] = deque()
        self._buf: bytes = b""  # coalesced bytes; _buf[_head:] is unconsumed
        self._head = 0
        self._base = 0  # absolute offset of _buf[0]
        self._pending: list[bytes] = []  # appended after the last coalesce
        self._pending_len = 0
        self._starts: list[int] = []  # absolute offset where each chunk starts
        self._tss: list[int] = []  # timestamp of each chunk
        self._first = 0  # index of the chunk holding the first unconsumed byte

    def __len__(self) -> int:
        return len(self._buf) - self._head + self._pending_len

    def append(self, ts_ns: int, data: bytes) -> None:
        """Queue one syscall's bytes; drop everything buffered if that would exceed ``max_bytes``."""
        if not data:
            return
        if type(data) is not bytes:
            data = bytes(data)  # the caller may reuse its buffer (ring buffer views)
        if len(self) + len(data) > self.max_bytes:
            self.overflows += 1
            self._drop()
            self.needs_resync = True
            if len(data) > self.max_bytes:
                return
        self._starts.append(self._base + len(self._buf) + self._pending_len)
        self._tss.append(ts_ns)
        self._pending.append(data)
        self._pending_len += len(data)

    def view(self) -> tuple[bytes, int]:
        """Contiguous bytes and the offset of the first unconsumed byte in them, without copying.

        Parsers use this instead of :attr:`buffer` so that consuming several pipelined messages
        from one buffer never re-copies the remainder.
        """
        if self._pending:
            self._coalesce()
        return self._buf, self._head

    @property
    def buffer(self) -> bytes:
        """The unconsumed bytes as one ``bytes`` object (a copy only if a prefix was consumed)."""
        buf, head = self.view()
        return buf[head:] if head else buf

    def ts_at(self, offset: int) -> int:
        """Timestamp of the chunk that holds byte ``offset`` of the unconsumed data (0 if none)."""
        if not self._tss:
            return 0
        pos = self._base + self._head + offset
        first = self._first
        starts = self._starts
        if first + 1 == len(starts) or starts[first + 1] > pos:  # common: in the first chunk
            return self._tss[first]
        return self._tss[bisect_right(starts, pos, first) - 1]

    def consume(self, n: int) -> None:
        """Mark the first ``n`` unconsumed bytes as parsed."""
        if n <= 0:
            return
        if self._pending and self._head + n > len(self._buf):
            self._coalesce()
        self._head += min(n, len(self._buf) - self._head)
        self._advance_chunks()
        if self._head == len(self._buf) and not self._pending:
            self._base += self._head
            self._buf = b""
            self._head = 0

    def clear(self) -> None:
        """Drop all buffered bytes; the parser treats this like a gap and resynchronises."""
        self._drop()
        self.needs_resync = True

    def _coalesce(self) -> None:
        pending = self._pending
        if self._head >= len(self._buf):
            self._base += len(self._buf)
            self._buf = pending[0] if len(pending) == 1 else b"".join(pending)
        else:
            self._base += self._head
            self._buf = b"".join([memoryview(self._buf)[self._head :], *pending])
        self._head = 0
        self._pending = []
        self._pending_len = 0

    def _advance_chunks(self) -> None:
        """Forget timestamps of fully consumed chunks (amortised O(1), compacted in bulk)."""
        starts = self._starts
        pos = self._base + self._head
        first = self._first
        last = len(starts) - 1
        while first < last and starts[first + 1] <= pos:
            first += 1
        if first > 64 and first * 2 > len(starts):
            del starts[:first]
            del self._tss[:first]
            first = 0
        self._first = first

    def _drop(self) -> None:
        self._base += len(self._buf) + self._pending_len
        self._buf = b""
        self._head = 0
        self._pending = []
        self._pending_len = 0
        self._starts = []
        self._tss = []
        self._first = 0
