"""A BCC program of tracepoint probes feeding ring buffers: the part every small BPF connector shares.

Why a helper: proc_exit and tcp_stats each compile one C file, verify every probe before attaching
any (so a rejection leaves nothing attached), attach, read ring buffers with the mmap reader and
count ring-full drops in a per-CPU array; only their C and their record decoding differ.
"""

from __future__ import annotations

import contextlib
import ctypes as ct
import os
import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from cluster.pem.sources.bcc_loader import BpfUnavailable, load_bpf, load_programs
from cluster.pem.sources.ringbuf import RingBufReader

BPF_DIR = Path(__file__).resolve().parents[3] / "bpf"
# PX_TP(category, event): BCC's TRACEPOINT_PROBE without the `tracepoint__` prefix that BCC
# attaches by itself at load time, so every probe is verified before any is attached.
_PROBE_RE = re.compile(r"^PX_TP\((\w+),\s*(\w+)\)", re.M)
PX_TP_MACRO = (
    "#define PX_TP(category, event) int px__##category##__##event(struct tracepoint__##category##__##event *args)\n"
)
TRACEFS = ("/sys/kernel/tracing", "/sys/kernel/debug/tracing")


def tracepoint_format(category: str, event: str) -> str:
    """The running kernel's format file of a tracepoint ("" when tracefs or the event is missing)."""
    for root in TRACEFS:
        try:
            return Path(root, "events", category, event, "format").read_text()
        except OSError:
            continue
    return ""


def symbolic_names(fmt: str, field: str) -> dict[int, str]:
    """value -> name from a format's `__print_symbolic(REC->field, { 2, "NAME" }, ...)`.

    The kernel prints enum values such as skb_drop_reason this way, so the names always match the
    running kernel, whatever the installed headers say.
    """
    start = fmt.find(f"__print_symbolic(REC->{field},")
    if start < 0:
        return {}
    depth, end = 0, start
    for end in range(start, len(fmt)):
        if fmt[end] == "(":
            depth += 1
        elif fmt[end] == ")":
            depth -= 1
            if depth == 0:
                break
    out: dict[int, str] = {}
    for value, name in re.findall(r"\{\s*(-?\w+)\s*,\s*\"([^\"]*)\"\s*\}", fmt[start:end]):
        try:
            out[int(value, 0)] = name
        except ValueError:
            continue  # a symbolic value (TCP_ESTABLISHED): the format does not say its number
    return out


class TracepointProgram:
    """Compile bpf/<name>.c, attach its PX_TP probes, and read its ring buffers."""

    def __init__(self, source: str, cflags: list[str], rings: dict[str, int]) -> None:
        """rings: ring buffer map name -> its page count (as the C file declares it)."""
        self.path = BPF_DIR / source
        self.cflags = cflags
        self.ring_pages = rings
        self.probes: list[str] = []
        self.bpf: Any = None
        self.readers: dict[str, RingBufReader] = {}
        self.wall_offset_ns = 0
        self.load_time_s = 0.0

    def start(self) -> None:
        try:
            src = self.path.read_text()
        except OSError as e:
            raise BpfUnavailable("no-source", f"cannot read {self.path}: {e}") from e
        t0 = time.monotonic()
        b, _diag = load_bpf(PX_TP_MACRO + src, self.cflags)
        self.bpf = b
        try:
            for ring, pages in self.ring_pages.items():
                self.readers[ring] = RingBufReader(b[ring.encode()].map_fd, pages * os.sysconf("SC_PAGE_SIZE"))
            probes = _PROBE_RE.findall(src)
            load_programs(b, [f"px__{c}__{e}" for c, e in probes], b.TRACEPOINT)
            for cat, ev in probes:
                tp = f"{cat}:{ev}"
                try:
                    b.attach_tracepoint(tp=tp.encode(), fn_name=f"px__{cat}__{ev}".encode())
                except Exception as exc:
                    raise BpfUnavailable("attach-failed", f"{tp}: {exc}") from exc
                self.probes.append(tp)
        except BaseException:
            self.stop()
            raise
        self.wall_offset_ns = time.time_ns() - time.monotonic_ns()
        self.load_time_s = time.monotonic() - t0

    def drain(self, ring: str, handler: Callable[[memoryview], object]) -> int:
        reader = self.readers.get(ring)
        return reader.drain(handler) if reader is not None else 0

    def counter(self, table: str, idx: int) -> int:
        """Sum over CPUs of one slot of a BPF_PERCPU_ARRAY of u64."""
        if self.bpf is None:
            return 0
        return int(self.bpf[table.encode()].sum(ct.c_int(idx)).value)

    def stop(self) -> None:
        for r in self.readers.values():
            r.close()
        self.readers = {}
        if self.bpf is not None:
            for tp in self.probes:
                with contextlib.suppress(Exception):  # best effort: cleanup() below frees the rest
                    self.bpf.detach_tracepoint(tp.encode())
            self.bpf.cleanup()
            self.bpf = None
        self.probes = []
