"""Names for user-space addresses of native code (C, C++, Rust, Go) in live processes.

An address is resolved in three steps: the process's mapping (from a /proc/PID/maps snapshot)
gives the file and the file offset; the file's PT_LOAD segments turn that into the ELF virtual
address; the file's symbols (loaded once per build id) give the function. Results are cached by
(build id, virtual address), which every process that maps the same library shares, with a small
per-process front cache by raw address for the repeated frames of one window.
"""

from __future__ import annotations

import contextlib
import logging
import re
import time
from dataclasses import dataclass

import cxxfilt

from cluster.pem.symbols.elf import ElfReadError, ElfSymbols
from cluster.pem.symbols.procmaps import Mapping, ProcMaps

log = logging.getLogger(__name__)

_RUST_HASH = re.compile(r"::h[0-9a-f]{16}$")
_MAX_SYMBOL_CACHE = 1 << 20
_MAX_PID_CACHE = 1 << 16


def unknown(addr: int) -> str:
    """How Pixie writes an address it could not name."""
    return f"0x{addr:016x}"


def demangle(name: str) -> str:
    """C++ and Rust (legacy mangling) names as people write them; anything else unchanged."""
    if not name.startswith("_Z"):
        return name
    try:
        out = cxxfilt.demangle(name)
    except cxxfilt.InvalidName:
        return name
    return _RUST_HASH.sub("", out)


@dataclass
class SymbolStats:
    """Counters for `pxtui status` and the benchmark: how often the slow path ran and what it cost."""

    lookups: int = 0
    pid_cache_hits: int = 0
    symbol_cache_hits: int = 0
    resolved_new: int = 0  # addresses resolved through ELF symbols (cache misses)
    resolve_ns: int = 0  # time spent in those misses, including loading ELF files
    modules_loaded: int = 0
    module_errors: int = 0


class NativeSymbolizer:
    """Thread-compatible (one caller at a time): the profiler thread owns it."""

    def __init__(self, proc: str = "/proc") -> None:
        self.proc = proc
        self._maps: dict[int, ProcMaps] = {}
        self._pid_cache: dict[int, dict[int, str]] = {}
        # (dev, inode, path) -> symbols, or the error text when the file cannot be read
        self._modules: dict[tuple[str, int, str], ElfSymbols | str] = {}
        self._by_build_id: dict[str, ElfSymbols] = {}
        self._symbols: dict[tuple[str, int], str] = {}
        self._refreshed: set[int] = set()  # pids whose maps were re-read in this window
        self.stats = SymbolStats()

    # ---- processes -------------------------------------------------------------------------
    def snapshot(self, pid: int) -> bool:
        """Copy the process's mappings now (while it lives); False if it is already gone."""
        try:
            self._maps[pid] = ProcMaps.read(pid, self.proc)
        except OSError:
            return False
        return True

    def has_snapshot(self, pid: int) -> bool:
        return pid in self._maps

    def maps(self, pid: int) -> ProcMaps | None:
        return self._maps.get(pid)

    def new_window(self) -> None:
        """Allow each process's maps to be re-read once more (see _resolve)."""
        self._refreshed.clear()

    def forget(self, pid: int) -> None:
        """Drop a process's snapshot and front cache (it exited, or its pid was reused)."""
        self._maps.pop(pid, None)
        self._pid_cache.pop(pid, None)

    # ---- addresses -------------------------------------------------------------------------
    def symbolize(self, pid: int, addr: int, leaf: bool = True) -> str:
        """The function containing addr in process pid.

        Non-leaf frames hold return addresses, which point just past the call and so, after a
        call to a function that never returns, into the next function: they are looked up at
        addr - 1, as debuggers do.
        """
        self.stats.lookups += 1
        front = self._pid_cache.get(pid)
        key = addr if leaf else -addr
        if front is not None:
            hit = front.get(key)
            if hit is not None:
                self.stats.pid_cache_hits += 1
                return hit
        else:
            if len(self._pid_cache) >= _MAX_PID_CACHE:
                self._pid_cache.clear()
            front = self._pid_cache[pid] = {}
        name = self._resolve(pid, addr if leaf else addr - 1, addr)
        front[key] = name
        return name

    def _resolve(self, pid: int, lookup: int, addr: int) -> str:
        maps = self._maps.get(pid)
        m = maps.find(lookup) if maps is not None else None
        # Mapped after the snapshot (dlopen), or no snapshot yet: re-read the maps, but once per
        # window only, since frame-pointer walks through code built without them yield junk
        # addresses that no mapping will ever cover.
        if m is None and pid not in self._refreshed:
            self._refreshed.add(pid)
            if self.snapshot(pid):
                maps = self._maps[pid]
                m = maps.find(lookup)
        if m is None:
            return unknown(addr)
        if not m.is_file:
            return m.path if m.path.startswith("[") else unknown(addr)  # [vdso]; JIT or anonymous code
        syms = self._module(pid, m)
        if syms is None:
            return unknown(addr)
        vaddr = syms.vaddr_of_offset(lookup - m.start + m.offset)
        if vaddr is None:
            return unknown(addr)
        skey = (syms.build_id, vaddr)
        name = self._symbols.get(skey)
        if name is not None:
            self.stats.symbol_cache_hits += 1
            return name
        t0 = time.perf_counter_ns()
        raw = syms.lookup(vaddr)
        name = demangle(raw) if raw is not None else unknown(addr)
        if len(self._symbols) >= _MAX_SYMBOL_CACHE:
            self._symbols.clear()
        self._symbols[skey] = name
        self.stats.resolved_new += 1
        self.stats.resolve_ns += time.perf_counter_ns() - t0
        return name

    def module(self, pid: int, m: Mapping) -> ElfSymbols | None:
        """The symbols of a mapped file (loaded on first use), or None when unreadable."""
        return self._module(pid, m)

    def _module(self, pid: int, m: Mapping) -> ElfSymbols | None:
        mkey = (m.dev, m.inode, m.path)
        got = self._modules.get(mkey)
        if isinstance(got, ElfSymbols):
            return got
        if got is not None:
            return None
        t0 = time.perf_counter_ns()
        err = ""
        syms: ElfSymbols | None = None
        # Through the process's root first: the right file even inside another mount namespace.
        for path in (f"{self.proc}/{pid}/root{m.path}", m.path):
            try:
                syms = ElfSymbols(path)
                break
            except ElfReadError as e:
                err = str(e)
        self.stats.resolve_ns += time.perf_counter_ns() - t0
        if syms is None:
            self.stats.module_errors += 1
            log.debug("no symbols for %s: %s", m.path, err)
            self._modules[mkey] = err or "unreadable"
            return None
        shared = self._by_build_id.get(syms.build_id)
        if shared is not None:
            syms = shared
        else:
            self._by_build_id[syms.build_id] = syms
            self.stats.modules_loaded += 1
        self._modules[mkey] = syms
        return syms

    def clear_module_errors(self) -> None:
        """Forget files that could not be read, so a later window retries them."""
        for k in [k for k, v in self._modules.items() if isinstance(v, str)]:
            with contextlib.suppress(KeyError):
                del self._modules[k]
