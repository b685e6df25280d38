"""TLS plaintext: find every OpenSSL (libssl.so.3 / libssl.so.1.1) on the host and in the processes'
mount namespaces, and attach the socket tracer's SSL uprobes to each (bpf/socket_trace.c).

Why per library file and pid -1: a uprobe lives on an inode, so one attach covers every process
that maps that file, now and later; a new process needs nothing new unless it brings another copy
(a container image's own libssl, a vendored wheel). Those copies are found by scanning every
process's /proc/<pid>/maps every `rescan_interval_s` (about 50 us per process: 5 ms for 100), on a
thread of its own (attaching takes milliseconds per probe and must not hold up the ring-buffer
drain). Every process, not only new pids: a process may exec, or dlopen libssl long after it
started (Python imports ssl lazily). A file in
another mount namespace is reached through /proc/<pid>/root, and files are told apart by
(st_dev, st_ino), so /lib and /usr/lib, or a bind mount, count once.

The programs share the tracer's BPF object, hence its maps: the syscall probes learn the SSL*'s fd
from the socket syscalls nested in an SSL call and drop the ciphertext of TLS fds in the kernel.

Not covered (uprobes are per binary): statically linked TLS (Go crypto/tls, BoringSSL in grpc or
Chrome, Node's bundled OpenSSL), GnuTLS and NSS, and programs doing their I/O through an SSL BIO
(`openssl s_server -www`), which bypasses the exported SSL_read/SSL_write.
"""

from __future__ import annotations

import contextlib
import glob
import logging
import os
import re
import threading
import time
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from cluster.pem.sources.bcc_loader import load_programs

log = logging.getLogger(__name__)

# (symbol, entry program, return program). One return program serves the four data calls: the entry
# recorded which call it was. SSL_do_handshake marks the fd as TLS before any data flows.
SSL_SYMBOLS: tuple[tuple[str, str, str], ...] = (
    ("SSL_write", "px_ssl_write_enter", "px_ssl_data_exit"),
    ("SSL_read", "px_ssl_read_enter", "px_ssl_data_exit"),
    ("SSL_write_ex", "px_ssl_write_ex_enter", "px_ssl_data_exit"),
    ("SSL_read_ex", "px_ssl_read_ex_enter", "px_ssl_data_exit"),
    ("SSL_do_handshake", "px_ssl_handshake_enter", "px_ssl_handshake_exit"),
)
PROGRAMS = sorted({p for _, enter, exit_ in SSL_SYMBOLS for p in (enter, exit_)})
_REQUIRED = {"SSL_write", "SSL_read"}  # without both, a library yields no usable plaintext

# OpenSSL's libssl as named by distributions (libssl.so.3, libssl.so.1.1) and by wheels that vendor
# it (libssl-1a2b3c4d.so.1.1). NSS's libssl3.so does not match: it is not OpenSSL.
_LIBSSL_RE = re.compile(r"/libssl(?:-[0-9a-f]{6,})?\.so(?:\.(\d+(?:\.\d+)*))?$")
HOST_PATTERNS = (
    "/usr/lib/*-linux-gnu/libssl.so.*",
    "/lib/*-linux-gnu/libssl.so.*",
    "/usr/lib64/libssl.so.*",
    "/lib64/libssl.so.*",
    "/usr/lib/libssl.so.*",
    "/usr/local/lib/libssl.so.*",
    "/usr/local/lib64/libssl.so.*",
    "/usr/local/ssl/lib/libssl.so.*",
)
SUPPORTED_VERSIONS = ("3", "1.1")


def openssl_version(path: str) -> str | None:
    """The OpenSSL major version a libssl file name announces ("3", "1.1"), None when it is no libssl.

    libssl.so.3.0.2-style names count as "3"; 1.0.x ("1.0.2") is reported as such and not probed:
    its SSL_write has the same ABI, but it lacks the _ex calls and is long out of support.
    """
    m = _LIBSSL_RE.search(path)
    if m is None:
        return None
    soname = m.group(1) or ""
    if soname.startswith("3"):
        return "3"
    if soname.startswith("1.1"):
        return "1.1"
    return soname or "unversioned"


@dataclass
class Library:
    """One libssl file (an inode), the path it is attached through and who maps it."""

    path: str  # as opened by this process (/proc/<pid>/root/... for another mount namespace)
    shown: str  # as the processes see it
    version: str
    inode: tuple[int, int]
    host: bool  # found in this process's own mount namespace (stays probed with no process mapping it)
    origin_pid: int | None = None  # the process it was found in, when not in the host's mount namespace
    pids: set[int] = field(default_factory=set)
    symbols: list[str] = field(default_factory=list)
    events: list[bytes] = field(default_factory=list)  # BCC uprobe event names, for detaching
    error: str | None = None

    @property
    def attached(self) -> bool:
        return bool(self.symbols)

    def describe(self) -> str:
        """One probe line for `pxtui status`: the file, what is probed in it and how many processes."""
        if not self.attached:
            return f"uprobe:{self.shown} (OpenSSL {self.version}): not attached: {self.error}"
        procs = len(self.pids)
        where = "" if self.host else f", mount namespace of pid {self.origin_pid}"
        return (
            f"uprobe:{self.shown}[{'|'.join(self.symbols)}] (OpenSSL {self.version}, "
            f"{procs} process{'es' if procs != 1 else ''}{where})"
        )


def _mnt_ns(pid: int | str, proc: str) -> str | None:
    try:
        return os.readlink(f"{proc}/{pid}/ns/mnt")
    except OSError:
        return None


def mapped_libssl(pid: int, proc: str = "/proc") -> list[str]:
    """The libssl files a process maps (paths as the process sees them); [] if it is gone."""
    found: list[str] = []
    try:
        with open(f"{proc}/{pid}/maps", "rb") as f:
            data = f.read()
    except OSError:
        return found
    if b"libssl" not in data:
        return found
    for line in data.split(b"\n"):
        if b"libssl" not in line:
            continue
        path = line.split(None, 5)[-1].decode(errors="replace")
        if path.startswith("/") and not path.endswith("(deleted)") and _LIBSSL_RE.search(path) and path not in found:
            found.append(path)
    return found


class OpenSSLProbes:
    """Attach and track the SSL uprobes of one socket-tracer BPF object.

    `start` verifies the programs, attaches to every libssl found, and starts the rescan thread;
    `stop` detaches everything. A library that cannot be probed is reported in `status`, never
    fatal: the syscall tracing goes on without its plaintext.
    """

    def __init__(
        self,
        bpf: Any,
        *,
        rescan_interval_s: float = 10.0,
        proc: str = "/proc",
        host_patterns: Iterable[str] = HOST_PATTERNS,
    ) -> None:
        self._bpf = bpf
        self.rescan_interval_s = rescan_interval_s
        self.proc = proc
        self.host_patterns = tuple(host_patterns)
        self._libs: dict[tuple[int, int], Library] = {}
        self._own_mnt = _mnt_ns("self", proc)
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.scans = 0
        self.last_scan_s = 0.0
        self.skipped: dict[str, str] = {}  # path -> why it is not probed (e.g. OpenSSL 1.0)

    # ---- lifecycle ---------------------------------------------------------------------------

    def start(self) -> None:
        """Verify the uprobe programs (a rejection raises BpfUnavailable with the verifier's log),
        attach to every library found now, then rescan on a timer."""
        load_programs(self._bpf, PROGRAMS, self._bpf.KPROBE)
        self.rescan()
        if self.rescan_interval_s > 0:
            self._stop.clear()
            self._thread = threading.Thread(target=self._run, name="pxtui-openssl-rescan", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        """Stop rescanning and detach every uprobe (in parallel: each close waits for RCU)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        with self._lock:
            events = [ev for lib in self._libs.values() for ev in lib.events]
            for lib in self._libs.values():
                lib.events.clear()
                lib.symbols.clear()
            self._libs.clear()
        if events:
            with ThreadPoolExecutor(max_workers=min(len(events), 16)) as pool:
                for ev, exc in zip(events, pool.map(self._detach_event, events), strict=True):
                    if exc is not None:
                        log.warning("detaching uprobe %s failed: %s", ev.decode(errors="replace"), exc)

    def _detach_event(self, ev: bytes) -> Exception | None:
        try:
            self._bpf.detach_uprobe_event(ev)
        except Exception as exc:
            return exc
        return None

    def _run(self) -> None:
        while not self._stop.wait(self.rescan_interval_s):
            try:
                self.rescan()
            except Exception:  # a scan failure must not end TLS tracing of what is attached
                log.exception("OpenSSL library rescan failed")

    # ---- discovery -----------------------------------------------------------------------------

    def rescan(self) -> None:
        """Find libraries in the host paths and in every process's maps; attach new ones; recount
        who maps each, and detach container copies no process maps any more."""
        t0 = time.monotonic()
        found: list[tuple[str, str, bool, int | None]] = []  # (open path, shown path, host, pid)
        for pattern in self.host_patterns:
            for path in sorted(glob.glob(pattern)):
                found.append((path, path, True, None))
        try:
            pids = {int(d) for d in os.listdir(self.proc) if d.isdigit()}
        except OSError:
            pids = set()
        own_pid = os.getpid()
        for pid in sorted(pids):
            if pid == own_pid:
                continue
            paths = mapped_libssl(pid, self.proc)
            if not paths:
                continue
            same_ns = _mnt_ns(pid, self.proc) == self._own_mnt
            for p in paths:
                found.append((p if same_ns else f"{self.proc}/{pid}/root{p}", p, same_ns, pid))
        with self._lock:
            for lib in self._libs.values():
                lib.pids.clear()
            for open_path, shown, host, pid in found:
                self._add(open_path, shown, host, pid)
            gone = [k for k, lib in self._libs.items() if not lib.host and not lib.pids]
            dropped = [self._libs.pop(k) for k in gone]
        for lib in dropped:
            for ev in lib.events:
                exc = self._detach_event(ev)
                if exc is not None:
                    log.warning("detaching uprobe %s failed: %s", ev.decode(errors="replace"), exc)
        self.scans += 1
        self.last_scan_s = time.monotonic() - t0

    def _add(self, open_path: str, shown: str, host: bool, pid: int | None) -> None:
        version = openssl_version(shown)
        if version is None:
            return
        try:
            st = os.stat(open_path)
        except OSError:
            return
        key = (st.st_dev, st.st_ino)
        lib = self._libs.get(key)
        if lib is None:
            if version not in SUPPORTED_VERSIONS:
                self.skipped[shown] = f"OpenSSL {version} is not supported (3 and 1.1 are)"
                return
            lib = self._libs[key] = Library(
                os.path.realpath(open_path) if host else open_path,
                shown,
                version,
                key,
                host,
                origin_pid=None if host else pid,
            )
            self._attach(lib)
        elif host and not lib.host:  # first seen in a container, also present on the host
            lib.host = True
        if pid is not None:
            lib.pids.add(pid)

    def _attach(self, lib: Library) -> None:
        """Attach entry and return probes for each symbol the library exports."""
        b = self._bpf
        path = lib.path.encode()
        missing: list[str] = []
        for sym, enter, exit_ in SSL_SYMBOLS:
            before = set(b.uprobe_fds)
            try:
                b.attach_uprobe(name=path, sym=sym.encode(), fn_name=enter.encode(), pid=-1)
                b.attach_uretprobe(name=path, sym=sym.encode(), fn_name=exit_.encode(), pid=-1)
            except Exception as exc:
                lib.events.extend(set(b.uprobe_fds) - before)  # an entry probe without its return
                missing.append(sym)
                if "could not determine address" not in str(exc):
                    lib.error = f"{sym}: {exc}"
                continue
            lib.events.extend(set(b.uprobe_fds) - before)
            lib.symbols.append(sym)
        if not _REQUIRED.issubset(lib.symbols):
            lib.error = lib.error or f"no {' and '.join(sorted(_REQUIRED - set(lib.symbols)))} in {lib.path}"
            for ev in lib.events:
                with contextlib.suppress(Exception):
                    b.detach_uprobe_event(ev)
            lib.events.clear()
            lib.symbols.clear()
            log.warning("OpenSSL library %s not probed: %s", lib.shown, lib.error)
        elif missing:
            log.info("OpenSSL %s: %s not exported", lib.shown, ", ".join(missing))

    # ---- status ---------------------------------------------------------------------------------

    def libraries(self) -> list[Library]:
        with self._lock:
            return sorted(self._libs.values(), key=lambda lib: lib.shown)

    def probes(self) -> list[str]:
        """One line per library for `pxtui status`."""
        return [lib.describe() for lib in self.libraries()]

    def status(self) -> dict[str, Any]:
        return {
            "libraries": [
                {
                    "path": lib.shown,
                    "opened_as": lib.path,
                    "origin_pid": lib.origin_pid,
                    "version": lib.version,
                    "symbols": list(lib.symbols),
                    "pids": sorted(lib.pids),
                    "uprobes": len(lib.events),
                    "error": lib.error,
                }
                for lib in self.libraries()
            ],
            "skipped": dict(self.skipped),
            "scans": self.scans,
            "last_scan_s": round(self.last_scan_s, 4),
            "rescan_interval_s": self.rescan_interval_s,
        }
