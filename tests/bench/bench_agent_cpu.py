"""Agent CPU per traced HTTP request at about 2k and 10k req/s: nginx served, wrk loading, on loopback.

Run as root:  .venv/bin/python -m tests.bench.bench_agent_cpu [--seconds 10] [--rates 2000,10000]

For each rate it measures, in the same run:
  - baseline: nginx + wrk with no agent (the workload's own throughput and CPU per request);
  - traced: the same load with the embedded Vizier tracing it.
and prints the agent's user and system CPU per request (/proc/<agent>/stat, all threads, measured
until the agent has drained the run), the BPF programs' run time per request (kernel side, charged
to the traced syscalls; from the agent's prog fds' fdinfo with kernel.bpf_stats_enabled=1), nginx
CPU per request baseline vs traced, and, per rate, events lost, parse errors and http_events rows
from GetStatus. The agent traces the whole host: other processes' syscalls count too.

wrk (Debian's, 4.1) has no rate option: the rate is shaped with a Lua `delay()` per request over N
connections. wrk truncates delay() to whole milliseconds, so the delay is a fixed 10 ms and N is
set for the target rate by a 2 s calibration run (no agent); the achieved rate is what is reported.

Every child (nginx, wrk, the Vizier) runs in its own session and its process group is killed on
the way out, also on SIGTERM/SIGHUP (e.g. from `timeout`).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.vizier_proc import cleanup_on_signals, free_port, log, running_vizier, stop_group

GOAL_US = 15.0
TICKS = os.sysconf("SC_CLK_TCK")
BODY = b'{"status":"ok","items":[1,2,3],"message":"' + b"x" * 200 + b'"}'
DELAY_MS = 10  # integer: wrk 4.1 truncates delay() to whole ms
PER_REQ_MS = DELAY_MS + 0.4  # delay + loopback round trip + wrk's timer slack, measured on this VM
BPF_STATS = Path("/proc/sys/kernel/bpf_stats_enabled")
IDLE_S = 2.0


def cpu_split(pid: int) -> tuple[float, float]:
    """(utime, stime) in seconds, summed over all threads."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[11]) / TICKS, int(fields[12]) / TICKS


def bpf_run_ns(pid: int) -> int:
    """Sum of run_time_ns over the BPF programs whose fds the process holds."""
    total = 0
    for fd in os.listdir(f"/proc/{pid}/fdinfo"):
        try:
            info = Path(f"/proc/{pid}/fdinfo/{fd}").read_text()
        except OSError:
            continue
        if "prog_type:" in info:
            m = re.search(r"run_time_ns:\s*(\d+)", info)
            total += int(m.group(1)) if m else 0
    return total


def group_pids(pgid: int) -> list[int]:
    """Live processes in a process group (nginx master + workers), from /proc."""
    pids = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            fields = Path(f"/proc/{d}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":
            pids.append(int(d))
    return pids


def group_cpu_s(pgid: int) -> float:
    """On-CPU time of a process group's (single-threaded) processes, in ns resolution (schedstat),
    not clock ticks: nginx uses only ~0.1 s of CPU per run."""
    total = 0
    for p in group_pids(pgid):
        with contextlib.suppress(OSError):
            total += int(Path(f"/proc/{p}/schedstat").read_text().split()[0])
    return total / 1e9


def start_nginx(tmp: Path, port: int) -> subprocess.Popen:
    www = tmp / "www"
    www.mkdir()
    (www / "api").write_bytes(BODY)
    for p in (tmp, www, www / "api"):  # the workers run as nobody: mkdtemp's 0700 gave 403s
        p.chmod(0o755)
    conf = tmp / "nginx.conf"
    conf.write_text(f"""
worker_processes 1; daemon off; pid {tmp}/nginx.pid; error_log {tmp}/error.log;
events {{ worker_connections 4096; }}
http {{ access_log off; keepalive_requests 1000000;
  server {{ listen 127.0.0.1:{port}; root {www}; default_type application/json; }} }}
""")
    proc = subprocess.Popen(["nginx", "-c", str(conf), "-p", str(tmp)], stdin=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    return proc


def wait_nginx(proc: subprocess.Popen, tmp: Path, port: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    last = ""
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            break
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/api", timeout=1) as r:
                if r.status == 200 and r.read() == BODY:
                    return
                last = f"HTTP {r.status}"
        except (urllib.error.URLError, OSError) as e:
            last = str(e)
        time.sleep(0.05)
    err = (tmp / "error.log").read_text()[-1000:] if (tmp / "error.log").exists() else ""
    raise RuntimeError(f"nginx not serving on port {port} (exit {proc.poll()}, last: {last})\n{err}")


def run_wrk(port: int, conns: int, seconds: int, tmp: Path) -> tuple[float, int]:
    """Returns (achieved req/s, requests). wrk takes whole seconds only."""
    lua = tmp / "delay.lua"
    lua.write_text(f"function delay() return {DELAY_MS} end\n")
    cmd = ["wrk", "-t", "1", "-c", str(conns), "-d", f"{seconds}s", "-s", str(lua), f"http://127.0.0.1:{port}/api"]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 30, stdin=subprocess.DEVNULL)
    m = re.search(r"(\d+) requests in ([\d.]+)(m?s)", out.stdout)
    if out.returncode != 0 or not m:
        raise RuntimeError(f"wrk failed ({out.returncode}): {out.stdout}{out.stderr}")
    if "Non-2xx" in out.stdout or "Socket errors" in out.stdout:
        log("wrk reported errors:\n" + out.stdout)
    reqs = int(m.group(1))
    dur = float(m.group(2)) / (1000 if m.group(3) == "ms" else 1)
    return reqs / dur, reqs


def calibrate(port: int, rate: int, tmp: Path) -> int:
    """Connections for `rate` at DELAY_MS per request: a first guess, corrected by one short run."""
    conns = max(1, round(rate * PER_REQ_MS / 1000))
    achieved, _ = run_wrk(port, conns, 2, tmp)
    return max(1, round(conns * rate / achieved))


def other_agents(own: int | None) -> list[int]:
    """Other embedded Viziers on the host: their probes also fire on nginx's and wrk's syscalls."""
    found = []
    for d in os.listdir("/proc"):
        if d.isdigit() and int(d) != own:
            with contextlib.suppress(OSError):
                if b"cluster.vizier.embedded" in Path(f"/proc/{d}/cmdline").read_bytes():
                    found.append(int(d))
    return found


@dataclass
class AgentCounters:
    lost: int
    parse_errors: int
    http_rows: int  # rows ever written: current + evicted


def agent_counters(client: Any) -> AgentCounters:
    st = client.get_status()
    lost = sum(a.events_lost for a in st.agents)
    errs = sum(a.parse_errors for a in st.agents)
    rows = sum(t.rows + t.rows_evicted for a in st.agents for t in a.tables if t.name == "http_events")
    return AgentCounters(lost, errs, rows)


def wait_drained(client: Any, timeout: float = 20.0) -> AgentCounters:
    """Poll until http_events stops growing (3 polls, 0.6 s) so the agent's CPU includes the backlog."""
    deadline = time.monotonic() + timeout
    last = agent_counters(client)
    still = 0
    while time.monotonic() < deadline and still < 3:
        time.sleep(0.2)
        cur = agent_counters(client)
        still = still + 1 if cur.http_rows == last.http_rows else 0
        last = cur
    return last


def measure(rate: int, conns: int, seconds: int, port: int, ngx_pgid: int, tmp: Path,
            agent_pid: int | None = None, client: Any = None) -> dict[str, float]:
    c0 = agent_counters(client) if client else None
    a0 = cpu_split(agent_pid) if agent_pid else (0.0, 0.0)
    b0 = bpf_run_ns(agent_pid) if agent_pid else 0
    n0 = group_cpu_s(ngx_pgid)
    achieved, reqs = run_wrk(port, conns, seconds, tmp)
    n1 = group_cpu_s(ngx_pgid)
    c1 = wait_drained(client) if client else None
    a1 = cpu_split(agent_pid) if agent_pid else (0.0, 0.0)
    b1 = bpf_run_ns(agent_pid) if agent_pid else 0
    r: dict[str, float] = {
        "rate": achieved, "reqs": reqs, "conns": conns,
        "agent_user_us": (a1[0] - a0[0]) * 1e6 / reqs, "agent_sys_us": (a1[1] - a0[1]) * 1e6 / reqs,
        "bpf_us": (b1 - b0) / 1e3 / reqs, "nginx_us": (n1 - n0) * 1e6 / reqs,
    }
    if c0 and c1:
        r.update(lost=c1.lost - c0.lost, parse_errors=c1.parse_errors - c0.parse_errors,
                 http_rows=c1.http_rows - c0.http_rows)
    log(f"rate {rate}: {'traced' if agent_pid else 'baseline'} {achieved:.0f} req/s over {conns} conns")
    return r


def report(rates: list[int], seconds: int, base: dict[int, dict[str, float]],
           traced: dict[int, dict[str, float]]) -> None:
    print(f"agent CPU per traced HTTP request (nginx 1 worker + wrk 1 thread on loopback, {seconds:g} s per run, "
          f"wrk delay() {DELAY_MS} ms per request)")
    print(f"{'target':>7} {'conns':>5} {'base rps':>8} {'traced rps':>10} {'agent usr':>9} {'agent sys':>9} "
          f"{'bpf':>6} {'total us':>8} {'/15us':>6}  {'nginx us base -> traced':>24}")
    for r in rates:
        b, t = base[r], traced[r]
        total = t["agent_user_us"] + t["agent_sys_us"] + t["bpf_us"]
        ratio = t["nginx_us"] / b["nginx_us"] if b["nginx_us"] > 0 else float("nan")
        print(f"{r:>7} {t['conns']:>5.0f} {b['rate']:>8.0f} {t['rate']:>10.0f} {t['agent_user_us']:>9.2f} "
              f"{t['agent_sys_us']:>9.2f} {t['bpf_us']:>6.2f} {total:>8.2f} {total / GOAL_US:>5.2f}x  "
              f"{b['nginx_us']:>8.2f} -> {t['nginx_us']:>6.2f} ({ratio:.2f}x)")
    print("per traced run (from GetStatus deltas):")
    for r in rates:
        t = traced[r]
        print(f"{r:>7}: requests {t['reqs']:.0f}  events lost {t['lost']:.0f}  parse errors {t['parse_errors']:.0f}  "
              f"http_events rows {t['http_rows']:.0f} = {t['http_rows'] / t['reqs']:.2f} per request "
              f"(2 expected: nginx server side + wrk client side)")
    print("usr/sys: agent process CPU (all threads, incl. draining after wrk stops); bpf: run_time_ns of the "
          "agent's BPF programs")
    print("(kernel, in the traced processes' syscalls, host-wide); nginx CPU includes that BPF time")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=int, default=10, help="wrk duration per run, whole seconds (4 runs)")
    ap.add_argument("--rates", default="2000,10000", help="target req/s, comma separated")
    a = ap.parse_args()
    if os.geteuid() != 0:
        sys.exit("run as root: the agent loads eBPF")
    for tool in ("nginx", "wrk"):
        if not shutil.which(tool):
            sys.exit(f"{tool} not found: run scripts/bootstrap.sh")
    rates = [int(r) for r in a.rates.split(",")]
    cleanup_on_signals()
    stats_before = BPF_STATS.read_text().strip()
    tmp = Path(tempfile.mkdtemp(prefix="pxtui-bench-"))
    ngx: subprocess.Popen | None = None
    try:
        port = free_port()
        ngx = start_nginx(tmp, port)
        wait_nginx(ngx, tmp, port)
        log(f"nginx pids {group_pids(ngx.pid)} on port {port}")
        conns = {r: calibrate(port, r, tmp) for r in rates}
        others = other_agents(None)
        base = {r: measure(r, conns[r], a.seconds, port, ngx.pid, tmp) for r in rates}

        t0 = time.monotonic()
        with running_vizier(tmp / "state") as v:
            viz, client = v.proc, v.client()
            log(f"Vizier pid {viz.pid} ready in {time.monotonic() - t0:.1f} s")
            BPF_STATS.write_text("1")
            time.sleep(1.0)  # let start-up work (process scan, first flushes) settle
            i0 = sum(cpu_split(viz.pid))
            time.sleep(IDLE_S)
            idle_ms_s = (sum(cpu_split(viz.pid)) - i0) * 1e3 / IDLE_S
            try:
                traced = {r: measure(r, conns[r], a.seconds, port, ngx.pid, tmp, viz.pid, client) for r in rates}
                others = sorted(set(others) | set(other_agents(viz.pid)))
            finally:
                client.close()
    finally:
        stop_group(ngx, grace=5)
        BPF_STATS.write_text(stats_before)
        shutil.rmtree(tmp, ignore_errors=True)

    report(rates, a.seconds, base, traced)
    print(f"agent idle CPU before the runs: {idle_ms_s:.1f} ms/s (included in usr/sys above)")
    if others:
        print(f"WARNING: other embedded Viziers ran on this host during the bench (pids {others}): "
              "their probes and CPU use disturb both columns")
    return 0


if __name__ == "__main__":
    sys.exit(main())
