"""A bounded cache for values that traffic repeats (header blocks, header lists), which stops storing
while it does not pay.

Why: a client polling one URL or a server answering with the same headers (within the second its Date
names) repeats the same bytes thousands of times, and a hit skips decoding, splitting and escaping them.
But traffic whose headers are all unique (request ids) would only pay for the keys and the stores; so
each time the cache fills up, it checks how many lookups hit since it was last emptied and, below one
hit per four entries, stays off (empty, storing nothing) for the next ``pause`` uses.
"""

from __future__ import annotations

from typing import Any


class RepeatCache:
    __slots__ = ("_d", "_hits", "_max", "_off", "pause")

    def __init__(self, max_entries: int = 1024, pause: int = 16384) -> None:
        self._d: dict[Any, Any] = {}
        self._max = max_entries
        self._hits = 0
        self._off = 0  # stores still to skip while off
        self.pause = pause

    def on(self) -> bool:
        """Whether to use the cache this time (callers then build the key, get, and put on a miss); each
        call while off counts down the pause."""
        if self._off:
            self._off -= 1
            return False
        return True

    def get(self, key: Any) -> Any:
        value = self._d.get(key)
        if value is not None:
            self._hits += 1
        return value

    def put(self, key: Any, value: Any) -> None:
        d = self._d
        if len(d) >= self._max:
            if self._hits * 4 < len(d):
                self._off = self.pause
            d.clear()
            self._hits = 0
            if self._off:
                return
        d[key] = value
