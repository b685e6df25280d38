"""CPU profiler overhead at 99 Hz, and the cost of symbolising an address.

Run as root:  .venv/bin/python -m tests.bench.bench_profiler [--seconds 30] [--period 10]

Overhead, measured in the same run over the same window and the same workload (the C and
Python busy fixtures, one CPU's worth of demand each), after one push period of warm-up (the
first push loads the symbols of every binary sampled; its cost is printed apart):
  - baseline: a child process that imports the agent's modules and idles (no profiler);
  - profiled: a child running cluster.pem.sources.perf_profiler.PerfProfiler (push every PERIOD s);
the agent's user+sys CPU (/proc/<child>/stat, all threads, from "ready" to the end of the window,
so load and teardown are excluded) and the BPF program's run time (fdinfo run_time_ns of the
child's program fds, kernel.bpf_stats_enabled=1 during the run; restored afterwards), each as a
percentage of one core. Goal: <= 0.3 % of a core in total.

Symbolisation (in this process, no BPF): µs per address that is new (ELF symbols already loaded),
per address hitting the (build id, address) cache from another process, per address hitting the
per-process front cache; the one-time cost of loading a module's symbols; and the same for
Python code objects (read from /proc/PID/mem) and kernel addresses.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "tests" / "fixtures" / "profiler"
TICKS = os.sysconf("SC_CLK_TCK")
BPF_STATS = Path("/proc/sys/kernel/bpf_stats_enabled")
GOAL_PCT = 0.3
HZ = 99


# ---- child side -----------------------------------------------------------------------------
def child(mode: str, seconds: float, period: float) -> None:
    """Run (or not) the profiler; print "ready", wait for the window, print stats as JSON."""
    from cluster.pem.process_info import ProcessCache
    from cluster.pem.sources.connector import ConnectorContext
    from cluster.pem.sources.perf_profiler import PerfProfiler
    from cluster.store.table_store import TableStore

    prof = None
    if mode == "profiled":
        prof = PerfProfiler(push_period_s=period)
        prof.start(ConnectorContext(TableStore(), ProcessCache(1), 1, os.getpid()))
    print("ready", flush=True)
    sys.stdin.readline()  # the parent closes or writes when the window is over
    stats = {}
    if prof is not None:
        s = prof.stats
        stats = {"pushes": s.pushes, "samples": s.samples, "rows": s.rows, "last_push_s": s.last_push_s,
                 "stacks_lost": s.stacks_lost, "python_processes": s.python_processes}  # fmt: skip
    print(json.dumps(stats), flush=True)
    sys.stdin.readline()
    if prof is not None:
        prof.stop()


# ---- parent side ----------------------------------------------------------------------------
def cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def bpf_run_ns(pid: int) -> tuple[int, int]:
    """(run_time_ns, run_cnt) summed over the BPF programs whose fds the process holds."""
    ns = cnt = 0
    for fd in os.listdir(f"/proc/{pid}/fdinfo"):
        try:
            text = Path(f"/proc/{pid}/fdinfo/{fd}").read_text()
        except OSError:
            continue
        if "prog_type" not in text:
            continue
        for line in text.splitlines():
            k, _, v = line.partition(":")
            if k == "run_time_ns":
                ns += int(v)
            elif k == "run_cnt":
                cnt += int(v)
    return ns, cnt


def measure(mode: str, seconds: float, period: float, warmup: float, workload_pids: list[int]) -> dict:
    p = subprocess.Popen(
        [sys.executable, "-m", "tests.bench.bench_profiler", "--child", mode, "--period", str(period)],
        cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert p.stdout is not None and p.stdin is not None
    try:
        line = p.stdout.readline().strip()
        if line != "ready":
            raise SystemExit(f"{mode} child did not start (got {line!r}); see its stderr above")
        w0, tw0 = cpu_s(p.pid), time.monotonic()
        time.sleep(warmup)  # the first push loads the symbols of every binary sampled: reported apart
        c0, (b0, n0), t0 = cpu_s(p.pid), bpf_run_ns(p.pid), time.monotonic()
        wl0 = sum(cpu_s(w) for w in workload_pids)
        time.sleep(seconds)
        c1, (b1, n1), t1 = cpu_s(p.pid), bpf_run_ns(p.pid), time.monotonic()
        wl1 = sum(cpu_s(w) for w in workload_pids)
        p.stdin.write("\n")
        p.stdin.flush()
        stats = json.loads(p.stdout.readline())
        p.stdin.write("\n")
        p.stdin.close()
        p.wait(timeout=60)
    finally:
        if p.poll() is None:
            p.kill()
    wall = t1 - t0
    return {
        "cpu_pct": 100 * (c1 - c0) / wall,
        "workload_pct": 100 * (wl1 - wl0) / wall,
        "warmup_pct": 100 * (c0 - w0) / (t0 - tw0),
        "bpf_pct": 100 * (b1 - b0) / 1e9 / wall,
        "bpf_ns_per_run": (b1 - b0) / max(n1 - n0, 1),
        "runs": n1 - n0,
        "wall": wall,
        **stats,
    }


def workload(tmp: Path) -> list[subprocess.Popen]:
    """The busy C and Python fixtures, running for the whole benchmark (stacks to count)."""
    exe = tmp / "busy"
    subprocess.run(["gcc", "-O2", "-fno-omit-frame-pointer", "-mno-omit-leaf-frame-pointer", "-o", str(exe),
                    str(FIXTURES / "busy.c")], check=True)  # fmt: skip
    procs = [
        subprocess.Popen([str(exe), "100000"], stdout=subprocess.DEVNULL),
        subprocess.Popen(["/usr/bin/python3.11", str(FIXTURES / "busy.py"), "100000"], stdout=subprocess.DEVNULL),
    ]
    time.sleep(0.5)
    return procs


def bench_symbols(pids: list[int]) -> None:
    """µs per address: new, cached by (build id, address), cached per process; module load cost."""
    from cluster.pem.symbols.kernel import KernelSymbolizer
    from cluster.pem.symbols.native import NativeSymbolizer
    from cluster.pem.symbols.procmaps import ProcMaps

    rng = random.Random(7)
    per_pid: dict[int, list[int]] = {}
    for pid in pids:
        maps = ProcMaps.read(pid)
        addrs = []
        for m in maps.files():
            addrs += [rng.randrange(m.start, m.end) for _ in range(max(1, min(2000, (m.end - m.start) // 4096)))]
        per_pid[pid] = addrs
    sym = NativeSymbolizer()
    for pid in pids:
        sym.snapshot(pid)
    # 1. first address of each module: loads its ELF symbols
    t = time.perf_counter()
    for pid in pids:
        for m in ProcMaps.read(pid).files():
            sym.symbolize(pid, m.start)
    load_s = time.perf_counter() - t
    modules = sym.stats.modules_loaded
    # 2. new addresses (symbols loaded, address never seen)
    addrs = [(pid, a) for pid in pids for a in per_pid[pid]]
    t = time.perf_counter_ns()
    for pid, a in addrs:
        sym.symbolize(pid, a)
    new_us = (time.perf_counter_ns() - t) / 1e3 / len(addrs)
    # 3. same addresses again in the same process: the per-process front cache
    t = time.perf_counter_ns()
    for pid, a in addrs:
        sym.symbolize(pid, a)
    front_us = (time.perf_counter_ns() - t) / 1e3 / len(addrs)
    # 4. same (build id, address) seen from a "new process": the shared symbol cache
    for pid in pids:
        sym._pid_cache.pop(pid, None)  # as if these were other processes mapping the same files
    t = time.perf_counter_ns()
    for pid, a in addrs:
        sym.symbolize(pid, a)
    shared_us = (time.perf_counter_ns() - t) / 1e3 / len(addrs)
    named = sum(1 for pid, a in addrs if not sym.symbolize(pid, a).startswith("0x"))

    k = KernelSymbolizer()
    t = time.perf_counter()
    k.load()
    kload_s = time.perf_counter() - t
    kaddrs = [int(line.split()[0], 16) + 1 for line in Path("/proc/kallsyms").read_text().splitlines()[:200000:50]]
    t = time.perf_counter_ns()
    for a in kaddrs:
        k.symbolize(a)
    knew_us = (time.perf_counter_ns() - t) / 1e3 / len(kaddrs)
    t = time.perf_counter_ns()
    for a in kaddrs:
        k.symbolize(a)
    kcached_us = (time.perf_counter_ns() - t) / 1e3 / len(kaddrs)

    print(f"\nsymbolisation ({len(addrs)} random text addresses in {len(pids)} processes, {named} named)")
    each_ms = load_s * 1e3 / max(modules, 1)
    print(f"  load ELF symbols of {modules} modules:      {load_s * 1e3:8.1f} ms  ({each_ms:.1f} ms each)")
    print(f"  native, new address:                 {new_us:8.2f} µs")
    print(f"  native, cached by (build id, addr):  {shared_us:8.2f} µs   ({new_us / shared_us:.1f}x faster than new)")
    print(f"  native, cached per process:          {front_us:8.2f} µs   ({new_us / front_us:.1f}x faster than new)")
    print(f"  kernel, load /proc/kallsyms:          {kload_s * 1e3:8.1f} ms")
    print(f"  kernel, new address:                 {knew_us:8.2f} µs; cached {kcached_us:.2f} µs")
    bench_python(pids[-1])


def bench_python(pid: int) -> None:
    """Code object -> name for the busy Python fixture: new (reads /proc/PID/mem) vs cached."""
    from cluster.pem.symbols.native import NativeSymbolizer
    from cluster.pem.symbols.python import CodeNamer, ProcMem, find_python

    sym = NativeSymbolizer()
    sym.snapshot(pid)
    mem = ProcMem(pid)
    try:
        t = time.perf_counter()
        py = find_python(pid, sym, mem)
        find_ms = (time.perf_counter() - t) * 1e3
        assert py is not None, f"pid {pid} is not a CPython 3.11 process"
        o = py.offsets
        interp = mem.ptr(py.runtime + o.interp_head)
        ts = mem.ptr(interp + o.threads_head)
        frame = mem.ptr(mem.ptr(ts + o.cframe) + o.current_frame)
        codes = []
        while frame and len(codes) < 64:
            codes.append(mem.ptr(frame + o.f_code))
            frame = mem.ptr(frame + o.previous)
        namer = CodeNamer(py, mem)
        t = time.perf_counter_ns()
        names = [namer.name(c) for c in codes]
        new_us = (time.perf_counter_ns() - t) / 1e3 / len(codes)
        t = time.perf_counter_ns()
        for _ in range(100):
            for c in codes:
                namer.name(c)
        cached_us = (time.perf_counter_ns() - t) / 1e3 / (100 * len(codes))
    finally:
        mem.close()
    print(f"  python, find _PyRuntime + validate:   {find_ms:8.1f} ms per process (symbols loaded: {py.module})")
    print(f"  python, new code object:             {new_us:8.2f} µs   ({' <- '.join(names[:3])})")
    print(f"  python, cached code object:          {cached_us:8.2f} µs")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=30.0, help="measurement window per phase")
    ap.add_argument("--period", type=float, default=10.0, help="profiler push period")
    ap.add_argument("--child", choices=("baseline", "profiled"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child(args.child, args.seconds, args.period)
        return
    if os.geteuid() != 0:
        raise SystemExit("run as root: the profiler loads eBPF and opens perf events")
    if shutil.which("gcc") is None:
        raise SystemExit("gcc is needed to build the busy fixture")
    old_stats = BPF_STATS.read_text().strip()
    warmup = args.period + 1
    procs: list[subprocess.Popen] = []
    with tempfile.TemporaryDirectory() as tmp:
        try:
            BPF_STATS.write_text("1")
            procs = workload(Path(tmp))
            wl = [p.pid for p in procs]
            base = measure("baseline", args.seconds, args.period, warmup, wl)
            prof = measure("profiled", args.seconds, args.period, warmup, wl)
            bench_symbols([p.pid for p in procs])
        finally:
            BPF_STATS.write_text(old_stats)
            for p in procs:
                p.send_signal(signal.SIGKILL)
                p.wait()
    over = prof["cpu_pct"] - base["cpu_pct"]
    total = over + prof["bpf_pct"]
    print(f"\nprofiler overhead at {HZ} Hz, push every {args.period:g} s, {args.seconds:g} s window per phase "
          f"after a {warmup:g} s warm-up")  # fmt: skip
    print(f"  first period (cold symbol caches):   {prof['warmup_pct']:.3f} % of a core over {warmup:g} s "
          f"(baseline {base['warmup_pct']:.3f} %)")  # fmt: skip
    print(f"  baseline agent (idle, no profiler):  {base['cpu_pct']:.3f} % of a core")
    print(f"  profiled agent, user+sys:            {prof['cpu_pct']:.3f} % of a core "
          f"({prof.get('pushes', 0)} pushes, {prof.get('samples', 0)} samples, {prof.get('rows', 0)} rows, "
          f"last push {prof.get('last_push_s', 0) * 1e3:.1f} ms)")  # fmt: skip
    print(f"  BPF program:                         {prof['bpf_pct']:.3f} % of a core "
          f"({prof['runs']} runs, {prof['bpf_ns_per_run'] / 1e3:.2f} µs per sample)")  # fmt: skip
    verdict = "met" if total <= GOAL_PCT else "NOT met"
    print(f"  overhead = profiled - baseline + BPF: {total:.3f} % of a core  (goal <= {GOAL_PCT} %: {verdict})")
    print(f"  workload CPU: baseline {base['workload_pct']:.1f} %, profiled {prof['workload_pct']:.1f} % of a core "
          f"(ratio {prof['workload_pct'] / max(base['workload_pct'], 1e-9):.3f}); overhead = "
          f"{100 * total / max(prof['workload_pct'], 1e-9):.3f} % of the CPU the workload used")  # fmt: skip


if __name__ == "__main__":
    main()
