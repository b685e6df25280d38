"""Cost of the bare-host metadata with network-namespace pods, against host-only naming.

Starts the demo (its roles in network namespaces: needs root), then times on this host's real
processes: a df.ctx['service'] look-up over 100k rows (warm: the usual case, every distinct process
seen before; cold: a fresh metadata source), a full namespace scan, and an IP -> pod look-up over
10k rows. The baseline is the same source with namespaces ignored (every process a host pod), which
is what the bare-host metadata did before; best of 7 runs each, alternating with the baseline.

    sudo .venv/bin/python -m tests.bench.bench_local_metadata
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable

import pyarrow as pa

from cluster.metadata.local import LocalMetadata
from cluster.metadata.netns import NetnsPod
from cluster.pem.process_info import ProcessCache, ProcessInfo
from cluster.pem.sources.procfs import list_pids
from pxtui import demo, demo_net

ROWS = 100_000


class HostOnly(LocalMetadata):
    """The baseline: namespaces ignored, so every process is named as a host process."""

    def pod_of(self, info: ProcessInfo) -> NetnsPod | None:
        return None


def best_pair(fn: Callable[[], object], baseline: Callable[[], object], runs: int = 7) -> tuple[float, float]:
    """Best time of each, run alternately so that load from elsewhere hits both alike."""
    times: tuple[list[float], list[float]] = ([], [])
    for _ in range(runs):
        for f, out in ((fn, times[0]), (baseline, times[1])):
            t0 = time.perf_counter()
            f()
            out.append(time.perf_counter() - t0)
    return min(times[0]), min(times[1])


def best(fn: Callable[[], object], runs: int = 7) -> float:
    return best_pair(fn, lambda: None, runs)[0]


def main() -> None:
    if os.geteuid() != 0:
        sys.exit("bench_local_metadata: needs root (the demo's network namespaces)")
    print(demo.start(rate=5))
    try:
        time.sleep(2)  # let the demo's start-up CPU settle
        processes = ProcessCache(1)
        upids = [processes.lookup(p).upid for p in list_pids() if processes.lookup(p).start_ticks]
        rows = pa.array([upids[i % len(upids)] for i in range(ROWS)], pa.binary(16))
        md, base = LocalMetadata(processes), HostOnly(processes)
        md.upid_attr("service_name", rows)
        base.upid_attr("service_name", rows)
        pods = sum(1 for v in md.upid_attr("namespace", pa.array(upids, pa.binary(16))).to_pylist() if v == "demo")
        warm, warm_base = best_pair(lambda: md.upid_attr("service_name", rows),
                                    lambda: base.upid_attr("service_name", rows))  # fmt: skip
        cold, cold_base = best_pair(lambda: LocalMetadata(processes).upid_attr("service_name", rows),
                                    lambda: HostOnly(processes).upid_attr("service_name", rows))  # fmt: skip
        scan = best(md.netns.scan)
        pod_ips = [p.ip for p in demo_net.layout(list(demo.ROLES)).pods.values()] + ["127.0.0.1"]
        ips = pa.array([pod_ips[i % len(pod_ips)] for i in range(10_000)])
        by_ip = best(lambda: md.entity_attr("ip", "pod_id", ips))
        print(f"{len(upids)} processes ({pods} in demo pods), {ROWS} rows; best of 7")
        print(f"ctx['service'] warm: {warm * 1e3:.2f} ms  host-only baseline {warm_base * 1e3:.2f} ms  "
              f"ratio {warm / warm_base:.2f}")  # fmt: skip
        print(f"ctx['service'] cold: {cold * 1e3:.2f} ms  host-only baseline {cold_base * 1e3:.2f} ms  "
              f"ratio {cold / cold_base:.2f}")  # fmt: skip
        print(f"full namespace scan: {scan * 1e3:.2f} ms;  ip_to_pod_id over 10k rows: {by_ip * 1e3:.2f} ms")
    finally:
        print(demo.stop())


if __name__ == "__main__":
    main()
