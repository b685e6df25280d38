"""The PerfData reader against real files, checked against what jstat printed for the same bytes.

Each fixture was copied from /tmp/hsperfdata_root/<pid> while the JVM (tests/fixtures/jvm/
Alloc.java, -Xmx64m) was stopped with SIGSTOP, and jstat -gc / -gccapacity ran on it before it
resumed, so the .txt files are an independent reading of exactly those bytes.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from cluster.pem.sources.hsperfdata import MAGIC, PerfDataError, heap_stats, parse

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "jvm"
KB = 1024


def jstat(name: str, kind: str) -> dict[str, float]:
    header, values = (FIXTURES / f"{name}.jstat-{kind}.txt").read_text().split("\n")[:2]
    return {k: float(v) if v != "-" else 0.0 for k, v in zip(header.split(), values.split(), strict=True)}


@pytest.mark.parametrize("name", ["hsperfdata_g1", "hsperfdata_serial"])
def test_matches_jstat(name: str) -> None:
    counters = parse((FIXTURES / f"{name}.bin").read_bytes())
    heap = heap_stats(counters)
    gc, cap = jstat(name, "gc"), jstat(name, "gccapacity")
    assert heap.young_gc_count == gc["YGC"] and heap.full_gc_count == gc["FGC"]
    assert heap.young_gc_count > 0 and heap.full_gc_count > 0
    assert heap.young_gc_time / 1e9 == pytest.approx(gc["YGCT"], abs=0.0006)
    assert heap.full_gc_time / 1e9 == pytest.approx(gc["FGCT"], abs=0.0006)
    used_kb = gc["S0U"] + gc["S1U"] + gc["EU"] + gc["OU"]
    assert heap.used_heap_size / KB == pytest.approx(used_kb, abs=1.0)
    assert heap.total_heap_size / KB == pytest.approx(cap["NGC"] + cap["OGC"], abs=1.0)
    assert heap.max_heap_size / KB == pytest.approx(64 * 1024, abs=1.0)  # -Xmx64m
    assert 0 < heap.used_heap_size <= heap.total_heap_size <= heap.max_heap_size


def test_strings_and_policy() -> None:
    c = parse((FIXTURES / "hsperfdata_g1.bin").read_bytes())
    assert c["sun.gc.policy.name"] == "GarbageFirst"
    assert c["sun.gc.collector.0.name"] == "G1 young collection pauses"
    assert c["sun.os.hrt.frequency"] == 1_000_000_000


def test_rejects_other_files() -> None:
    with pytest.raises(PerfDataError, match="magic"):
        parse(b"\x7fELF" + bytes(60))
    with pytest.raises(PerfDataError, match="too short"):
        parse(MAGIC.to_bytes(4, "big"))
    data = bytearray((FIXTURES / "hsperfdata_g1.bin").read_bytes())
    data[7] = 0  # accessible flag
    with pytest.raises(PerfDataError, match="not accessible"):
        parse(bytes(data))
    with pytest.raises(PerfDataError, match=r"hrt\.frequency"):
        heap_stats({"sun.gc.generation.0.capacity": 1})
