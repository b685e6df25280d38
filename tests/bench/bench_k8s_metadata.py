"""Kubernetes metadata: memory of the state and update latency, 10,000 pods against a 1,000-pod baseline.

Run:  .venv/bin/python -m tests.bench.bench_k8s_metadata [--pods 10000] [--baseline 1000] [--events 150]

For each cluster size, in this one run: a generated transcript (tests/fixtures/k8s/transcript.py,
pods of ~4 KB JSON each with managedFields, in deployments of 10 with a service each) is served by
tests/k8s_apiserver.py over HTTP to the real kubernetes client; KubernetesMetadata lists all seven
resources (pages of 500) and then watches them.
  - sync: wall time from start() until every resource is listed;
  - memory: bytes still allocated after the sync by code under cluster/metadata/k8s (tracemalloc,
    all frames, after gc), per pod; tracemalloc stops before the latency pass;
  - update latency: per pod event (ADDED, MODIFIED, DELETED in turn), the time from the server
    writing the event to the watch socket until the state answers the change (a waiter on the
    state's change condition checks it): p50, p99, max.
Prints each size's figures and the ratio of the large cluster to the baseline.
"""

from __future__ import annotations

import argparse
import gc
import statistics
import time
import tracemalloc
from collections.abc import Callable
from typing import Any

from cluster.metadata.k8s import KubernetesMetadata
from tests.fixtures.k8s.transcript import large_cluster
from tests.k8s_apiserver import FakeApiServer

TRACE_FRAMES = 6  # deep enough to see watcher.py/state.py under json and dataclass frames
TRACE_FILTER = [tracemalloc.Filter(True, "*/cluster/metadata/k8s/*", all_frames=True)]


def _answers(md: KubernetesMetadata, step: dict[str, Any]) -> Callable[[], bool]:
    """A predicate that holds once the state shows this event's change."""
    event = step["event"]
    meta = event["object"]["metadata"]
    state = md.state
    if event["type"] == "ADDED":
        return lambda: f"{meta['namespace']}/{meta['name']}" in state.pod_by_name
    if event["type"] == "DELETED":
        return lambda: state.pods[meta["uid"]].stop_ns != 0
    message = event["object"]["status"]["message"]
    return lambda: state.pods[meta["uid"]].message == message


def _state_bytes(server: FakeApiServer) -> int:
    """Bytes held after a full sync by allocations made under cluster/metadata/k8s (traced pass)."""
    md = KubernetesMetadata(server.api_client(), hostname="bench", page_size=500)
    gc.collect()
    tracemalloc.start(TRACE_FRAMES)
    try:
        md.start()
        if not md.wait_synced(900):
            raise RuntimeError(f"metadata did not sync: {md.status()}")
        gc.collect()
        snapshot = tracemalloc.take_snapshot().filter_traces(TRACE_FILTER)
    finally:
        tracemalloc.stop()
        md.stop()
    return sum(s.size for s in snapshot.statistics("filename"))


def measure(n_pods: int, n_events: int) -> dict[str, float]:
    """One cluster size: a traced sync for memory, then an untraced sync and the events for time."""
    server = FakeApiServer(large_cluster(n_pods, n_events)).start()
    try:
        state_bytes = _state_bytes(server)
        md = KubernetesMetadata(server.api_client(), hostname="bench", page_size=500)
        watches_before = server.watchers("pods")
        t0 = time.perf_counter()
        md.start()
        try:
            if not md.wait_synced(600):
                raise RuntimeError(f"metadata did not sync: {md.status()}")
            sync_s = time.perf_counter() - t0
            assert md.state.counts()["pods"] == n_pods, md.state.counts()
            latencies = _update_latencies(server, md, watches_before)
        finally:
            md.stop()
    finally:
        server.stop()
    latencies.sort()
    return {
        "pods": n_pods,
        "sync_s": sync_s,
        "state_mb": state_bytes / 1e6,
        "bytes_per_pod": state_bytes / n_pods,
        "p50_ms": statistics.median(latencies),
        "p99_ms": latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))],
        "max_ms": latencies[-1],
        "events": len(latencies),
    }


def _update_latencies(server: FakeApiServer, md: KubernetesMetadata, watches_before: int) -> list[float]:
    """ms from the server writing each event to the state answering it, once the pod watch is open
    (an event released earlier would wait for the connection, which is not what is measured)."""
    deadline = time.monotonic() + 30
    while server.watchers("pods") == watches_before and time.monotonic() < deadline:
        time.sleep(0.01)
    out = []
    for step in server.events:
        label = step["label"]
        done = _answers(md, step)
        server.play(until=label)
        if not md.state.wait_for(done, 10):
            raise RuntimeError(f"state never showed event {label}: {md.status()}")
        answered = time.monotonic_ns()
        out.append((answered - server.wait_sent(label)) / 1e6)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pods", type=int, default=10_000)
    parser.add_argument("--baseline", type=int, default=1_000)
    parser.add_argument("--events", type=int, default=150)
    args = parser.parse_args()
    rows = [measure(args.baseline, args.events), measure(args.pods, args.events)]
    heads = ("pods", "sync s", "state MB", "B/pod", "p50 ms", "p99 ms", "max ms", "events")
    print(" ".join(f"{h:>9}" for h in heads))
    for r in rows:
        print(
            f"{r['pods']:>9} {r['sync_s']:>9.2f} {r['state_mb']:>9.2f} {r['bytes_per_pod']:>9.0f} "
            f"{r['p50_ms']:>9.2f} {r['p99_ms']:>9.2f} {r['max_ms']:>9.2f} {r['events']:>9}"
        )
    base, big = rows
    print(
        f"ratio {big['pods']}/{base['pods']} pods: memory x{big['state_mb'] / base['state_mb']:.1f} "
        f"(per pod x{big['bytes_per_pod'] / base['bytes_per_pod']:.2f}), sync x{big['sync_s'] / base['sync_s']:.1f}, "
        f"update p50 x{big['p50_ms'] / base['p50_ms']:.2f}, p99 x{big['p99_ms'] / base['p99_ms']:.2f}"
    )


if __name__ == "__main__":
    main()
