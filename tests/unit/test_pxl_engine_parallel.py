"""The engine's fast paths give the same answers as its plain ones.

Fast paths: filters/maps over a source run per batch in worker threads (with columns the rest of the
chain never reads dropped before a filter), an aggregate with one quantiles column runs as one fused
histogram pass, and big inputs are aggregated in halves whose partial states are merged.  Each is
checked against the sequential, unfused, unsplit engine on generated data (labelled test data)."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import cluster.pxl.exec.fused_aggregate as fused
import cluster.pxl.exec.operators as operators
import cluster.pxl.exec.parallel_agg as parallel_agg
from cluster.pxl import execute
from tests.unit.test_pxl_planner import PIDS, compile_t, make_table
from tests.unit.test_pxl_support import FakeMetadata, FakeTables

METADATA = FakeMetadata({100: {"service_name": "ns/a"}, 101: {"service_name": "ns/b"},
                         102: {"service_name": "ns/a"}})

QUERIES = (
    # fused: one quantiles column with plain aggregates, keys of every kind
    ("df.service = df.ctx['service']\ndf.ts = px.bin(df.time_, px.DurationNanos(3 * 1000 * 1000 * 1000))\n"
     "df.failure = df.n >= 0\n"
     "px.display(df.groupby(['service', 'ts']).agg(q=('lat', px.quantiles), e=('failure', px.mean), "
     "c=('lat', px.count), s=('n', px.sum), mx=('x', px.max), mn=('time_', px.min), a=('svc', px.any)))\n",
     "set"),
    ("px.display(df.groupby(['ok', 'upid', 'n']).agg(q=('x', px.quantiles), s=('x', px.sum)))\n", "set"),
    ("px.display(df.groupby('svc').agg(q=('n', px.quantiles)))\n", "set"),
    # split partials (no quantiles, and two quantiles)
    ("px.display(df.groupby(['svc', 'ok']).agg(c=('n', px.count), m=('x', px.mean), hi=('lat', px.max)))\n",
     "set"),
    ("px.display(df.groupby('svc').agg(q=('lat', px.quantiles), qx=('x', px.quantiles)))\n", "set"),
    ("px.display(df.agg(c=('n', px.count), s=('lat', px.sum)))\n", "set"),
    # chains: filters with pruning, projection, head
    ("df = df[df.n > 0]\ndf = df[df.ok]\ndf = df[['time_', 'svc', 'lat']]\npx.display(df)\n", "ordered"),
    ("df = df[px.contains(df.svc, 'a')]\ndf = df[['svc', 'n']]\npx.display(df.head(3))\n", "ordered"),
    ("df.m = df.n * 2\ndf = df[df.m > 2]\npx.display(df)\n", "ordered"),
)

row = st.tuples(st.sampled_from(["a", "b", "c", "ab"]), st.integers(-5, 5), st.integers(-20, 20), st.booleans(),
                st.integers(0, 10**7), st.sampled_from(PIDS))


def _rows(table) -> list[str]:
    return [repr(tuple(r.values())) for r in table.to_pylist()]


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                  HealthCheck.function_scoped_fixture])
@given(rows=st.lists(row, max_size=40), query=st.sampled_from(QUERIES), batch_rows=st.integers(1, 7))
def test_fast_paths_equal_the_plain_engine(monkeypatch: pytest.MonkeyPatch, rows, query, batch_rows) -> None:
    body, how = query
    compiled = compile_t(body)
    table = make_table(rows)
    # fast: threads on, split at any size
    monkeypatch.setattr(fused, "_SPLIT_MIN_ROWS", 2)
    monkeypatch.setattr(parallel_agg, "SPLIT_MIN_ROWS", 2)
    fast = execute(compiled, FakeTables({"t": table}, batch_rows=batch_rows), METADATA)
    # plain: no threads, no fused aggregate
    monkeypatch.setattr(operators, "POOL", None)
    monkeypatch.setattr(parallel_agg, "POOL", None)
    monkeypatch.setattr(operators, "aggregate_fused", lambda *a: None)
    plain = execute(compiled, FakeTables({"t": table}, batch_rows=batch_rows), METADATA)
    for (fname, f), (pname, p) in zip(fast, plain, strict=True):
        assert fname == pname
        assert f.schema.equals(p.schema, check_metadata=True)
        if how == "ordered":
            assert _rows(f) == _rows(p)
        else:
            assert sorted(_rows(f)) == sorted(_rows(p))


def test_head_over_a_chain_stops_the_scan_early() -> None:
    table = make_table([("a", 1, 0, True, 10, 100)] * 50)
    tables = FakeTables({"t": table}, batch_rows=5)
    out = execute(compile_t("df = df[df.n > 0]\npx.display(df.head(7))\n"), tables, None)
    assert out[0][1].num_rows == 7
    assert tables.batches_served == 2


@given(cells=st.sets(st.tuples(st.integers(0, 40), st.integers(0, 3000)), max_size=60))
def test_key_bucket_order_sorts_by_key_then_bucket(cells) -> None:
    import pyarrow as pa
    import pyarrow.compute as pc

    p = pa.array([(g << 23) + b for g, b in cells], pa.int64())
    assert fused._key_bucket_order(p).cast(pa.int64()).to_pylist() == \
        pc.sort_indices(p).cast(pa.int64()).to_pylist()


@given(counts=st.lists(st.integers(1, 9), min_size=1, max_size=30), data=st.data())
def test_rows_for_ranks_direct_and_sorted_agree(counts, data) -> None:
    import pyarrow as pa
    import pyarrow.compute as pc

    from cluster.pxl.funcs import quantile_sketch as qs

    c = pa.array(counts, pa.int64())
    starts = pc.subtract(pc.cumulative_sum(c), c)
    total = sum(counts)
    targets = pa.array(sorted(data.draw(st.lists(st.integers(0, total - 1), max_size=20))), pa.int64())
    want = [max(i for i, s in enumerate(starts.to_pylist()) if s <= t) for t in targets.to_pylist()]
    direct = qs._rows_for_ranks(starts, c, targets).cast(pa.int64()).to_pylist()
    saved = qs._DIRECT_RANKS
    qs._DIRECT_RANKS = 0
    try:
        by_sort = qs._rows_for_ranks(starts, c, targets).cast(pa.int64()).to_pylist()
    finally:
        qs._DIRECT_RANKS = saved
    assert direct == want == by_sort
