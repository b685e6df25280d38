"""Overhead of the OpenSSL uprobes per HTTPS request: nginx serving, wrk and a Python http.client
loop as clients, on loopback, both ends linked to OpenSSL 3 (so each request crosses the probes on
both sides: about 2 SSL_read + 2 SSL_write uprobe/uretprobe pairs).

Run as root:  .venv/bin/python -m tests.bench.bench_tls [--seconds 3] [--requests 2000] [--rounds 5]

Phases, in the same run and process:
  none      no BPF at all, before loading and after unloading the tracer;
  syscalls  the socket tracer's syscall probes only (TLS off: ciphertext is captured, not parsed);
  tls       the same tracer with the OpenSSL uprobes attached (plaintext parsed into http_events).
syscalls and tls alternate for --rounds rounds (attaching or detaching the uprobes takes ~40 ms),
and the ratios are medians over the rounds of adjacent pairs: on a shared 2-core machine the load
of other processes drifts by tens of percent within a minute. For each phase: wrk's throughput
(1 thread, 4 connections, saturating both cores), the Python client's sequential keep-alive round
trip in us, the workload's CPU per request (wrk, the Python client and the nginx worker: a uprobe's
trap and program run in the traced process and are charged to it, so this is the cost of the probes
whatever else loads the machine), this process's CPU (the drain thread and the connection tracker
parsing into Arrow) per request, and http_events rows written. With
kernel.bpf_stats_enabled the uprobe programs' own run time per hit is printed too (it excludes
the uprobe trap itself, which dominates: ~3.5 us per hit on this VM, ebpf-notes §4).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from cluster.pem.conn_tracker import ConnTracker
from cluster.pem.process_info import ProcessCache
from cluster.pem.sources.openssl_probes import PROGRAMS
from cluster.pem.sources.socket_tracer import SocketTracer
from cluster.store.table_store import TableStore
from tests.vizier_proc import cleanup_on_signals, free_port, log, stop_group

PEERS = [sys.executable, str(Path(__file__).resolve().parents[1] / "integration" / "tls_peers.py")]
BPF_STATS = Path("/proc/sys/kernel/bpf_stats_enabled")
NGINX_CONF = """
worker_processes 1;
user root;
daemon off;
pid {d}/nginx.pid;
error_log {d}/error.log warn;
events {{ worker_connections 256; }}
http {{
    access_log off;
    keepalive_requests 1000000;
    client_body_temp_path {d}/body;
    proxy_temp_path {d}/proxy;
    fastcgi_temp_path {d}/fastcgi;
    uwsgi_temp_path {d}/uwsgi;
    scgi_temp_path {d}/scgi;
    server {{
        listen 127.0.0.1:{port} ssl;
        ssl_certificate {d}/cert.pem;
        ssl_certificate_key {d}/key.pem;
        location / {{
            default_type application/json;
            return 200 '{{"status":"ok","items":[1,2,3],"message":"{pad}"}}';
        }}
    }}
}}
"""


@dataclass
class Phase:
    name: str
    wrk_rps: float
    wrk_requests: int
    py_us: float
    py_requests: int
    agent_cpu_s: float
    workload_cpu_s: float
    rows: int
    uprobe_ns: float | None  # BPF run time per uprobe program run (None: stats off or no probes)

    @property
    def requests(self) -> int:
        return self.wrk_requests + self.py_requests


def cpu_self() -> float:
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime


def cpu_children() -> float:
    """CPU of waited-for children (wrk, the Python client)."""
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


TICKS = os.sysconf("SC_CLK_TCK")


def cpu_of(pids: list[int]) -> float:
    total = 0.0
    for pid in pids:
        with contextlib.suppress(OSError):
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / TICKS
    return total


def nginx_workers(master: int) -> list[int]:
    kids = Path(f"/proc/{master}/task/{master}/children").read_text().split()
    return [int(k) for k in kids]


def prog_stats(tracer: SocketTracer | None) -> tuple[int, int]:
    """(run_time_ns, run_cnt) summed over the uprobe programs (fdinfo, kernel.bpf_stats_enabled=1)."""
    b = getattr(tracer, "_bpf", None)
    if b is None or tracer is None or tracer.tls is None:
        return 0, 0
    ns = cnt = 0
    for name in PROGRAMS:
        fn = b.funcs.get(name.encode())
        if fn is None:
            continue
        info = Path(f"/proc/self/fdinfo/{fn.fd}").read_text()
        m_ns, m_cnt = re.search(r"run_time_ns:\s*(\d+)", info), re.search(r"run_cnt:\s*(\d+)", info)
        ns += int(m_ns[1]) if m_ns else 0
        cnt += int(m_cnt[1]) if m_cnt else 0
    return ns, cnt


def run_wrk(port: int, seconds: float) -> tuple[float, int]:
    out = subprocess.run(["wrk", "-t1", "-c4", f"-d{seconds:g}s", f"https://127.0.0.1:{port}/bench"],
                         capture_output=True, text=True, check=True, timeout=seconds + 60)  # fmt: skip
    rps = float(re.search(r"Requests/sec:\s*([\d.]+)", out.stdout)[1])  # type: ignore[index]
    n = int(re.search(r"(\d+) requests in", out.stdout)[1])  # type: ignore[index]
    return rps, n


def run_python(port: int, cafile: str, n: int) -> float:
    out = subprocess.run([*PEERS, "get", str(port), cafile, "/bench-py", str(n)], capture_output=True, text=True,
                         check=True, timeout=300)  # fmt: skip
    return float(out.stdout.strip()) / n * 1e6


def measure(name: str, port: int, cafile: str, args: argparse.Namespace, tracer: SocketTracer | None,
            tracker: ConnTracker | None) -> Phase:  # fmt: skip
    rows0 = tracker.stats.records.get("http_events", 0) if tracker else 0
    ns0, cnt0 = prog_stats(tracer)
    w0 = cpu_children() + cpu_of(args.workers)
    c0 = cpu_self()
    rps, n = run_wrk(port, args.seconds)
    py_us = run_python(port, cafile, args.requests)
    workload = cpu_children() + cpu_of(args.workers) - w0
    if tracer is not None and tracker is not None:
        time.sleep(0.2)  # the drain thread picks up the tail
        tracer.drain_now()
        tracker.flush()
    cpu = cpu_self() - c0
    ns1, cnt1 = prog_stats(tracer)
    rows = (tracker.stats.records.get("http_events", 0) if tracker else 0) - rows0
    uprobe_ns = (ns1 - ns0) / (cnt1 - cnt0) if cnt1 > cnt0 and ns1 > ns0 else None
    phase = Phase(name, rps, n, py_us, args.requests, cpu, workload, rows, uprobe_ns)
    log(f"{name}: wrk {rps:,.0f} req/s, python {py_us:.1f} us/request, workload "
        f"{workload / phase.requests * 1e6:.1f} us CPU/request, agent {cpu:.2f} s CPU, {rows} rows")  # fmt: skip
    return phase


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=3.0, help="wrk run per phase")
    ap.add_argument("--requests", type=int, default=2000, help="sequential Python requests per phase")
    ap.add_argument("--rounds", type=int, default=5, help="syscalls/tls pairs")
    args = ap.parse_args()
    if os.geteuid() != 0:
        sys.exit("bench_tls loads eBPF: run it as root")
    for tool in ("nginx", "wrk", "openssl"):
        if shutil.which(tool) is None:
            sys.exit(f"{tool} is missing: apt-get install nginx-light wrk openssl")
    cleanup_on_signals()
    stats_was = BPF_STATS.read_text().strip() if BPF_STATS.exists() else None
    nginx: subprocess.Popen | None = None
    tracer: SocketTracer | None = None
    with tempfile.TemporaryDirectory(prefix="bench-tls-") as tmp:
        d = Path(tmp)
        try:
            subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj",
                            "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(d / "key.pem"),
                            "-out", str(d / "cert.pem")], check=True, capture_output=True)  # fmt: skip
            port = free_port()
            (d / "nginx.conf").write_text(NGINX_CONF.format(d=d, port=port, pad="x" * 200))
            nginx = subprocess.Popen(["nginx", "-c", str(d / "nginx.conf"), "-p", str(d)], start_new_session=True)
            deadline = time.monotonic() + 10
            while subprocess.run(["curl", "-skf", "-o", "/dev/null", f"https://127.0.0.1:{port}/"]).returncode:
                if time.monotonic() > deadline or nginx.poll() is not None:
                    sys.exit("nginx did not start")
                time.sleep(0.1)
            args.workers = nginx_workers(nginx.pid)
            if stats_was is not None:
                BPF_STATS.write_text("1")
            cafile = str(d / "cert.pem")
            phases = [measure("none", port, cafile, args, None, None)]
            tracker = ConnTracker(TableStore(), ProcessCache(asid=1), conn_stats_period_s=3600)
            tracer = SocketTracer(tracker.handle, tls=False)
            t0 = time.monotonic()
            tracer.start()
            log(f"syscall probes loaded in {time.monotonic() - t0:.1f} s")
            for r in range(args.rounds):
                phases.append(measure("syscalls", port, cafile, args, tracer, tracker))
                t0 = time.monotonic()
                tracer.attach_tls()
                tls = tracer.stats()["tls"]
                if not tls["attached"]:
                    sys.exit(f"the OpenSSL uprobes did not attach: {tls}")
                if r == 0:
                    libs = ", ".join(f"{lib['path']} ({len(lib['pids'])} processes)" for lib in tls["libraries"])
                    log(f"uprobes attached in {time.monotonic() - t0:.2f} s: {libs}")
                phases.append(measure("tls", port, cafile, args, tracer, tracker))
                tracer.detach_tls()
            lost = tracer.stats()["events_lost"]
            tracer.stop()
            tracer = None
            phases.append(measure("none", port, cafile, args, None, None))
        finally:
            if tracer is not None:
                tracer.stop()
            stop_group(nginx, grace=5)
            if stats_was is not None:
                with contextlib.suppress(OSError):
                    BPF_STATS.write_text(stats_was)
    report(phases, lost, args)


def report(phases: list[Phase], lost: int, args: argparse.Namespace) -> None:
    by = {name: [p for p in phases if p.name == name] for name in ("none", "syscalls", "tls")}
    pairs = list(zip(by["syscalls"], by["tls"], strict=True))
    print(f"\nHTTPS: nginx (1 worker) <- wrk -t1 -c4 {args.seconds:g}s, then {args.requests} sequential "
          f"http.client requests per phase; both ends on OpenSSL 3; {args.rounds} syscalls/tls rounds\n")  # fmt: skip
    print(f"{'phase':<10} {'wrk req/s':>10} {'python us/req':>14} {'workload CPU us/req':>20} "
          f"{'agent CPU us/req':>17} {'http rows':>10}")  # fmt: skip
    for p in phases:
        print(f"{p.name:<10} {p.wrk_rps:>10,.0f} {p.py_us:>14.1f} {p.workload_cpu_s / p.requests * 1e6:>20.1f} "
              f"{p.agent_cpu_s / p.requests * 1e6:>17.1f} {p.rows:>10}")  # fmt: skip
    med = statistics.median
    print()
    print(f"median over {len(pairs)} adjacent (syscalls, tls) pairs:")
    wl = [(s.workload_cpu_s / s.requests * 1e6, t.workload_cpu_s / t.requests * 1e6) for s, t in pairs]
    print(f"  workload CPU per request (wrk + client + nginx, both ends probed), tls / syscalls-only: "
          f"{med(t / s for s, t in wl):.3f}; added by the uprobes: {med(t - s for s, t in wl):+.1f} us "
          f"per request (no BPF: {med(p.workload_cpu_s / p.requests * 1e6 for p in by['none']):.1f} us)")  # fmt: skip
    added_us = med((1 / t.wrk_rps - 1 / s.wrk_rps) * 1e6 for s, t in pairs)
    print(f"  wrk throughput ratio tls / syscalls-only: {med(t.wrk_rps / s.wrk_rps for s, t in pairs):.3f}; "
          f"wall time added per request at saturation: {added_us:+.1f} us")  # fmt: skip
    print(f"  python round-trip ratio tls / syscalls-only: {med(t.py_us / s.py_us for s, t in pairs):.3f}; "
          f"added: {med(t.py_us - s.py_us for s, t in pairs):+.1f} us per request")  # fmt: skip
    print(f"  agent CPU per request: syscalls-only {med(s.agent_cpu_s / s.requests * 1e6 for s, _ in pairs):.1f} us "
          f"(ciphertext: byte counts only), tls {med(t.agent_cpu_s / t.requests * 1e6 for _, t in pairs):.1f} us "
          f"(plaintext parsed into 2 rows per request)")  # fmt: skip
    none_rps = med(p.wrk_rps for p in by["none"])
    print(
        f"  against no BPF at all (median of {len(by['none'])} runs, {none_rps:,.0f} req/s): syscalls-only "
        f"{med(s.wrk_rps for s, _ in pairs) / none_rps:.3f}, tls {med(t.wrk_rps for _, t in pairs) / none_rps:.3f}"
    )
    ns = [t.uprobe_ns for _, t in pairs if t.uprobe_ns is not None]
    if ns:
        print(f"  uprobe programs' own BPF run time: {med(ns):.0f} ns per run (entry or return; excludes the trap)")
    rows = sum(t.rows for _, t in pairs)
    reqs = sum(t.requests for _, t in pairs)
    print(
        f"http_events rows in the tls phases: {rows} for {reqs} requests ({rows / (2 * reqs):.0%} of 2 per "
        f"request: client and server); in the syscalls-only phases: {sum(s.rows for s, _ in pairs)} "
        f"(other processes' plain HTTP on this host)"
    )
    print(f"events lost (ring full): {lost}")


if __name__ == "__main__":
    main()
