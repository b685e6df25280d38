"""The engine's encoded and pruned paths give what its plain paths give.

Covered: metadata look-ups and px.bin kept dictionary-encoded into a group-by (and decoded
everywhere else), chains that compute only the columns their consumer reads, consecutive filters
run cheapest first, the quantile sketch's bit-pattern buckets (ordered, at most RELATIVE_ERROR
wide), the fused aggregate's dense and sparse histograms and its merge of two grids, and the
vectorised quantile estimates against a per-group reference.  Generated rows are test data."""

from __future__ import annotations

import itertools
import math

import pyarrow as pa
import pyarrow.compute as pc
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import cluster.pxl.exec.fused_aggregate as fused
import cluster.pxl.exec.operators as operators
import cluster.pxl.exec.parallel_agg as parallel_agg
from cluster.pxl import execute
from cluster.pxl.funcs import quantile_sketch as qs
from tests.unit.test_pxl_planner import PIDS, compile_t, make_table
from tests.unit.test_pxl_support import FakeMetadata, FakeTables

METADATA = FakeMetadata(
    {
        100: {"service_name": "ns/a", "pod_name": "ns/p0"},
        101: {"service_name": "ns/b", "pod_name": "ns/p1"},
        102: {"service_name": "ns/a", "pod_name": "ns/p2"},
    }
)

row = st.tuples(
    st.sampled_from(["a", "b", "c", "ab"]),
    st.integers(-5, 5),
    st.integers(-20, 20),
    st.booleans(),
    st.integers(0, 10**7),
    st.sampled_from(PIDS),
)

QUERIES = (
    # look-up and bin as keys only: encoded into the fused aggregate
    "df.service = df.ctx['service']\ndf.ts = px.bin(df.n, 3)\n"
    "px.display(df.groupby(['service', 'ts']).agg(q=('lat', px.quantiles), c=('lat', px.count)))\n",
    # a key that is also an aggregated column, and negative / zero-crossing bins
    "df.service = df.ctx['service']\ndf.b = px.bin(df.n - 3, 2)\n"
    "px.display(df.groupby(['service', 'b']).agg(c=('service', px.count), s=('n', px.sum)))\n",
    # the look-up read again after the map that computes it (decoded for the filter and the output)
    "df.pod = df.ctx['pod']\ndf = df[px.contains(df.pod, '1')]\ndf = df[df.n > -3]\npx.display(df)\n",
    "df.pod = df.ctx['pod']\ndf.pod2 = df.pod\n"
    "px.display(df.groupby('pod2').agg(q=('x', px.quantiles), m=('x', px.max), a=('pod', px.any)))\n",
    # a whole-frame aggregate and a constant-only map: row counts survive column pruning
    "df.k = 1\npx.display(df.agg(c=('k', px.count)))\n",
    "df = df[df.ok]\ndf.w = px.bin(df.time_, px.DurationNanos(2 * 1000 * 1000 * 1000))\n"
    "px.display(df.groupby('w').agg(q=('lat', px.quantiles), c=('n', px.count)))\n",
)


def _rows(table: pa.Table) -> list[str]:
    return sorted(repr(tuple(r.values())) for r in table.to_pylist())


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture]
)
@given(
    rows=st.lists(row, max_size=40), query=st.sampled_from(QUERIES), batch_rows=st.integers(1, 50), sparse=st.booleans()
)
def test_encoded_and_pruned_paths_equal_the_plain_engine(
    monkeypatch: pytest.MonkeyPatch, rows, query, batch_rows, sparse
) -> None:
    compiled = compile_t(query)
    table = make_table(rows)
    monkeypatch.setattr(fused, "_SPLIT_MIN_ROWS", 2)
    if sparse:  # no grid fits: the histogram is merged and sorted instead
        monkeypatch.setattr(fused, "_MIN_GRID", 0)
    fast = execute(compiled, FakeTables({"t": table}, batch_rows=batch_rows), METADATA)
    # plain: no threads, no fused aggregate, no dictionary forms, no pruning
    monkeypatch.setattr(operators, "POOL", None)
    monkeypatch.setattr(parallel_agg, "POOL", None)
    monkeypatch.setattr(operators, "aggregate_fused", lambda *a: None)
    monkeypatch.setattr(operators, "_dictionary_plan", lambda steps, wanted: [frozenset()] * len(steps))
    plain_plan = operators._chain_plan
    monkeypatch.setattr(
        operators,
        "_chain_plan",
        lambda source, steps, encoded=frozenset(), needed=None: plain_plan(source, steps, encoded, None),
    )
    plain = execute(compiled, FakeTables({"t": table}, batch_rows=batch_rows), METADATA)
    for (fname, f), (pname, p) in zip(fast, plain, strict=True):
        assert fname == pname
        assert f.schema.equals(p.schema, check_metadata=True)
        assert not any(pa.types.is_dictionary(t) for t in f.schema.types)
        assert _rows(f) == _rows(p)


def test_group_by_keys_reach_the_aggregate_encoded_and_only_needed_columns_are_built() -> None:
    seen: list[pa.Schema] = []
    real = operators.aggregate_fused

    def spy(table, *args):
        seen.append(table.schema)
        return real(table, *args)

    q = compile_t(
        "df.service = df.ctx['service']\ndf.ts = px.bin(df.time_, px.DurationNanos(10))\n"
        "df.unused = px.contains(df.svc, 'a')\n"
        "px.display(df.groupby(['service', 'ts']).agg(q=('lat', px.quantiles)))\n"
    )
    table = make_table([("a", i, i, True, 1000 + i, PIDS[i % 3]) for i in range(30)])
    saved = operators.aggregate_fused
    operators.aggregate_fused = spy
    try:
        ((_, out),) = execute(q, FakeTables({"t": table}, batch_rows=8), METADATA)
    finally:
        operators.aggregate_fused = saved
    assert sorted(seen[0].names) == ["lat", "service", "ts"]
    assert pa.types.is_dictionary(seen[0].field("service").type)
    assert pa.types.is_dictionary(seen[0].field("ts").type)
    assert out.schema.field("service").type == pa.string()
    assert sorted(set(out.column("service").to_pylist())) == ["ns/a", "ns/b"]


def test_cheaper_filter_runs_first_and_the_rows_are_the_same() -> None:
    q = compile_t("df = df[px.contains(df.svc, 'a')]\ndf = df[df.n > 0]\npx.display(df)\n")
    sink = q.sinks[0].node
    source, steps = operators._chain(sink)
    plan = operators._chain_plan(source, steps)
    assert [s.node.predicate.func for s in plan.steps] == ["greaterThan", "contains"]
    table = make_table([(s, n, 0, True, 1, 100) for s in ("a", "b", "ab") for n in (-1, 0, 2, 3)])
    ((_, out),) = execute(q, FakeTables({"t": table}, batch_rows=5), None)
    assert list(zip(out.column("svc").to_pylist(), out.column("n").to_pylist(), strict=True)) == [
        ("a", 2),
        ("a", 3),
        ("ab", 2),
        ("ab", 3),
    ]


def test_metadata_dictionary_form_holds_each_answer_once() -> None:
    from cluster.pxl.funcs import EvalContext
    from cluster.pxl.funcs.metadata_funcs import upid_lookup_encoded
    from tests.unit.test_pxl_support import upid

    ups = pa.array([upid(p) for p in (100, 101, 102, 100, 103, 102)], pa.binary(16))
    md = FakeMetadata(METADATA.by_pid)
    out = upid_lookup_encoded(EvalContext(metadata=md), "service_name", ups)
    # pids 100 and 102 share a service: one dictionary entry, so a group-by on the codes is right
    assert sorted(out.dictionary.to_pylist()) == ["", "ns/a", "ns/b"]
    assert out.dictionary_decode().to_pylist() == ["ns/a", "ns/b", "ns/a", "ns/a", "", "ns/a"]
    assert md.calls == ["service_name"]  # asked once, for the four distinct upids


def test_bin_dictionary_form_matches_bin() -> None:
    from cluster.pxl.funcs import REGISTRY, Signature

    func = REGISTRY.scalar("bin")
    sig = Signature(("INT64", "INT64"), "INT64")
    x = pa.array([-7, -5, -1, 0, 1, 4, 5, 9, 10, 11], pa.int64())
    for width in (3, -3, 5, 1):
        w = pa.scalar(width, pa.int64())
        plain = func.impl(None, [x, w], sig, len(x))
        encoded = func.dict_impl(None, [x, w], sig, len(x))
        assert isinstance(encoded, pa.DictionaryArray)
        assert encoded.dictionary_decode().to_pylist() == plain.to_pylist()
    # a range of bins far wider than the rows: the plain form, not a huge dictionary
    wide = pa.array([0, 10**15], pa.int64())
    assert func.dict_impl(None, [wide, pa.scalar(1, pa.int64())], sig, 2).to_pylist() == [0, 10**15]
    assert func.dict_impl(None, [x, pa.scalar(0, pa.int64())], sig, len(x)).to_pylist() == x.to_pylist()


magnitude = st.one_of(st.floats(min_value=1e-300, max_value=1e300), st.integers(1, 10**15).map(float))
# values close together (within 4%), so buckets hold several of them and their width is tested
cluster_of_values = st.tuples(magnitude, st.lists(st.floats(0, 0.04), min_size=1, max_size=12), st.booleans()).map(
    lambda t: [(-1 if t[2] else 1) * t[0] * (1 + d) for d in t[1]]
)


@given(clusters=st.lists(cluster_of_values, min_size=1, max_size=5), zeros=st.integers(0, 2))
def test_bucket_keys_are_ordered_and_at_most_the_error_wide(clusters, zeros) -> None:
    values = [v for c in clusters for v in c] + [0.0] * zeros
    keys = qs.bucket_columns(pa.array(values, pa.float64()))["b"].to_pylist()
    pairs = sorted(zip(values, keys, strict=True))
    assert all(a[1] <= b[1] for a, b in itertools.pairwise(pairs))  # ordered like the values
    by_key: dict[int, list[float]] = {}
    for v, k in pairs:
        by_key.setdefault(k, []).append(v)
    for members in by_key.values():
        lo, hi = min(members), max(members)
        if lo == hi or lo == 0.0 or hi == 0.0:
            continue
        assert math.copysign(1, lo) == math.copysign(1, hi)  # a bucket never spans zero
        small, big = sorted((abs(lo), abs(hi)))
        assert big <= small * (1 + qs.RELATIVE_ERROR)


def test_bucket_keys_of_integers_equal_those_of_their_floats() -> None:
    ints = pa.array([1, 2, 3, 100, 101, 10**9, 7, 0, -3], pa.int64())
    assert qs.bucket_columns(ints)["b"].to_pylist() == qs.bucket_columns(ints.cast(pa.float64()))["b"].to_pylist()


def _grid(first: int, counts: list[int], lo: list[int | None]) -> pa.Table:
    return pa.table(
        {
            "__p": pa.array(range(first, first + len(counts)), pa.int64()),
            "__c": pa.array(counts, pa.int64()),
            "__lo": pa.array(lo, pa.int64()),
            "__hi": pa.array(lo, pa.int64()),
        }
    )


@given(a0=st.integers(0, 20), b0=st.integers(0, 20), data=st.data())
def test_merge_grids_merges_overlapping_cells_and_keeps_the_rest(a0, b0, data) -> None:
    def draw(first: int) -> tuple[dict[int, tuple[int, int | None]], pa.Table]:
        n = data.draw(st.integers(1, 12))
        counts = data.draw(st.lists(st.integers(0, 3), min_size=n, max_size=n))
        lo = [data.draw(st.integers(0, 99)) if c else None for c in counts]
        return {first + i: (c, v) for i, (c, v) in enumerate(zip(counts, lo, strict=True))}, _grid(first, counts, lo)

    (ca, a), (cb, b) = draw(a0), draw(b0)
    merged = fused._merge_grids([a, b])
    cells = merged.column("__p").to_pylist()
    assert cells == sorted(cells) and len(cells) == len(set(cells)) == len(set(ca) | set(cb))
    for cell, c, lo in zip(cells, merged.column("__c").to_pylist(), merged.column("__lo").to_pylist(), strict=True):
        parts = [p[cell] for p in (ca, cb) if cell in p]
        assert c == sum(p[0] for p in parts)
        present = [p[1] for p in parts if p[1] is not None]
        assert lo == (min(present) if present else None)


def _reference(groups: list[list[tuple[int, float, float]]]) -> list[list[float]]:
    """The sketch's estimates computed group by group in Python: the order statistic at a rank lies
    in the bucket holding it, interpolated between that bucket's min and max."""
    out = []
    for buckets in groups:
        total = sum(c for c, _, _ in buckets)

        def stat(rank: int, buckets: list[tuple[int, float, float]] = buckets) -> float:
            start = 0
            for c, lo, hi in buckets:
                if rank < start + c:
                    return lo if c == 1 else lo + (hi - lo) * ((rank - start) / max(c - 1, 1))
                start += c
            raise AssertionError(rank)

        row = []
        for q in qs.QUANTILES:
            pos = (total - 1) * q
            a, b = stat(math.floor(pos)), stat(math.ceil(pos))
            row.append(a + (b - a) * (pos - math.floor(pos)))
        out.append(row)
    return out


@given(
    groups=st.lists(
        st.lists(st.tuples(st.integers(0, 4), st.integers(0, 1000), st.integers(0, 50)), min_size=1, max_size=8),
        min_size=1,
        max_size=6,
    )
)
def test_quantiles_sorted_matches_a_per_group_reference(groups) -> None:
    gid, c, lo, hi, kept = [], [], [], [], []
    for g, buckets in enumerate(groups):
        for count, low, extra in buckets:
            gid.append(g)
            c.append(count)
            lo.append(float(low) if count else None)
            hi.append(float(low + extra) if count else None)
        rows = [(count, float(low), float(low + extra)) for count, low, extra in buckets if count]
        if rows:
            kept.append((g, rows))
    ids, values = qs.quantiles_sorted(
        pa.array(gid, pa.int64()), pa.array(c, pa.int64()), pa.array(lo, pa.float64()), pa.array(hi, pa.float64())
    )
    assert ids.to_pylist() == [g for g, _ in kept]
    want = _reference([rows for _, rows in kept])
    got = [[v[i] for v in (col.to_pylist() for col in values)] for i in range(len(kept))]
    for w, g in zip(want, got, strict=True):
        assert g == pytest.approx(w, rel=1e-12, abs=1e-9)


def test_dense_grid_comes_out_of_the_group_by_in_cell_order() -> None:
    cells = pa.array(range(10, 20), pa.int64())
    hist = pa.table(
        {"__p": pa.array([19, 10, 11, 12, 13, 14, 15, 16, 17, 18], pa.int64()), "__c": pa.array(range(10), pa.int64())}
    )
    ordered = fused._as_grid(hist, cells)
    assert ordered.column("__p").to_pylist() == list(range(10, 20))
    assert pc.sum(ordered.column("__c")).as_py() == 45
