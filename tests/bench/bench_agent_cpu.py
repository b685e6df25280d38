"""Agent CPU per traced HTTP request at about 2k and 10k req/s: nginx served, wrk loading, on loopback.

Run as root:  .venv/bin/python -m tests.bench.bench_agent_cpu [--seconds 10]

For each rate it measures, in the same run:
  - baseline: nginx + wrk with no agent (the workload's own throughput and CPU per request);
  - traced: the same load with the embedded Vizier tracing it.
and prints the agent's user and system CPU per request, the BPF programs' run time per request
(kernel side, charged to the traced syscalls; from the agent's prog fds' fdinfo with
kernel.bpf_stats_enabled=1), lost events, and the ratios to the baseline and to the goal (15 us).

wrk (Debian's, 4.1) has no rate option: the rate is set with a Lua `delay()` per request over a
fixed number of connections, and the achieved rate is what is reported.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from tests.conftest import ROOT, free_port, wait_until

GOAL_US = 15.0
TICKS = os.sysconf("SC_CLK_TCK")
BODY = b'{"status":"ok","items":[1,2,3],"message":"' + b"x" * 200 + b'"}'


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS  # utime + stime


def cpu_split(pid: int) -> tuple[float, float]:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[11]) / TICKS, int(fields[12]) / TICKS


def bpf_run_ns(pid: int) -> int:
    total = 0
    for fd in os.listdir(f"/proc/{pid}/fdinfo"):
        try:
            info = Path(f"/proc/{pid}/fdinfo/{fd}").read_text()
        except OSError:
            continue
        if "prog_type" in info:
            m = re.search(r"run_time_ns:\s*(\d+)", info)
            total += int(m.group(1)) if m else 0
    return total


def start_nginx(tmp: Path, port: int) -> subprocess.Popen:
    (tmp / "www").mkdir()
    (tmp / "www" / "api").write_bytes(BODY)
    conf = tmp / "nginx.conf"
    conf.write_text(f"""
worker_processes 1; daemon off; pid {tmp}/nginx.pid; error_log {tmp}/error.log;
events {{ worker_connections 1024; }}
http {{ access_log off; keepalive_requests 1000000;
  server {{ listen 127.0.0.1:{port}; root {tmp}/www; default_type application/json; }} }}
""")
    proc = subprocess.Popen(["nginx", "-c", str(conf), "-p", str(tmp)], stderr=subprocess.DEVNULL)
    wait_until(lambda: subprocess.run(["curl", "-sf", f"http://127.0.0.1:{port}/api"],
                                      capture_output=True).returncode == 0, 10, "nginx")
    return proc


def run_wrk(port: int, rate: int, seconds: float, tmp: Path) -> tuple[float, int]:
    conns = 4 if rate <= 2000 else 16
    delay_ms = max(conns * 1000.0 / rate - 0.05, 0.0)
    lua = tmp / f"delay{rate}.lua"
    lua.write_text(f"function delay() return {delay_ms:.3f} end\n")
    out = subprocess.run(["wrk", "-t", "1", "-c", str(conns), "-d", f"{seconds}s", "-s", str(lua),
                          f"http://127.0.0.1:{port}/api"], capture_output=True, text=True, check=True).stdout
    reqs = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
    return reqs / seconds, reqs


def nginx_pids(master: int) -> list[int]:
    kids = Path(f"/proc/{master}/task/{master}/children").read_text().split()
    return [master, *map(int, kids)]


def measure(rate: int, seconds: float, agent_pid: int | None, port: int, ngx: list[int], tmp: Path) -> dict:
    a0 = cpu_split(agent_pid) if agent_pid else (0.0, 0.0)
    b0 = bpf_run_ns(agent_pid) if agent_pid else 0
    n0 = sum(cpu_seconds(p) for p in ngx)
    achieved, reqs = run_wrk(port, rate, seconds, tmp)
    time.sleep(0.3)  # let the agent drain the last events
    a1 = cpu_split(agent_pid) if agent_pid else (0.0, 0.0)
    b1 = bpf_run_ns(agent_pid) if agent_pid else 0
    n1 = sum(cpu_seconds(p) for p in ngx)
    return {
        "rate": achieved, "reqs": reqs,
        "agent_user_us": (a1[0] - a0[0]) * 1e6 / reqs, "agent_sys_us": (a1[1] - a0[1]) * 1e6 / reqs,
        "bpf_us": (b1 - b0) / 1e3 / reqs, "nginx_us": (n1 - n0) * 1e6 / reqs,
    }


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--rates", default="2000,10000")
    a = ap.parse_args()
    if os.geteuid() != 0:
        sys.exit("run as root: the agent loads eBPF")
    for tool in ("nginx", "wrk", "curl"):
        if not shutil.which(tool):
            sys.exit(f"{tool} not found: run scripts/bootstrap.sh")
    Path("/proc/sys/kernel/bpf_stats_enabled").write_text("1")
    tmp = Path(tempfile.mkdtemp(prefix="pxtui-bench-"))
    port = free_port()
    ngx = start_nginx(tmp, port)
    rates = [int(r) for r in a.rates.split(",")]
    try:
        base = {r: measure(r, a.seconds, None, port, nginx_pids(ngx.pid), tmp) for r in rates}
        state = tmp / "state"
        state.mkdir()
        addr = f"127.0.0.1:{free_port()}"
        env = {**os.environ, "PXTUI_STATE_DIR": str(state)}
        viz = subprocess.Popen([sys.executable, "-m", "cluster.vizier.embedded", "--addr", addr], cwd=ROOT,
                               env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        from cluster.auth.api_keys import ApiKeyStore
        from pxtui.client import VizierClient

        _, key = ApiKeyStore(state / "api_keys.json").create("bench")
        client = VizierClient(addr, key)

        def ready() -> bool:
            try:
                client.get_status()
                return True
            except Exception:
                return False

        wait_until(ready, 90, "the Vizier")
        try:
            traced = {r: measure(r, a.seconds, viz.pid, port, nginx_pids(ngx.pid), tmp) for r in rates}
            agent = client.get_status().agents[0]
            http_rows = next((t.rows for t in agent.tables if t.name == "http_events"), 0)
        finally:
            client.close()
            viz.terminate()
            viz.wait(timeout=30)
    finally:
        ngx.terminate()
        ngx.wait(timeout=10)
        Path("/proc/sys/kernel/bpf_stats_enabled").write_text("0")
        shutil.rmtree(tmp, ignore_errors=True)

    print(f"agent CPU per traced HTTP request (nginx + wrk on loopback, {a.seconds:g} s per rate)")
    print(f"{'target':>8} {'base rps':>9} {'traced rps':>10} {'agent usr':>9} {'agent sys':>9} {'bpf':>7} "
          f"{'total us':>8} {'vs goal':>7} {'nginx us base->traced':>22}")
    for r in rates:
        b, t = base[r], traced[r]
        total = t["agent_user_us"] + t["agent_sys_us"] + t["bpf_us"]
        print(f"{r:>8} {b['rate']:>9.0f} {t['rate']:>10.0f} {t['agent_user_us']:>9.2f} {t['agent_sys_us']:>9.2f} "
              f"{t['bpf_us']:>7.2f} {total:>8.2f} {total / GOAL_US:>6.2f}x "
              f"{b['nginx_us']:>10.2f} -> {t['nginx_us']:.2f} ({t['nginx_us'] / max(b['nginx_us'], 1e-9):.2f}x)")
    print(f"events lost: {agent.events_lost}   parse errors: {agent.parse_errors}   http_events rows: {http_rows}"
          f"   (2 rows per request expected: nginx server side and wrk client side)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
