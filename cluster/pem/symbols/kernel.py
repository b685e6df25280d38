"""Names for kernel addresses, from /proc/kallsyms.

Read once (about 0.1 s for 120k symbols) and searched by bisection; kallsyms has no sizes, so a
symbol ends where the next one starts. Names are cached by address: kernel stacks repeat a
small set of frames (syscall entry, the scheduler, page faults).
"""

from __future__ import annotations

import bisect

from cluster.pem.symbols.native import unknown


class KernelSymbolsHidden(RuntimeError):
    """kallsyms shows zero addresses: kptr_restrict hides them from this process."""


class KernelSymbolizer:
    def __init__(self, path: str = "/proc/kallsyms") -> None:
        self.path = path
        self._starts: list[int] = []
        self._names: list[str] = []
        self._cache: dict[int, str] = {}
        self._loaded = False

    def load(self) -> None:
        """Read kallsyms; raises KernelSymbolsHidden when addresses are masked, OSError if unreadable."""
        pairs: list[tuple[int, str]] = []
        with open(self.path, "rb") as f:
            for line in f:
                parts = line.split(None, 3)
                if len(parts) < 3 or parts[1] not in (b"t", b"T", b"w", b"W"):
                    continue
                pairs.append((int(parts[0], 16), parts[2].decode(errors="replace")))
        if pairs and all(a == 0 for a, _ in pairs[:64]):
            raise KernelSymbolsHidden(
                f"{self.path} shows zero addresses (kernel.kptr_restrict): kernel frames stay unnamed"
            )
        pairs.sort()
        self._starts = [a for a, _ in pairs]
        self._names = [n for _, n in pairs]
        self._loaded = True

    def symbolize(self, addr: int) -> str:
        hit = self._cache.get(addr)
        if hit is not None:
            return hit
        if not self._loaded:
            self.load()
        i = bisect.bisect_right(self._starts, addr) - 1
        name = self._names[i] if i >= 0 else unknown(addr)
        if len(self._cache) > 1 << 18:
            self._cache.clear()
        self._cache[addr] = name
        return name
