"""Query latency with 1, 3 and 6 agents each holding 1M http_events rows, and an agent's rejoin time.

    .venv/bin/python -m tests.bench.bench_multi_agent [--rows 1000000] [--agents 1,3,6] [--repeat 5]

SYNTHETIC DATA (tests/datagen.py, labelled so): one recording of --rows rows per request table is
written once and replayed by every agent (`pxtui agent --replay`, each with its own ASID). The
Vizier (`python -m cluster.vizier.server --no-embedded-pem`) and the agents are separate processes
talking real gRPC with service tokens, as in a cluster; they share this 2-core machine, so agents
compete for CPU here where a cluster gives each node its own.

Shapes: px/http_data (time filter, metadata columns, the global head of 1000 rows merged by time on
Kelvin) and px/service_stats (windowed aggregates and latency quantiles split into PEM partials and
a Kelvin merge). Per agent count, the median of --repeat runs through the real client; the ratio is
to the 1-agent run of the same shape in the same run. Then one agent is killed (SIGKILL) and
restarted: the time until the broker reports it healthy again (process start, recording load,
registration).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from cluster.auth.api_keys import ApiKeyStore
from pxtui.client import VizierClient
from pxtui.scripts import find
from tests import datagen
from tests.vizier_proc import ROOT, cleanup_on_signals, free_port, log, stop_group

SHAPES = {
    "http_data": ("px/http_data", {"start_time": "-10m", "max_num_records": "1000"}),
    "service_stats": ("px/service_stats", {"start_time": "-10m", "service": "shop/frontend"}),
}


def healthy(client: VizierClient) -> int:
    return sum(a.state == "AGENT_STATE_HEALTHY" for a in client.get_status().agents)


def wait(pred, timeout: float, what: str) -> float:  # type: ignore[no-untyped-def]
    t0 = time.monotonic()
    while not pred():
        if time.monotonic() - t0 > timeout:
            raise RuntimeError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(0.05)
    return time.monotonic() - t0


def start_agent(addr: str, rec: Path, asid: int, port: int, env: dict[str, str], logf) -> subprocess.Popen:  # type: ignore[no-untyped-def]
    return subprocess.Popen(
        [sys.executable, "-m", "cluster.pem.agent_main", "--broker", addr, "--replay", str(rec), "--asid", str(asid),
         "--listen", f"127.0.0.1:{port}", "--hostname", f"node-{asid}", "--memory-budget-mb", "2048"],
        cwd=ROOT, env=env, stdout=logf, stderr=subprocess.STDOUT, start_new_session=True)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--agents", default="1,3,6")
    ap.add_argument("--repeat", type=int, default=5)
    a = ap.parse_args()
    counts = [int(x) for x in a.agents.split(",")]
    cleanup_on_signals()
    tmp = Path(tempfile.mkdtemp(prefix="bench-multi-"))
    rec = tmp / "rec"
    t0 = time.monotonic()
    gen = datagen.generate(seed=5, rows=a.rows, duration_s=300)
    datagen.write_recording(rec, {"http_events": gen.tables["http_events"]}, gen.metadata, gen.end_time_ns,
                            gen.agents, datagen.SYNTHETIC_VERSION)
    del gen
    log(f"recording of {a.rows:,} http_events rows written in {time.monotonic() - t0:.1f} s")
    state = tmp / "state"
    state.mkdir()
    _, key = ApiKeyStore(state / "api_keys.json").create("bench")
    env = {**os.environ, "PXTUI_STATE_DIR": str(state)}
    addr = f"127.0.0.1:{free_port()}"
    logf = open(tmp / "log", "ab")  # noqa: SIM115
    vizier = subprocess.Popen([sys.executable, "-m", "cluster.vizier.server", "--addr", addr, "--no-embedded-pem",
                               "--timeout", "120", "--memory-budget-mb", "2048"],
                              cwd=ROOT, env=env, stdout=logf, stderr=subprocess.STDOUT, start_new_session=True)
    agents: list[subprocess.Popen] = []
    ports: list[int] = []
    client = VizierClient(addr, key, timeout_s=300)
    results: dict[str, dict[int, float]] = {s: {} for s in SHAPES}
    try:
        wait(lambda: (state / "service_jwt.key").exists(), 30, "the signing key")
        for n in counts:
            while len(agents) < n:
                ports.append(free_port())
                agents.append(start_agent(addr, rec, len(agents) + 1, ports[-1], env, logf))
            wait(lambda n=n: healthy(client) >= n, 120, f"{n} healthy agents")
            for shape, (script, args) in SHAPES.items():
                client.run(find(script), args)  # warm-up
                times = []
                for _ in range(a.repeat):
                    t = time.perf_counter()
                    res = client.run(find(script), args)
                    times.append(time.perf_counter() - t)
                    assert not res.warnings, res.warnings
                results[shape][n] = statistics.median(times)
                log(f"{n} agent(s) {shape}: median {results[shape][n] * 1000:.0f} ms "
                    f"(min {min(times) * 1000:.0f}, max {max(times) * 1000:.0f}), "
                    f"{sum(t.num_rows for _, t in res.tables)} rows out")
        # rejoin: kill -9 the last agent, start it again on the same address
        victim = len(agents) - 1
        agents[victim].send_signal(signal.SIGKILL)
        agents[victim].wait()
        want = len(agents)
        wait(lambda: healthy(client) < want, 30, "the broker to notice the dead agent")
        t = time.monotonic()
        agents[victim] = start_agent(addr, rec, victim + 1, ports[victim], env, logf)
        wait(lambda: healthy(client) >= want, 120, "the restarted agent")
        rejoin = time.monotonic() - t
        base = min(counts)
        print(json.dumps({"rows_per_agent": a.rows, "median_s": results,
                          "ratio_to_1_agent": {s: {n: round(v / r[base], 2) for n, v in r.items()}
                                               for s, r in results.items()},
                          "rejoin_s": round(rejoin, 2)}, indent=1))
        print(f"\nquery latency, {a.rows:,} rows per agent (median of {a.repeat}); ratio to {base} agent(s)")
        for shape, r in results.items():
            print(f"  {shape:14s} " + "  ".join(f"{n} agents: {v * 1000:6.0f} ms ({v / r[base]:.2f}x)"
                                                for n, v in r.items()))
        print(f"  agent rejoin after kill -9 and restart: {rejoin:.2f} s")
    finally:
        client.close()
        for p in agents:
            stop_group(p, grace=5)
        stop_group(vizier, grace=5)


if __name__ == "__main__":
    main()
