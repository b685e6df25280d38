"""Continuous CPU profiler source connector: bpf/profiler.c samples every CPU at 99 Hz, counts
unique (process, user stack, kernel stack, Python stack) in the kernel, and this module ships
those counts once per push period into `stack_traces.beta` as Pixie's folded stacks.

Why counts in the kernel: at 99 Hz x N CPUs a per-sample event stream would cost a wakeup or a
ring record per sample; a hash of counters costs one map update, and user space reads a few
hundred unique stacks per period. Why its own thread: symbolising a new library can take a
second, which must not stall the PEM's housekeeping flushes.

Timeline, per push period (default 10 s; PXTUI_PROFILER_PERIOD_S or PemConfig.profiler_period_s):
  flip control[0] -> wait for in-flight samples -> read + delete the idle side's counts ->
  resolve its stacks (then delete them) -> symbolise -> append one Arrow batch.
Every 0.5 s between pushes the thread reads the `new_procs` ring (processes sampled for the first
time) and snapshots their mappings and Python state while they are alive.
"""

from __future__ import annotations

import contextlib
import ctypes as ct
import logging
import os
import threading
import time
from array import array
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa

from cluster import schemas
from cluster.pem.process_info import read_start_ticks
from cluster.pem.sources.bcc_loader import BpfUnavailable, import_bcc, load_bpf, load_programs
from cluster.pem.sources.connector import ConnectorContext, ConnectorStatus
from cluster.pem.sources.ringbuf import RingBufReader
from cluster.pem.symbols.kernel import KernelSymbolizer, KernelSymbolsHidden
from cluster.pem.symbols.native import NativeSymbolizer
from cluster.pem.symbols.python import (
    CodeNamer,
    ProcMem,
    PythonNotReady,
    PythonProcess,
    PythonUnsupported,
    find_python,
    interpreter_mappings,
)

log = logging.getLogger(__name__)

BPF_SOURCE = Path(os.environ.get("PXTUI_BPF_DIR", Path(__file__).resolve().parents[3] / "bpf")) / "profiler.c"
TABLE = "stack_traces.beta"
DEFAULT_PERIOD_S = 10.0
DEFAULT_HZ = 99
NEW_PROCS_PAGES = 16  # must match BPF_RINGBUF_OUTPUT(new_procs, 16)
PY_MAX_FRAMES = 64
_PY_WINDOW_WORDS = 5  # PY_WINDOW_WORDS in bpf/profiler.c
DROP_MESSAGE = "<stack trace lost>"  # Pixie's text when both stack ids were lost (bucket collision)
KERNEL_PREFIX = "[k] "
TRUNCATED_PY = f"[py] (frames beyond the {PY_MAX_FRAMES} innermost)"
_EFAULT = 14
_FLIP_GRACE_S = 0.005  # a BPF program runs for microseconds with preemption off: 5 ms is ample
_PY_RETRIES = 20  # polls to wait for an interpreter that is still starting
_EVAL_LOOP = ("_PyEval_EvalFrameDefault", "_PyEval_EvalFrame", "_PyEval_Vector", "PyEval_EvalCode")
_STATS_SAMPLES, _STATS_COUNTS_FULL, _STATS_RING_FULL, _STATS_PY_FAILED = range(4)


class _PyProc(ct.Structure):
    """struct py_proc_t in bpf/profiler.c."""

    _fields_ = [("runtime", ct.c_uint64)] + [
        (n, ct.c_uint32)
        for n in (
            "tstate_current", "interp_head", "threads_head", "tstate_next", "native_tid",
            "cframe", "current_frame", "f_code", "previous_word", "is_entry_byte",
        )
    ]  # fmt: skip


@dataclass
class _Proc:
    """What the profiler keeps about one sampled process while it lives (and one push after)."""

    pid: int
    start_ticks: int
    upid: bytes
    python: PythonProcess | None = None
    namer: CodeNamer | None = None
    mem: ProcMem | None = None
    py_retries: int = 0
    py_error: str = ""
    exited: bool = False
    exited_pushes: int = 0  # pushes that found it gone; forgotten after 2 (its last samples may sit on the other side)


@dataclass
class ProfilerStats:
    pushes: int = 0
    samples: int = 0
    rows: int = 0
    stacks_lost: int = 0  # samples whose user and kernel stack ids were both lost (bucket collisions)
    counts_full: int = 0  # samples dropped because the counts map was full
    new_procs_lost: int = 0
    python_processes: int = 0
    python_walk_failed: int = 0
    last_push_s: float = 0.0
    python_errors: dict[int, str] = field(default_factory=dict)


def fold(user_root_first: list[str], kernel_root_first: list[str]) -> str:
    """Pixie's folded stack: user frames root first, then kernel frames prefixed "[k] "."""
    frames = list(user_root_first) + [KERNEL_PREFIX + k for k in kernel_root_first]
    return ";".join(frames) if frames else DROP_MESSAGE


def merge_python(py_root_first: list[str], native_leaf_first: list[tuple[str, bool]]) -> list[str]:
    """Python frames, then the native frames the innermost Python frame called, root first.

    native_leaf_first holds (name, in_interpreter) from the frame-pointer walk. CPython is built
    without frame pointers, so that walk is reliable only from the leaf up to the first frame of
    the interpreter itself: those frames (a C extension, a libc call) are the callees of the
    innermost Python frame; above them the Python frames replace the interpreter's own frames.
    A leaf inside the interpreter (other than the eval loop) is kept, e.g. long_mul.
    """
    tail: list[str] = []
    for i, (name, in_interp) in enumerate(native_leaf_first):
        if in_interp:
            if i == 0 and name not in _EVAL_LOOP and not name.startswith("0x"):
                tail.append(name)
            break
        tail.append(name)
    return list(py_root_first) + tail[::-1]


def _period_from(config: Any) -> float:
    env = os.environ.get("PXTUI_PROFILER_PERIOD_S")
    if env:
        try:
            value = float(env)
        except ValueError:
            raise ValueError(f"PXTUI_PROFILER_PERIOD_S must be a number of seconds, got {env!r}") from None
    else:
        value = float(getattr(config, "profiler_period_s", DEFAULT_PERIOD_S) or DEFAULT_PERIOD_S)
    if value <= 0:
        raise ValueError(f"the profiler push period must be > 0 s, got {value}")
    return value


class PerfProfiler:
    """SourceConnector "perf_profiler": always-on CPU profiling into stack_traces.beta."""

    name = "perf_profiler"

    def __init__(
        self,
        config: Any = None,
        *,
        push_period_s: float | None = None,
        sample_hz: int = DEFAULT_HZ,
        poll_s: float = 0.5,
        stack_map_size: int = 16384,
    ) -> None:
        self.push_period_s = push_period_s if push_period_s is not None else _period_from(config)
        if self.push_period_s <= 0:
            raise ValueError(f"push_period_s must be > 0, got {self.push_period_s}")
        if not 1 <= sample_hz <= 1000:
            raise ValueError(f"sample_hz must be in [1, 1000], got {sample_hz}")
        self.sample_hz = sample_hz
        self.poll_s = poll_s
        self.period_s = poll_s  # the PEM's tick cadence; collection runs on this connector's thread
        self.stack_map_size = stack_map_size
        self.native = NativeSymbolizer()
        self.kernel = KernelSymbolizer()
        self.stats = ProfilerStats()
        self._ctx: ConnectorContext | None = None
        self._bpf: Any = None
        self._ring: RingBufReader | None = None
        self._side = 0
        self._procs: dict[int, _Proc] = {}
        self._pending_py: set[int] = set()
        self._trace_ids: dict[str, int] = {}
        self._kernel_note = ""
        self._error = ""
        self._lock = threading.Lock()  # one push at a time (thread, stop, tests)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # ---- SourceConnector -------------------------------------------------------------------
    def start(self, ctx: ConnectorContext) -> None:
        """Load and attach the perf-event program (raises BpfUnavailable with the reason)."""
        if self._bpf is not None:
            raise RuntimeError("perf_profiler already started")
        self._ctx = ctx
        ctx.store.create(TABLE, schemas.STACK_TRACES)
        try:
            src = BPF_SOURCE.read_text()
        except OSError as e:
            raise BpfUnavailable("no-source", f"cannot read {BPF_SOURCE}: {e}") from e
        cflags = [
            f"-DSELF_TGID={ctx.own_pid}",
            f"-DSTACK_MAP_SIZE={self.stack_map_size}",
            f"-DPY_MAX_FRAMES={PY_MAX_FRAMES}",
        ]
        b, _diag = load_bpf(src, cflags)
        self._bpf = b
        try:
            bcc = import_bcc()
            load_programs(b, ["on_sample"], bcc.BPF.PERF_EVENT)
            self._ring = RingBufReader(b[b"new_procs"].map_fd, NEW_PROCS_PAGES * os.sysconf("SC_PAGE_SIZE"))
            try:
                b.attach_perf_event(
                    ev_type=bcc.PerfType.SOFTWARE,
                    ev_config=bcc.PerfSWConfig.CPU_CLOCK,
                    fn_name=b"on_sample",
                    sample_freq=self.sample_hz,
                    cpu=-1,
                )
            except Exception as e:
                raise BpfUnavailable(
                    "attach-failed",
                    f"perf_event_open(PERF_COUNT_SW_CPU_CLOCK, {self.sample_hz} Hz) failed: {e} "
                    "(perf events disabled? check /proc/sys/kernel/perf_event_paranoid and seccomp)",
                ) from e
        except BaseException:
            self._teardown()
            raise
        try:
            self.kernel.load()
        except (KernelSymbolsHidden, OSError) as e:
            self._kernel_note = str(e)
            log.warning("perf_profiler: %s", e)
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="perf-profiler", daemon=True)
        self._thread.start()

    def tick(self, now_ns: int) -> None:
        """Nothing: sampling is in the kernel and reading runs on the connector's own thread,
        so a slow symbolisation never delays the PEM's housekeeping."""

    def stop(self) -> None:
        """Stop the thread, push what the kernel counted since the last push, detach."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
            self._thread = None
        if self._bpf is not None:
            try:
                self.poll_new_processes()
                self.push(time.time_ns())  # the active side
                self.push(time.time_ns())  # and anything that landed on the other during the flip
            finally:
                self._teardown()

    def status(self) -> ConnectorStatus:
        probes = []
        if self._bpf is not None:
            probes.append(f"perf_event:software/cpu-clock@{self.sample_hz}Hz (all CPUs)")
            if self.stats.python_processes:
                probes.append(f"python-frames: {self.stats.python_processes} CPython 3.11 process(es)")
            if self.stats.python_errors:  # Python processes whose frames stay native, and why
                why = next(iter(self.stats.python_errors.values()))
                probes.append(f"python-frames unavailable for {len(self.stats.python_errors)} process(es), e.g. {why}")
            if self._kernel_note:
                probes.append(f"kernel symbols unavailable: {self._kernel_note}")
        self._read_kernel_stats()
        return ConnectorStatus(
            name=self.name,
            probes=probes,
            events_lost=self.stats.stacks_lost + self.stats.counts_full + self.stats.new_procs_lost,
            error=self._error,
        )

    # ---- the thread ------------------------------------------------------------------------
    def _run(self) -> None:
        next_push = time.monotonic() + self.push_period_s
        while not self._stop.wait(self.poll_s):
            try:
                self.poll_new_processes()
                if time.monotonic() >= next_push:
                    next_push += self.push_period_s
                    self.push(time.time_ns())
                self._error = ""
            except Exception as e:  # keep profiling; say why this window failed
                log.exception("perf_profiler: window failed")
                self._error = f"{type(e).__name__}: {e}"

    def poll_new_processes(self) -> int:
        """Set up processes sampled for the first time while they are alive; return how many."""
        if self._ring is None:
            return 0
        tgids: list[int] = []
        self._ring.drain(lambda rec: tgids.append(int.from_bytes(rec[:4], "little")))
        assert self._ctx is not None
        for tgid in tgids:
            if self._ctx.owns(tgid):  # another simulated node's process: that node's PEM profiles it
                self._discover(tgid)
        for tgid in list(self._pending_py):
            self._setup_python(self._procs.get(tgid))
        return len(tgids)

    def _discover(self, tgid: int) -> None:
        assert self._ctx is not None
        old = self._procs.get(tgid)
        ticks = read_start_ticks(tgid)
        if old is not None and ticks == old.start_ticks:
            return
        if old is not None:
            self._forget(old)
        info = self._ctx.processes.refresh(tgid)
        proc = _Proc(tgid, info.start_ticks, info.upid)
        self._procs[tgid] = proc
        if ticks is None or not self.native.snapshot(tgid):
            proc.exited = True  # gone before we looked: its frames stay addresses
            return
        self._setup_python(proc)

    def _setup_python(self, proc: _Proc | None) -> None:
        if proc is None or proc.exited:
            return
        self._pending_py.discard(proc.pid)
        maps = self.native.maps(proc.pid)
        if maps is None or not interpreter_mappings(maps):
            return  # not a Python process (or a kernel thread: no mappings at all)
        try:
            if proc.mem is None:
                proc.mem = ProcMem(proc.pid)
            py = find_python(proc.pid, self.native, proc.mem)
        except PythonNotReady as e:
            proc.py_retries += 1
            if proc.py_retries < _PY_RETRIES:
                self._pending_py.add(proc.pid)
            else:
                self._python_failed(proc, str(e))
            return
        except (PythonUnsupported, OSError) as e:
            self._python_failed(proc, str(e))
            return
        if py is None:
            if proc.mem is not None:
                proc.mem.close()
                proc.mem = None
            return
        o = py.offsets
        prev_word, entry_byte = (o.previous - o.f_code) // 8, o.is_entry - o.f_code
        if (
            (o.previous - o.f_code) % 8
            or not 0 <= prev_word < _PY_WINDOW_WORDS
            or not 0 <= entry_byte < 8 * _PY_WINDOW_WORDS
        ):
            self._python_failed(proc, f"pid {proc.pid}: frame layout does not fit the BPF read window")
            return
        entry = _PyProc(
            py.runtime, o.tstate_current, o.interp_head, o.threads_head, o.tstate_next, o.native_tid,
            o.cframe, o.current_frame, o.f_code, prev_word, entry_byte,
        )  # fmt: skip
        self._bpf[b"py_procs"][ct.c_uint32(proc.pid)] = entry
        proc.python = py
        proc.namer = CodeNamer(py, proc.mem)
        self.stats.python_processes += 1

    def _python_failed(self, proc: _Proc, why: str) -> None:
        proc.py_error = why
        self.stats.python_errors[proc.pid] = why
        log.info("perf_profiler: no Python frames for %s", why)

    # ---- one push --------------------------------------------------------------------------
    def push(self, now_ns: int) -> int:
        """Flip sides, read the idle side, append its stacks to the table; return rows appended."""
        with self._lock:
            return self._push(now_ns)

    def _push(self, now_ns: int) -> int:
        b = self._bpf
        if b is None or self._ctx is None:
            return 0
        t0 = time.perf_counter()
        side = self._side
        self._side = 1 - side
        b[b"control"][ct.c_int(0)] = ct.c_uint32(self._side)
        time.sleep(_FLIP_GRACE_S)
        counts = b[f"counts{side}".encode()]
        stacks = b[f"stacks{side}".encode()]
        pystacks = b[f"pystacks{side}".encode()]
        entries = [
            (k.tgid, k.user_stack_id, k.kernel_stack_id, k.py_stack_id, v if isinstance(v, int) else v.value)
            for k, v in counts.items_lookup_and_delete_batch()
        ]
        ustacks: dict[int, list[int]] = {}
        kstacks: dict[int, list[int]] = {}
        pys: dict[int, tuple[list[int], bool]] = {}
        for _tgid, uid, kid, pid_, _n in entries:
            if uid >= 0 and uid not in ustacks:
                ustacks[uid] = self._read_stack(stacks, uid)
            if kid >= 0 and kid not in kstacks:
                kstacks[kid] = self._read_stack(stacks, kid)
            if pid_ and pid_ not in pys:
                pys[pid_] = self._read_pystack(pystacks, pid_)
        for sid in set(ustacks) | set(kstacks):
            with contextlib.suppress(KeyError):
                del stacks[stacks.Key(sid)]
        for pid_ in pys:
            with contextlib.suppress(KeyError):
                del pystacks[pystacks.Key(pid_)]

        self._check_exits()
        self.native.new_window()
        rows: dict[tuple[bytes, str], int] = {}
        samples = 0
        owns = self._ctx.owns
        for tgid, uid, kid, pid_, n in entries:
            if not owns(tgid):
                continue
            samples += n
            proc = self._procs.get(tgid)
            if proc is None:  # its announcement was lost (ring full): set it up now
                self._discover(tgid)
                proc = self._procs[tgid]
            if uid < 0 and kid < 0 and (uid != -_EFAULT or kid != -_EFAULT):
                self.stats.stacks_lost += n
            user = self._user_frames(proc, ustacks.get(uid, []), pys.get(pid_) if pid_ else None)
            kernel = [self._ksym(a, i == 0) for i, a in enumerate(kstacks.get(kid, []))][::-1]
            key = (proc.upid, fold(user, kernel))
            rows[key] = rows.get(key, 0) + n
        self._append(now_ns, rows)
        self._reap_exited()
        self.stats.pushes += 1
        self.stats.samples += samples
        self.stats.rows += len(rows)
        self.stats.last_push_s = time.perf_counter() - t0
        return len(rows)

    @staticmethod
    def _read_stack(stacks: Any, sid: int) -> list[int]:
        try:
            return list(stacks.walk(sid))
        except KeyError:
            return []

    @staticmethod
    def _read_pystack(pystacks: Any, key: int) -> tuple[list[int], bool]:
        """(code object addresses leaf first, whether the root-most frames were cut off)."""
        try:
            raw = bytes(pystacks[pystacks.Key(key)])  # struct py_stack_t: u32 n, u32 truncated, u64 frames[]
        except KeyError:
            return [], False
        n = min(int.from_bytes(raw[:4], "little"), PY_MAX_FRAMES)
        frames = array("Q", raw[8 : 8 + 8 * n])
        return [f & ~7 for f in frames], bool(int.from_bytes(raw[4:8], "little"))

    def _ksym(self, addr: int, leaf: bool) -> str:
        try:
            return self.kernel.symbolize(addr if leaf else addr - 1)
        except (KernelSymbolsHidden, OSError):
            return f"0x{addr:016x}"

    def _user_frames(self, proc: _Proc, leaf_first: list[int], py: tuple[list[int], bool] | None) -> list[str]:
        """Root-first user frames: native names, with CPython's frames merged in when present."""
        py_codes, truncated = py or ([], False)
        if not py_codes or proc.namer is None or proc.python is None:
            return [self.native.symbolize(proc.pid, a, i == 0) for i, a in enumerate(leaf_first)][::-1]
        maps = self.native.maps(proc.pid)
        interp = proc.python.module
        native: list[tuple[str, bool]] = []
        for i, a in enumerate(leaf_first):
            m = maps.find(a if i == 0 else a - 1) if maps is not None else None
            in_interp = m is None or m.path == interp
            native.append((self.native.symbolize(proc.pid, a, i == 0), in_interp))
            if in_interp:
                break  # above this the frame-pointer walk is not trustworthy
        py_root_first = [proc.namer.name(c) for c in reversed(py_codes)]
        if truncated:
            py_root_first.insert(0, TRUNCATED_PY)
        return merge_python(py_root_first, native)

    def _append(self, now_ns: int, rows: dict[tuple[bytes, str], int]) -> None:
        if not rows:
            return
        assert self._ctx is not None
        ids = []
        for _upid, stack in rows:
            sid = self._trace_ids.get(stack)
            if sid is None:
                if len(self._trace_ids) >= 1 << 20:
                    self._trace_ids.clear()
                sid = self._trace_ids[stack] = len(self._trace_ids) + 1
            ids.append(sid)
        s = schemas.STACK_TRACES
        n = len(rows)
        table = pa.table(
            {
                "time_": pa.array([now_ns] * n, s.field("time_").type),
                "upid": pa.array([u for u, _ in rows], s.field("upid").type),
                "stack_trace_id": pa.array(ids, pa.int64()),
                "stack_trace": pa.array([st for _, st in rows], pa.string()),
                "count": pa.array(list(rows.values()), pa.int64()),
            },
            schema=s,
        )
        self._ctx.store.append(TABLE, table)

    # ---- process lifetime ------------------------------------------------------------------
    def _check_exits(self) -> None:
        for proc in self._procs.values():
            if not proc.exited and read_start_ticks(proc.pid) != proc.start_ticks:
                proc.exited = True
            if proc.exited:
                proc.exited_pushes += 1

    def _reap_exited(self) -> None:
        """Forget processes that exited (after their last samples were symbolised) so that a
        recycled pid is announced again by the kernel."""
        for proc in [p for p in self._procs.values() if p.exited_pushes >= 2]:
            self._forget(proc)
            del self._procs[proc.pid]

    def _forget(self, proc: _Proc) -> None:
        self.native.forget(proc.pid)
        self._pending_py.discard(proc.pid)
        self.stats.python_errors.pop(proc.pid, None)
        if proc.mem is not None:
            proc.mem.close()
            proc.mem = None
        if proc.python is not None:
            self.stats.python_processes -= 1
        b = self._bpf
        if b is not None:
            for name in (b"seen", b"py_procs"):
                with contextlib.suppress(KeyError):
                    del b[name][ct.c_uint32(proc.pid)]

    def _read_kernel_stats(self) -> None:
        b = self._bpf
        if b is None:
            return
        with contextlib.suppress(Exception):
            st = b[b"stats"]
            vals = [sum(st[ct.c_int(i)]) for i in range(4)]
            self.stats.counts_full = vals[_STATS_COUNTS_FULL]
            self.stats.new_procs_lost = vals[_STATS_RING_FULL]
            self.stats.python_walk_failed = vals[_STATS_PY_FAILED]

    def _teardown(self) -> None:
        for proc in self._procs.values():
            if proc.mem is not None:
                proc.mem.close()
                proc.mem = None
        if self._ring is not None:
            self._ring.close()
            self._ring = None
        if self._bpf is not None:
            with contextlib.suppress(Exception):
                self._bpf.cleanup()
            self._bpf = None
