"""The CPU profiler end to end: real perf events (99 Hz, every CPU), real processes, stacks
symbolised while they run, rows in a PEM TableStore, read back through px/perf_flamegraph
compiled and executed by cluster.pxl. Needs root and perf events: it fails, never skips, when
they are unavailable.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pytest

from cluster import pxl
from cluster.metadata.local import LocalMetadata
from cluster.pem.process_info import ProcessCache
from cluster.pem.sources.connector import ConnectorContext
from cluster.pem.sources.perf_profiler import TABLE, PerfProfiler, fold, merge_python
from cluster.store.table_store import TableStore
from pxtui.scripts import bundled

pytestmark = pytest.mark.ebpf

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "profiler"
SYSTEM_PYTHON = "/usr/bin/python3.11"
HZ = 99


class Profiled:
    """A started profiler with its store, and helpers to read what it pushed."""

    def __init__(self, profiler: PerfProfiler, store: TableStore, processes: ProcessCache) -> None:
        self.profiler = profiler
        self.store = store
        self.processes = processes

    def rows(self, pid: int | None = None) -> list[tuple[str, int]]:
        """(stack_trace, count) pushed so far, for one process when pid is given."""
        batches = list(self.store.scan(TABLE, None, None))
        if not batches:
            return []
        t = pa.Table.from_batches(batches)
        upid = self.processes.lookup(pid).upid if pid is not None else None
        return [
            (s, c)
            for u, s, c in zip(t["upid"].to_pylist(), t["stack_trace"].to_pylist(), t["count"].to_pylist(), strict=True)
            if upid is None or u == upid
        ]

    def wait_samples(self, pid: int, at_least: int, timeout_s: float) -> list[tuple[str, int]]:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            rows = self.rows(pid)
            if sum(c for _, c in rows) >= at_least:
                return rows
            time.sleep(0.2)
        rows = self.rows(pid)
        pytest.fail(f"pid {pid}: {sum(c for _, c in rows)} samples after {timeout_s} s, wanted {at_least}: {rows[:5]}")


@pytest.fixture(scope="module")
def profiled() -> Iterator[Profiled]:
    if os.geteuid() != 0:
        pytest.fail("the profiler loads eBPF and opens perf events: run the suite as root")
    store = TableStore()
    processes = ProcessCache(asid=1)
    profiler = PerfProfiler(push_period_s=1.0, poll_s=0.2)
    profiler.start(ConnectorContext(store, processes, 1, os.getpid()))  # raises with the reason
    try:
        yield Profiled(profiler, store, processes)
    finally:
        profiler.stop()


@pytest.fixture(scope="module")
def busy_c(tmp_path_factory: pytest.TempPathFactory) -> Path:
    gcc = shutil.which("gcc")
    if gcc is None:
        pytest.fail("gcc is needed to build tests/fixtures/profiler/busy.c (apt-get install gcc)")
    out = tmp_path_factory.mktemp("profiler") / "busy"
    subprocess.run(
        [gcc, "-O2", "-fno-omit-frame-pointer", "-mno-omit-leaf-frame-pointer", "-o", str(out),
         str(FIXTURES / "busy.c")],
        check=True,
    )  # fmt: skip
    return out


def start(argv: list[str]) -> subprocess.Popen[str]:
    p = subprocess.Popen(argv, stdout=subprocess.PIPE, text=True)
    assert p.stdout is not None and p.stdout.readline().strip() == "ready", f"{argv} did not start"
    return p


def finish(p: subprocess.Popen[str]) -> float:
    """Wait for the process; return the CPU seconds it used (user + sys)."""
    _, status, usage = os.wait4(p.pid, 0)
    p.returncode = os.waitstatus_to_exitcode(status)
    assert p.returncode == 0
    return usage.ru_utime + usage.ru_stime


def def_line(function: str) -> int:
    """The line of `def function` in busy.py: Python frames name the function's first line."""
    lines = (FIXTURES / "busy.py").read_text().splitlines()
    return next(i for i, line in enumerate(lines, 1) if line.startswith(f"def {function}("))


def flamegraph(profiled: Profiled) -> list[dict]:
    """px/perf_flamegraph as the TUI would run it, over the PEM's store and this host's metadata."""
    script = bundled()["px/perf_flamegraph"]
    query = pxl.compile_pxl(
        script.pxl,
        funcs=script.funcs_to_execute({}),
        now_ns=time.time_ns(),
        schemas=profiled.store.schemas(),
    )
    [(name, table)] = pxl.execute(query, profiled.store, LocalMetadata(profiled.processes))
    assert name == "stacks"
    return table.to_pylist()


def test_c_hot_function_tops_the_flame_graph(profiled: Profiled, busy_c: Path):
    p = start([str(busy_c), "2"])  # 2 s of CPU time: about 198 samples
    try:
        profiled.wait_samples(p.pid, at_least=150, timeout_s=60)
    finally:
        cpu_s = finish(p)
    rows = [r for r in flamegraph(profiled) if r["cmdline"].startswith(str(busy_c))]
    assert rows, "px/perf_flamegraph returned no rows for the busy program"
    top = max(rows, key=lambda r: r["count"])
    assert top["stack_trace"].endswith("main;run_workload;hot_spin"), top
    hot = sum(r["count"] for r in rows if r["stack_trace"].endswith(";hot_spin"))
    cold = sum(r["count"] for r in rows if r["stack_trace"].endswith(";cold_spin"))
    total = sum(r["count"] for r in rows)
    assert hot / total > 0.7 and 0 < cold < hot, (hot, cold, total)
    assert str(p.pid) in top["pod"] and top["namespace"] == "host"
    # Double buffering loses nothing: the samples match the CPU time the program used, at 99 Hz
    # (wait for the push that holds its last samples: they may sit on the other side).
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and sum(c for _, c in profiled.rows(p.pid)) < 0.85 * cpu_s * HZ:
        time.sleep(0.2)
    got = sum(c for _, c in profiled.rows(p.pid))
    assert 0.85 * cpu_s * HZ <= got <= 1.1 * cpu_s * HZ + 2, (got, cpu_s)


@pytest.mark.parametrize("python", [SYSTEM_PYTHON, sys.executable], ids=["debian-python3.11", "venv-python"])
def test_python_function_names(profiled: Profiled, python: str):
    if not Path(python).exists():
        pytest.fail(f"{python} is missing: the machine's interpreter is python3.11 (apt-get install python3.11)")
    p = start([python, str(FIXTURES / "busy.py"), "2"])
    try:
        rows = profiled.wait_samples(p.pid, at_least=150, timeout_s=60)
        probes = profiled.profiler.status().probes
    finally:
        finish(p)
    assert any(pr.startswith("python-frames: ") for pr in probes), probes
    top, _ = max(rows, key=lambda r: r[1])
    hot, run = def_line("hot_python"), def_line("run_workload")
    assert top.startswith(f"<module> (busy.py:1);run_workload (busy.py:{run});hot_python (busy.py:{hot})"), top
    named = sum(c for s, c in rows if f"hot_python (busy.py:{hot})" in s)
    assert named / sum(c for _, c in rows) > 0.7, rows[:5]


def test_kernel_frames_are_named_and_prefixed(profiled: Profiled):
    dd = shutil.which("dd")
    assert dd is not None, "dd (coreutils) is missing"
    p = subprocess.Popen([dd, "if=/dev/zero", "of=/dev/null", "bs=1M", "count=100000"], stderr=subprocess.DEVNULL)
    try:
        profiled.processes.lookup(p.pid)  # name it now: dd may exit before the push
        rows = profiled.wait_samples(p.pid, at_least=50, timeout_s=60)
    finally:
        p.kill()
        p.wait()
    kernel = [(s, c) for s, c in rows if ";[k] " in s or s.startswith("[k] ")]
    assert sum(c for _, c in kernel) > 0.5 * sum(c for _, c in rows), rows[:5]
    top, _ = max(kernel, key=lambda r: r[1])
    frames = top.split(";")
    first_k = next(i for i, f in enumerate(frames) if f.startswith("[k] "))
    assert all(f.startswith("[k] ") for f in frames[first_k:]), top  # user frames, then kernel frames
    assert any(f.startswith("[k] entry_SYSCALL_64") for f in frames), top
    assert not any(f.startswith("[k] 0x") for f in frames), top


def test_the_agent_never_profiles_itself(profiled: Profiled):
    end = time.monotonic() + 1.0
    while time.monotonic() < end:  # burn CPU in this process: samples would be taken if not skipped
        sum(range(10000))
    time.sleep(1.5)  # a push later
    assert profiled.rows(os.getpid()) == []
    assert len(profiled.rows()) > 0  # while other processes were sampled
    status = profiled.profiler.status()
    assert status.error == "" and status.probes[0] == f"perf_event:software/cpu-clock@{HZ}Hz (all CPUs)"


def test_a_simulated_node_keeps_only_its_own_processes(busy_c: Path):
    """With several PEMs on one host (node_filter.py), each profiles only the pids it owns."""
    store, processes = TableStore(), ProcessCache(asid=2)
    other = PerfProfiler(push_period_s=1.0, poll_s=0.2)
    not_mine: set[int] = set()
    other.start(ConnectorContext(store, processes, 2, os.getpid(), owns=lambda pid: pid not in not_mine))
    try:
        foreign = start([str(busy_c), "2"])
        not_mine.add(foreign.pid)
        owned = start([str(busy_c), "2"])
        try:
            foreign_upid = processes.lookup(foreign.pid).upid  # while it lives
            Profiled(other, store, processes).wait_samples(owned.pid, at_least=50, timeout_s=60)
        finally:
            finish(foreign)
            finish(owned)
    finally:
        other.stop()
    upids = {u for u in pa.Table.from_batches(list(store.scan(TABLE, None, None)))["upid"].to_pylist()}
    assert foreign_upid not in upids


def test_fold_is_pixies_format():
    assert fold(["main", "work"], ["entry_SYSCALL_64", "do_syscall_64"]) == (
        "main;work;[k] entry_SYSCALL_64;[k] do_syscall_64"
    )
    assert fold([], []) == "<stack trace lost>"


def test_merge_python_keeps_only_trustworthy_native_frames():
    py = ["<module> (app.py:1)", "handler (app.py:10)"]
    # leaf in libc called from the eval loop: libc frames kept, the interpreter's replaced
    native = [("__memmove_avx_unaligned", False), ("_PyEval_EvalFrameDefault", True), ("0x0000000000000001", True)]
    assert merge_python(py, native) == [*py, "__memmove_avx_unaligned"]
    # leaf inside the interpreter: a named helper stays, the eval loop itself does not
    assert merge_python(py, [("long_mul", True), ("garbage", True)]) == [*py, "long_mul"]
    assert merge_python(py, [("_PyEval_EvalFrameDefault", True)]) == py
