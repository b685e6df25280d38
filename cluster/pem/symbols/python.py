"""Python function names for CPython processes (beyond Pixie, which shows only the interpreter).

Frame-pointer unwinding through CPython shows `_PyEval_EvalFrameDefault` and nothing about the
Python code, and CPython 3.11 has no perf-map support (that arrived in 3.12). So the profiler's
BPF program walks the interpreter's own frame list at sample time (`_PyRuntime` -> the sampled
thread's PyThreadState -> cframe -> current_frame -> previous ...) and records the code object
of each frame; this module finds `_PyRuntime` in a process, checks the layout against the live
interpreter, and turns code object addresses into names by reading the process's memory.

Supported: CPython 3.11 (x86_64 layout; offsets from CPython's internal headers, the same for
3.11.2 and 3.11.7). Other versions are detected and reported as unsupported, never guessed.
"""

from __future__ import annotations

import os
import re
import struct
from dataclasses import dataclass

from cluster.pem.symbols.native import NativeSymbolizer
from cluster.pem.symbols.procmaps import Mapping, ProcMaps

_INTERP_RE = re.compile(r"^(?:lib)?python(\d)\.(\d+)")
_PTR = struct.Struct("<Q")
_STATE = struct.Struct("<qqI4x")  # PyASCIIObject from offset 16: length, hash, state bitfield, padding
_MAX_NAME = 512
_USER_TOP = 1 << 47  # x86_64 user space ends below 2^47


@dataclass(frozen=True)
class PyOffsets:
    """Byte offsets into CPython's structures, from offsetof() over the version's internal headers."""

    tstate_current: int  # _PyRuntimeState.gilstate.tstate_current
    interp_head: int  # _PyRuntimeState.interpreters.head
    threads_head: int  # PyInterpreterState.threads.head
    tstate_next: int  # PyThreadState.next
    tstate_interp: int  # PyThreadState.interp
    native_tid: int  # PyThreadState.native_thread_id
    cframe: int  # PyThreadState.cframe
    current_frame: int  # _PyCFrame.current_frame
    f_code: int  # _PyInterpreterFrame.f_code
    previous: int  # _PyInterpreterFrame.previous
    is_entry: int  # _PyInterpreterFrame.is_entry
    co_firstlineno: int
    co_filename: int
    co_qualname: int
    ascii_data: int  # sizeof(PyASCIIObject): where compact ASCII text starts
    compact_data: int  # sizeof(PyCompactUnicodeObject): where other compact text starts


OFFSETS: dict[tuple[int, int], PyOffsets] = {
    (3, 11): PyOffsets(
        tstate_current=576, interp_head=40, threads_head=16, tstate_next=8, tstate_interp=16,
        native_tid=160, cframe=56, current_frame=8, f_code=32, previous=48, is_entry=68,
        co_firstlineno=72, co_filename=112, co_qualname=128, ascii_data=48, compact_data=72,
    ),
}  # fmt: skip


class PythonUnsupported(RuntimeError):
    """A Python process whose frames cannot be read; the message says which process and why."""


class PythonNotReady(RuntimeError):
    """The interpreter is not initialised yet (no interpreter or thread state): try again later."""


@dataclass(frozen=True)
class PythonProcess:
    pid: int
    version: tuple[int, int]
    module: str  # the file holding the interpreter (python3.11 or libpython3.11.so)
    runtime: int  # address of _PyRuntime in the process
    offsets: PyOffsets


class ProcMem:
    """Reads another process's memory through /proc/PID/mem (root, or ptrace rights, needed)."""

    def __init__(self, pid: int, proc: str = "/proc") -> None:
        self.pid = pid
        self._fd = os.open(f"{proc}/{pid}/mem", os.O_RDONLY)

    def read(self, addr: int, size: int) -> bytes:
        if not 0 < addr < _USER_TOP:
            raise OSError(f"address 0x{addr:x} is outside user space (a torn or stale pointer)")
        data = os.pread(self._fd, size, addr)
        if len(data) != size:
            raise OSError(f"short read of {size} bytes at 0x{addr:x} in pid {self.pid}")
        return data

    def ptr(self, addr: int) -> int:
        return _PTR.unpack(self.read(addr, 8))[0]

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1


def interpreter_mappings(maps: ProcMaps) -> list[tuple[Mapping, tuple[int, int]]]:
    """Mappings of python binaries or libpython, with the version their names say."""
    out = []
    for m in maps.files():
        match = _INTERP_RE.match(os.path.basename(m.path))
        if match:
            out.append((m, (int(match.group(1)), int(match.group(2)))))
    return out


def find_python(pid: int, native: NativeSymbolizer, mem: ProcMem) -> PythonProcess | None:
    """None when pid is not a CPython process; raises PythonUnsupported / PythonNotReady.

    A pyenv-style python links libpython: the executable is a stub, and _PyRuntime lives in the
    library, so every candidate mapping is tried.
    """
    maps = native.maps(pid)
    if maps is None:
        return None
    candidates = interpreter_mappings(maps)
    if not candidates:
        return None
    for m, version in candidates:
        syms = native.module(pid, m)
        if syms is None:
            continue
        sym = syms.object_address("_PyRuntime")
        base = syms.vaddr_of_offset(m.offset)
        if sym is None or base is None:
            continue
        bias = m.start - base
        hexver = syms.object_address("Py_Version")
        if hexver is not None:
            try:
                v = mem.ptr(bias + hexver)
            except OSError as e:
                raise PythonUnsupported(f"pid {pid}: cannot read Py_Version: {e}") from e
            version = ((v >> 24) & 0xFF, (v >> 16) & 0xFF)
        offsets = OFFSETS.get(version)
        if offsets is None:
            supported = ", ".join(f"{a}.{b}" for a, b in OFFSETS)
            raise PythonUnsupported(
                f"pid {pid}: CPython {version[0]}.{version[1]} ({m.path}): interpreter frames are read only "
                f"for CPython {supported}; its samples keep native frames"
            )
        runtime = bias + sym
        _validate(pid, mem, runtime, offsets)
        return PythonProcess(pid, version, m.path, runtime, offsets)
    paths = ", ".join(sorted({m.path for m, _ in candidates}))
    raise PythonUnsupported(f"pid {pid}: no _PyRuntime symbol in {paths}")


def _validate(pid: int, mem: ProcMem, runtime: int, o: PyOffsets) -> None:
    """Check the layout against the live interpreter: its first thread points back at it."""
    try:
        interp = mem.ptr(runtime + o.interp_head)
        if interp == 0:
            raise PythonNotReady(f"pid {pid}: interpreter not initialised yet")
        tstate = mem.ptr(interp + o.threads_head)
        if tstate == 0:
            raise PythonNotReady(f"pid {pid}: no Python thread yet")
        back = mem.ptr(tstate + o.tstate_interp)
    except OSError as e:
        raise PythonUnsupported(f"pid {pid}: cannot read the interpreter state: {e}") from e
    if back != interp:
        raise PythonUnsupported(
            f"pid {pid}: interpreter layout mismatch (thread state 0x{tstate:x} points to 0x{back:x}, not 0x{interp:x})"
        )


class CodeNamer:
    """Code object address -> "qualname (file.py:first line)" for one process, cached."""

    def __init__(self, proc: PythonProcess, mem: ProcMem) -> None:
        self.proc = proc
        self.mem = mem
        self._cache: dict[int, str] = {}
        self.reads = 0

    def name(self, code: int) -> str:
        hit = self._cache.get(code)
        if hit is not None:
            return hit
        o = self.proc.offsets
        try:
            raw = self.mem.read(code, o.co_qualname + 8)
            line = struct.unpack_from("<i", raw, o.co_firstlineno)[0]
            qual = self._str(_PTR.unpack_from(raw, o.co_qualname)[0])
            path = self._str(_PTR.unpack_from(raw, o.co_filename)[0])
            name = f"{qual} ({os.path.basename(path)}:{line})"
        except (OSError, ValueError, struct.error):
            name = f"[py] 0x{code:016x}"  # a torn frame or a freed object: cached too, it stays unreadable
        self.reads += 1
        if len(self._cache) > 1 << 16:
            self._cache.clear()
        self._cache[code] = name
        return name

    def _str(self, obj: int) -> str:
        """The text of a compact str object (all code names and file names are compact)."""
        o = self.proc.offsets
        hdr = self.mem.read(obj + 16, 24)
        length, _hash, state = _STATE.unpack(hdr)
        kind = (state >> 2) & 7
        compact = (state >> 5) & 1
        ascii_ = (state >> 6) & 1
        if not compact or kind not in (1, 2, 4) or length < 0:
            raise ValueError("not a compact str")
        n = min(length, _MAX_NAME)
        data = self.mem.read(obj + (o.ascii_data if ascii_ else o.compact_data), n * kind)
        codec = {1: "latin-1", 2: "utf-16-le", 4: "utf-32-le"}[kind]
        return data.decode(codec, errors="replace")
