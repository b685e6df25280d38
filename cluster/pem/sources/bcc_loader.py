"""Load BCC and diagnose why BPF cannot run, so a failed start says what to fix.

BCC comes from Debian's python3-bpfcc (pure-Python bindings over libbcc.so.0 through ctypes, so
they work with any interpreter). It is imported from /usr/lib/python3/dist-packages through a
PathFinder shim instead of putting dist-packages on sys.path, which would drag in Debian's other
packages. Never `pip install bcc`: PyPI's `bcc` is an unrelated lattice library.
"""

from __future__ import annotations

import contextlib
import importlib.machinery
import importlib.util
import os
import re
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

DIST_PACKAGES = "/usr/lib/python3/dist-packages"
_TRACEFS_DIRS = ("/sys/kernel/tracing", "/sys/kernel/debug/tracing")
_UTS_RE = re.compile(r'#define\s+UTS_RELEASE\s+"([^"]+)"')
_HEADERS_DIR_RE = re.compile(r"linux-headers-(.+)$")


class BpfUnavailable(RuntimeError):
    """BPF cannot be used here; `reason` is a short machine-readable cause, the message says why."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(f"{reason}: {message}")
        self.reason = reason


def import_bcc() -> ModuleType:
    """Return the `bcc` module, importing Debian's copy without touching sys.path."""
    if "bcc" in sys.modules:
        return sys.modules["bcc"]
    try:
        import bcc  # type: ignore[import-not-found]

        return bcc
    except ImportError:
        pass
    spec = importlib.machinery.PathFinder.find_spec("bcc", [DIST_PACKAGES])
    if spec is None or spec.loader is None:
        raise BpfUnavailable(
            "bcc-missing", "BCC is not installed: apt-get install python3-bpfcc (NOT 'pip install bcc')"
        )
    mod = importlib.util.module_from_spec(spec)
    sys.modules["bcc"] = mod
    try:
        spec.loader.exec_module(mod)
    except Exception as exc:  # libbcc.so.0 missing or broken
        del sys.modules["bcc"]
        raise BpfUnavailable("bcc-missing", f"importing bcc failed: {exc}") from exc
    return mod


def _headers_version(build: Path) -> str | None:
    """The kernel release the headers were generated for: utsrelease.h, else the directory name."""
    uts = build / "include" / "generated" / "utsrelease.h"
    with contextlib.suppress(OSError):
        m = _UTS_RE.search(uts.read_text())
        if m:
            return m.group(1)
    m = _HEADERS_DIR_RE.search(build.name)
    return m.group(1) if m else None


def kernel_headers_source() -> dict[str, Any]:
    """Where BCC will find kernel headers, and whether they match the running kernel.

    kind is "exact" (same release), "fallback" (another release: only tracepoint args may be
    trusted, struct layouts may differ) or "missing" (BCC cannot compile anything).
    """
    release = os.uname().release
    build = Path("/lib/modules") / release / "build"
    if not build.exists():
        return {"kind": "missing", "path": str(build), "version": None, "kernel": release}
    resolved = build.resolve()
    version = _headers_version(resolved)
    kind = "exact" if version == release else "fallback"
    return {"kind": kind, "path": str(resolved), "version": version, "kernel": release}


def _tracefs_ready() -> bool:
    return any(os.path.isdir(os.path.join(d, "events", "syscalls")) for d in _TRACEFS_DIRS)


def ensure_tracefs() -> None:
    """Mount tracefs when neither tracing directory is mounted (minimal VMs and containers).

    BCC reads tracepoint formats and ids from tracefs; without it every attach fails with an
    unhelpful "Failed to attach" message.
    """
    if _tracefs_ready():
        return
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        subprocess.run(
            ["mount", "-t", "tracefs", "tracefs", _TRACEFS_DIRS[0]],
            check=False,
            capture_output=True,
            timeout=10,
        )
    if not _tracefs_ready():
        raise BpfUnavailable(
            "no-tracefs",
            "tracefs is not mounted and mounting it failed: mount -t tracefs tracefs /sys/kernel/tracing",
        )


def check_environment() -> dict[str, Any]:
    """Raise BpfUnavailable for anything that would make a load fail; return the header source."""
    if os.geteuid() != 0:
        raise BpfUnavailable("not-root", f"loading BPF needs root (euid is {os.geteuid()})")
    headers = kernel_headers_source()
    if headers["kind"] == "missing":
        raise BpfUnavailable(
            "no-headers",
            f"kernel headers not found at {headers['path']}: install linux-headers and link the "
            f"newest /usr/src/linux-headers-*-amd64 there (see shared/reference/ebpf-notes.md §8)",
        )
    ensure_tracefs()
    import_bcc()
    return headers


@contextlib.contextmanager
def _capture_fd2() -> Iterator[list[str]]:
    """Capture what libbcc prints on fd 2 (clang diagnostics, the verifier log) while loading.

    libbcc writes with fprintf(stderr), below Python's sys.stderr, so fd 2 itself is redirected.
    """
    out: list[str] = []
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile(mode="w+b") as tmp:
        os.dup2(tmp.fileno(), 2)
        try:
            yield out
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            tmp.seek(0)
            out.append(tmp.read().decode(errors="replace"))


def _log_tail(diag: str, lines: int = 30) -> str:
    return "\n".join(diag.strip().splitlines()[-lines:])


def load_bpf(text: str, cflags: list[str]) -> tuple[Any, str]:
    """Compile a BCC program and create its maps; return (BPF object, libbcc's diagnostic output).

    On failure the exception carries the tail of the compiler log. Programs are verified later,
    by load_programs (BCC loads a function into the kernel only when it is first used).
    """
    check_environment()
    bcc = import_bcc()
    with _capture_fd2() as log:
        try:
            b = bcc.BPF(text=text.encode(), cflags=cflags)
        except Exception as exc:
            err = exc
        else:
            err = None
    diag = log[0] if log else ""
    if err is not None:
        raise BpfUnavailable("load-failed", f"{err}\n{_log_tail(diag)}") from err
    return b, diag


def load_programs(b: Any, fn_names: list[str], prog_type: int) -> None:
    """Load (verify) every program before attaching any, so a verifier rejection leaves nothing
    attached, and report it with the verifier's own explanation (the tail of its log): BCC's
    exception only says "Permission denied" and prints the log to fd 2.
    """
    for name in fn_names:
        with _capture_fd2() as log:
            try:
                b.load_func(name.encode(), prog_type)
            except Exception as exc:
                err: Exception | None = exc
            else:
                err = None
        if err is not None:
            raise BpfUnavailable("verifier-rejected", f"{name}: {err}\n{_log_tail(log[0] if log else '')}") from err
