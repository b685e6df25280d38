"""The planner: which operators run on the PEMs and which on Kelvin, and that running a query split
across 1-4 agents (Arrow IPC in between) gives what one node gives over all the rows."""

from __future__ import annotations

import json

import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cluster.pxl import compile_pxl, execute, ir
from cluster.pxl.exec.fragments import FinalAgg, PartialAgg, Receive
from cluster.pxl.funcs.quantile_sketch import QUANTILES, RELATIVE_ERROR
from cluster.pxl.planner import ORDER_COLUMN, AgentsMetadata, execute_distributed, from_ipc, plan, to_ipc
from cluster.schemas import TIME64NS, UINT128
from tests.unit.test_pxl_support import NOW, SEC, FakeMetadata, FakeTables, upid

SCHEMA = pa.schema([("time_", TIME64NS), ("upid", UINT128), ("svc", pa.string()), ("n", pa.int64()),
                    ("x", pa.float64()), ("ok", pa.bool_()), ("lat", pa.int64())])
SCHEMAS = {"t": SCHEMA}
PIDS = (100, 101, 102, 103)


def make_table(rows: list[tuple]) -> pa.Table:
    """Test data: one row per tuple (svc, n, x-quarters, ok, lat, pid), one second apart, ascending."""
    base = NOW - 10 * SEC - len(rows) * SEC
    return pa.table({
        "time_": pa.array([base + i * SEC for i in range(len(rows))], pa.int64()).cast(TIME64NS),
        "upid": pa.array([upid(r[5]) for r in rows], UINT128),
        "svc": pa.array([r[0] for r in rows], pa.string()),
        "n": pa.array([r[1] for r in rows], pa.int64()),
        "x": pa.array([r[2] / 4 for r in rows], pa.float64()),  # quarters: float sums are exact
        "ok": pa.array([r[3] for r in rows], pa.bool_()),
        "lat": pa.array([r[4] for r in rows], pa.int64()),
    }, schema=SCHEMA)


def compile_t(body: str) -> ir.CompiledQuery:
    return compile_pxl("import px\ndf = px.DataFrame('t')\n" + body, now_ns=NOW, schemas=SCHEMAS)


def kinds(node: ir.PlanNode) -> list[str]:
    """Operator names from the node down its first parents."""
    out = [type(node).__name__]
    while node.parents:
        node = node.parents[0]
        out.append(type(node).__name__)
    return out


# --------------------------------------------------------------------------------------------
# Where operators land
# --------------------------------------------------------------------------------------------


def test_filter_map_and_partial_agg_run_on_pems_merge_on_kelvin() -> None:
    q = compile_t("df = df[df.n > 0]\ndf.m = df.n * 2\n"
                  "px.display(df.groupby('svc').agg(c=('m', px.count), q=('lat', px.quantiles)))\n")
    dplan = plan(q)
    assert len(dplan.pem) == 1
    assert kinds(dplan.pem[0][1]) == ["PartialAgg", "Map", "Filter", "Source"]
    assert kinds(dplan.kelvin.sinks[0].node) == ["FinalAgg", "Receive"]


def test_head_runs_per_agent_and_again_on_kelvin_after_a_time_merge() -> None:
    q = compile_t("df = df[['svc', 'n']]\npx.display(df.head(3))\n")
    (stream, pem), = plan(q).pem
    assert kinds(pem)[:2] == ["Limit", "Map"] and pem.n == 3  # type: ignore[attr-defined]
    assert ORDER_COLUMN in pem.names  # time_ travels hidden, so Kelvin can merge by it
    kelvin = plan(q).kelvin.sinks[0].node
    assert kinds(kelvin) == ["Map", "Limit", "Receive"]
    recv = kelvin.parents[0].parents[0]
    assert isinstance(recv, Receive) and recv.order_by == ORDER_COLUMN and recv.stream == stream
    assert kelvin.names == ["svc", "n"]


def test_join_union_and_agg_after_head_stay_on_kelvin() -> None:
    q = compile_t("a = df.groupby('svc').agg(c=('n', px.count))\n"
                  "b = df.head(5).groupby('svc').agg(s=('n', px.sum))\n"
                  "j = a.merge(b, how='left', left_on='svc', right_on='svc', suffixes=['', '_b'])\n"
                  "px.display(j)\npx.display(df.append(df[df.ok]))\n")
    dplan = plan(q)
    join = dplan.kelvin.sinks[0].node
    assert isinstance(join, ir.Join)
    assert isinstance(join.left, FinalAgg)
    assert isinstance(join.right, ir.Agg)  # over the global head, so not split
    assert kinds(join.right)[:3] == ["Agg", "Map", "Limit"]
    union = dplan.kelvin.sinks[1].node
    assert isinstance(union, ir.Union) and all(kinds(p)[-1] == "Receive" for p in union.inputs)
    pem_kinds = [kinds(n)[0] for _, n in dplan.pem]
    assert pem_kinds.count("PartialAgg") == 1 and "Join" not in pem_kinds and "Union" not in pem_kinds


def test_shared_subplans_are_cut_once() -> None:
    q = compile_t("a = df.groupby('svc').agg(c=('n', px.count))\npx.display(a)\npx.display(a)\n")
    dplan = plan(q)
    assert len(dplan.pem) == 1
    assert dplan.kelvin.sinks[0].node is dplan.kelvin.sinks[1].node
    assert "PartialAgg" in dplan.describe()


def test_partial_agg_ships_states_not_rows() -> None:
    q = compile_t("px.display(df.groupby('svc').agg(m=('n', px.mean), q=('lat', px.quantiles)))\n")
    (_, pem), = plan(q).pem
    assert isinstance(pem, PartialAgg)
    rows = [("a", 1, 0, True, 10, 100), ("a", 3, 0, True, 20, 100), ("b", 5, 0, False, 30, 101)]
    from cluster.pxl.exec.operators import Runner
    from cluster.pxl.funcs import EvalContext

    shipped = from_ipc(to_ipc(Runner(FakeTables({"t": make_table(rows)}), EvalContext(now_ns=NOW)).table(pem)))
    assert shipped.column_names == ["svc", "m:sum", "m:count", "q:qb", "q:qc", "q:qlo", "q:qhi"]
    assert shipped.num_rows == 2 and shipped.column("m:sum").to_pylist() == [4.0, 5.0]


def test_ipc_round_trip_keeps_semantic_metadata() -> None:
    t = execute(compile_t("px.display(df)\n"), FakeTables({"t": make_table([("a", 1, 0, True, 1, 100)])}),
                None)[0][1]
    assert from_ipc(to_ipc(t)).equals(t, check_metadata=True)


# --------------------------------------------------------------------------------------------
# Distributed = single node
# --------------------------------------------------------------------------------------------

AGGS = ("c=('n', px.count), s=('n', px.sum), sx=('x', px.sum), sb=('ok', px.sum), mn=('n', px.mean), "
        "mx=('x', px.mean), lo=('n', px.min), hi=('x', px.max), t0=('time_', px.min), "
        "t1=('time_', px.max), q=('lat', px.quantiles), qx=('x', px.quantiles)")

PREFIXES = ("", "df = df[df.n > 0]\n", "df = df[df.ok]\n", "df = df[px.contains(df.svc, 'a')]\n",
            "df.m = df.n * 2\ndf.y = df.x + 1.0\n", "df = df[df.x < 3.0]\ndf = df[['time_', 'svc', 'n', 'x', 'ok', "
            "'lat', 'upid']]\n")

#: (PxL body, how to compare): "ordered" = same rows in the same order, "set" = same rows in any
#: order (aggregate groups), "subset" = same count, rows among the single node's result without the
#: final head (which groups a head after an aggregate keeps depends on arrival order, as in Pixie)
TERMINALS = (
    ("px.display(df)\n", "ordered"),
    ("px.display(df.head({k}))\n", "ordered"),
    ("h = df.head({k})\nh.z = h.n + 1\npx.display(h[['svc', 'z']])\n", "ordered"),
    ("px.display(df.append(df[df.ok]).head({k}))\n", "ordered"),
    ("px.display(df.append(df[df.n < 0]))\n", "ordered"),
    ("px.display(df.groupby('svc').agg(" + AGGS + ", a=('svc', px.any)))\n", "set"),
    ("px.display(df.groupby(['svc', 'ok']).agg(" + AGGS + "))\n", "set"),
    ("px.display(df.groupby('n').agg(c=('n', px.count)))\n", "set"),
    ("px.display(df.agg(" + AGGS + "))\n", "set"),
    ("px.display(df.head({k}).groupby('svc').agg(" + AGGS + "))\n", "set"),
    ("a = df.groupby('svc').agg(c=('n', px.count))\nb = df.groupby('svc').agg(s=('x', px.sum))\n"
     "px.display(a.merge(b, how='outer', left_on='svc', right_on='svc', suffixes=['', '_b']))\n", "set"),
    ("a = df.groupby('svc').agg(c=('n', px.count))\n"
     "px.display(df.merge(a, how='inner', left_on='svc', right_on='svc', suffixes=['', '_a']))\n", "set"),
)
HEAD_AFTER_AGG = ("px.display(df.groupby('svc').agg(" + AGGS + ").head(2))\n", "subset")

row = st.tuples(st.sampled_from(["a", "b", "c", "ab"]), st.integers(-5, 5), st.integers(-20, 20), st.booleans(),
                st.integers(1, 10**7), st.sampled_from(PIDS))


def _rows(t: pa.Table) -> list[tuple]:
    return [tuple(r.values()) for r in t.to_pylist()]


def split(table: pa.Table, owners: list[int], n_agents: int, batch_rows: int) -> list[FakeTables]:
    """Each agent's share of ``table`` (rows keep their time order), served in small batches."""
    parts = []
    for a in range(n_agents):
        mask = pa.array([o % n_agents == a for o in owners], pa.bool_())
        parts.append(FakeTables({"t": table.filter(mask)}, batch_rows=batch_rows))
    return parts


def assert_same(single: list[tuple[str, pa.Table]], dist: list[tuple[str, pa.Table]], how: str) -> None:
    assert [n for n, _ in single] == [n for n, _ in dist]
    for (_, s), (_, d) in zip(single, dist, strict=True):
        assert s.schema.equals(d.schema, check_metadata=True)
        if how == "ordered":
            assert _rows(d) == _rows(s)
        elif how == "set":
            assert sorted(map(repr, _rows(d))) == sorted(map(repr, _rows(s)))
        else:
            assert set(map(repr, _rows(d))) <= set(map(repr, _rows(s)))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(rows=st.lists(row, max_size=30), data=st.data(), prefix=st.sampled_from(PREFIXES),
       terminal=st.sampled_from((*TERMINALS, HEAD_AFTER_AGG)), k=st.integers(0, 8),
       n_agents=st.integers(1, 4), batch_rows=st.integers(1, 5))
def test_distributed_equals_single_node(rows, data, prefix, terminal, k, n_agents, batch_rows) -> None:
    body, how = terminal
    table = make_table(rows)
    owners = data.draw(st.lists(st.integers(0, 3), min_size=len(rows), max_size=len(rows)))
    query = compile_t(prefix + body.format(k=k))
    single = execute(query, FakeTables({"t": table}, batch_rows=batch_rows), None)
    agents = [(tables, None) for tables in split(table, owners, n_agents, batch_rows)]
    dist = execute_distributed(query, agents)
    if how == "subset":
        whole = compile_t(prefix + body.replace(".head(2))", ")"))
        full = execute(whole, FakeTables({"t": table}, batch_rows=batch_rows), None)
        assert [t.num_rows for _, t in dist] == [t.num_rows for _, t in single]
        single = [(name, t) for (name, _), (_, t) in zip(single, full, strict=True)]
    assert_same(single, dist, how)


@settings(max_examples=60, deadline=None)
@given(rows=st.lists(row, max_size=25), n_agents=st.integers(1, 4), k=st.integers(0, 6))
def test_metadata_is_answered_by_the_agent_owning_the_upid(rows, n_agents, k) -> None:
    """Rows live on the agent that owns their process; only that agent's metadata knows the pod."""
    table = make_table(rows)
    owner = {pid: i % n_agents for i, pid in enumerate(PIDS)}
    pods = {pid: {"pod_name": f"ns/pod-{pid}", "service_name": f"ns/svc-{pid % 2}"} for pid in PIDS}
    full_md = FakeMetadata(pods)
    agents = []
    for a in range(n_agents):
        mine = {pid: attrs for pid, attrs in pods.items() if owner[pid] == a}
        part = split(table, [owner[r[5]] for r in rows], n_agents, 3)[a]
        agents.append((part, FakeMetadata(mine)))
    for body, how in (
        ("df.pod = df.ctx['pod']\npx.display(df.groupby('pod').agg(c=('n', px.count)))\n", "set"),
        ("df = df.groupby('upid').agg(c=('n', px.count))\ndf.svc = df.ctx['service']\npx.display(df)\n", "set"),
        (f"df = df.head({k})\ndf.pod = df.ctx['pod']\npx.display(df[['time_', 'pod']])\n", "ordered"),
    ):
        query = compile_t(body)
        single = execute(query, FakeTables({"t": table}, batch_rows=3), full_md)
        assert_same(single, execute_distributed(query, agents), how)


def exact_quantile(values: list[float], q: float) -> float:
    s = sorted(values)
    pos = (len(s) - 1) * q
    lo, hi = int(pos // 1), -int(-pos // 1)
    return s[lo] + (s[hi] - s[lo]) * (pos - lo)


@settings(max_examples=60, deadline=None)
@given(lats=st.lists(st.integers(1, 10**12), min_size=1, max_size=200), n_agents=st.integers(1, 4),
       data=st.data())
def test_quantiles_within_stated_error_of_exact(lats, n_agents, data) -> None:
    rows = [("a", 0, 0, True, v, 100) for v in lats]
    table = make_table(rows)
    owners = data.draw(st.lists(st.integers(0, 3), min_size=len(rows), max_size=len(rows)))
    query = compile_t("px.display(df.agg(q=('lat', px.quantiles)))\n")
    agents = [(tables, None) for tables in split(table, owners, n_agents, 7)]
    got = json.loads(execute_distributed(query, agents)[0][1].column("q")[0].as_py())
    for (name, value), q in zip(got.items(), QUANTILES, strict=True):
        want = exact_quantile([float(v) for v in lats], q)
        assert value == pytest.approx(want, rel=RELATIVE_ERROR), name


def test_quantiles_of_negative_zero_and_mixed_values() -> None:
    rows = [("a", 0, 0, True, v, 100) for v in (-1000, -10, 0, 0, 5, 7, 10**9)]
    got = json.loads(execute(compile_t("px.display(df.agg(q=('lat', px.quantiles)))\n"),
                             FakeTables({"t": make_table(rows)}), None)[0][1].column("q")[0].as_py())
    lats = [-1000.0, -10.0, 0.0, 0.0, 5.0, 7.0, 1e9]
    assert got["p50"] == 0.0 and got["p25"] == exact_quantile(lats, 0.25)
    assert got["p01"] == pytest.approx(exact_quantile(lats, 0.01), rel=RELATIVE_ERROR)


def test_head_takes_the_oldest_rows_across_agents() -> None:
    rows = [("a", i, 0, True, 1, 100) for i in range(12)]
    table = make_table(rows)
    owners = [0, 1, 1, 2, 0, 2, 1, 0, 0, 2, 1, 2]
    agents = [(t, None) for t in split(table, owners, 3, 2)]
    out = execute_distributed(compile_t("px.display(df[['n']].head(5))\n"), agents)[0][1]
    assert out.column("n").to_pylist() == [0, 1, 2, 3, 4]


def test_empty_agents_and_whole_frame_aggregate_over_nothing() -> None:
    q = compile_t("px.display(df.agg(c=('n', px.count), lo=('n', px.min), q=('lat', px.quantiles)))\n")
    empty = [(FakeTables({"t": make_table([])}), None)] * 3
    (_, t), = execute_distributed(q, empty)
    assert t.num_rows == 1 and t.column("c").to_pylist() == [0] and t.column("lo").to_pylist() == [0]
    # one empty agent must not drag a min towards zero
    agents = [*empty[:1], (FakeTables({"t": make_table([("a", 5, 0, True, 1, 100)])}), None)]
    (_, t), = execute_distributed(q, agents)
    assert t.column("lo").to_pylist() == [5] and t.column("c").to_pylist() == [1]


def test_kelvin_metadata_keeps_the_owner_answer() -> None:
    md = AgentsMetadata([FakeMetadata({100: {"pod_name": "p100"}}), FakeMetadata({101: {"pod_name": "p101"}})])
    ups = pa.array([upid(100), upid(101), upid(102)], UINT128)
    assert md.upid_attr("pod_name", ups).to_pylist() == ["p100", "p101", ""]
    assert md.hostname() == "node-1"
