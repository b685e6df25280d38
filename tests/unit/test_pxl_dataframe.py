"""DataFrame operations end to end: compile, execute over the fakes, compare with hand results."""

from __future__ import annotations

import json

import pyarrow as pa
import pytest

from cluster.pxl import PxlRuntimeError, compile_pxl, execute
from cluster.schemas import semantic_type
from tests.unit.test_pxl_support import (
    DEFAULT_ROWS,
    NOW,
    SCHEMAS,
    FakeMetadata,
    FakeTables,
    http_events,
    one,
    run,
    small_table,
)

BASE = "import px\ndf = px.DataFrame('small')\n"


def rows(t: pa.Table, *cols: str) -> list[tuple]:
    data = [t.column(c).to_pylist() for c in cols]
    return list(zip(*data, strict=True))


def test_filter_keep_and_both_subscript_forms() -> None:
    t = one(BASE + "df = df[df.n > 1]\npx.display(df[['svc', 'n']])\n")
    assert t.column_names == ["svc", "n"]
    assert rows(t, "svc", "n") == [("a", 3), ("c", 4), ("b", 10)]
    t = one(BASE + "df = df.filter(df.ok)\npx.display(df['n', 'svc'])\n")
    assert t.column_names == ["n", "svc"] and t.column("n").to_pylist() == [1, 3, 10]


def test_column_ref_by_variable_and_filter_by_variable() -> None:
    t = one(BASE + "name = 'n'\ncond = df[name] == 3\ndf = df[cond]\npx.display(df)\n")
    assert t.column("n").to_pylist() == [3]


def test_constant_filter() -> None:
    assert one(BASE + "include = False\ndf = df[include]\npx.display(df)\n").num_rows == 0
    assert one(BASE + "df = df[df.n > 5 or True]\npx.display(df)\n").num_rows == 5


def test_map_adds_and_overwrites_in_place_with_type_change() -> None:
    t = one(BASE + "df.n = px.itoa(df.n)\ndf['new'] = 1\ndf.c = df.svc\npx.display(df)\n")
    assert t.column_names == ["time_", "svc", "n", "x", "ok", "bytes", "dur", "doc", "new", "c"]
    assert t.schema.field("n").type == pa.string()
    assert t.column("new").to_pylist() == [1] * 5
    assert semantic_type(t.schema.field("bytes")) == "ST_BYTES"


def test_copy_on_assign_inside_functions() -> None:
    src = BASE + (
        "def tag(frame, v: str):\n    frame.tag = v\n    return frame\n"
        "a = tag(df, 'A')\nb = tag(df, 'B')\nc = a.append(b)\n"
        "px.display(c[['tag']], 'c')\npx.display(df, 'orig')\n")
    out = run(src)
    assert sorted(out["c"].column("tag").to_pylist()) == ["A"] * 5 + ["B"] * 5
    assert "tag" not in out["orig"].column_names


def test_helper_defined_below_caller_resolves() -> None:
    src = BASE + "def f():\n    return g(df)\ndef g(x):\n    return x.head(2)\npx.display(f())\n"
    assert one(src).num_rows == 2


def test_head_default_and_oldest_first_with_early_exit() -> None:
    big = small_table([(i, "s", i, 0.0, True, 0, 0, "") for i in range(50)])
    q = compile_pxl(BASE + "px.display(df.head())\npx.display(df.head(n=3), 'three')\n",
                    now_ns=NOW, schemas=SCHEMAS)
    tables = FakeTables({"small": big}, batch_rows=2)
    out = dict(execute(q, tables, FakeMetadata()))
    assert out["output"].column("n").to_pylist() == [0, 1, 2, 3, 4]
    assert out["three"].column("n").to_pylist() == [0, 1, 2]
    assert tables.batches_served <= 3 + 2 + 2  # never read all 25 batches


def test_head_zero() -> None:
    assert one(BASE + "px.display(df.head(0))\n").num_rows == 0


def test_drop_string_list_and_computed() -> None:
    t = one(BASE + "suffix = 'c'\ndf = df.drop('do' + suffix)\ndf = df.drop(['x', 'ok'])\npx.display(df)\n")
    assert t.column_names == ["time_", "svc", "n", "bytes", "dur"]


def test_groupby_agg_all_aggregates() -> None:
    src = BASE + (
        "df = df.groupby('svc').agg(c=('n', px.count), s=('n', px.sum), m=('x', px.mean),\n"
        "    lo=('n', px.min), hi=('x', px.max), errs=('ok', px.sum), rate=('ok', px.mean),\n"
        "    b=('bytes', px.sum), d=('dur', px.mean), dsum=('dur', px.sum), first=('svc', px.any),\n"
        "    tmax=('time_', px.max))\npx.display(df)\n")
    t = one(src)
    assert t.column_names[:2] == ["svc", "c"]
    got = {r["svc"]: r for r in t.to_pylist()}
    assert got["a"]["c"] == 2 and got["a"]["s"] == 4 and got["a"]["m"] == 1.0
    assert got["b"]["lo"] == -7 and got["b"]["hi"] == 10.0 and got["b"]["errs"] == 1
    assert got["b"]["rate"] == 0.5 and got["c"]["c"] == 1 and got["a"]["first"] == "a"
    fields = {f.name: f for f in t.schema}
    assert fields["errs"].type == pa.int64() and fields["m"].type == pa.float64()
    assert semantic_type(fields["b"]) == "ST_BYTES"
    assert semantic_type(fields["d"]) == "ST_DURATION_NS"
    assert semantic_type(fields["dsum"]) == "ST_NONE"  # a sum of durations is not a duration
    assert fields["tmax"].type == pa.timestamp("ns", "UTC")


def test_quantiles_json_and_pluck_back() -> None:
    src = BASE + (
        "df = df.groupby('svc').agg(q=('dur', px.quantiles), qn=('n', px.quantiles))\n"
        "df.p50 = px.DurationNanos(px.floor(px.pluck_float64(df.q, 'p50')))\npx.display(df)\n")
    t = one(src)
    got = {r["svc"]: r for r in t.to_pylist()}
    q = json.loads(got["a"]["q"])
    assert list(q) == ["p01", "p10", "p25", "p50", "p75", "p90", "p99"]
    assert q["p50"] == 20.0 and q["p01"] == pytest.approx(10.2) and q["p99"] == pytest.approx(29.8)
    assert json.loads(got["c"]["q"])["p90"] == 40.0
    assert got["a"]["p50"] == 20
    assert semantic_type(t.schema.field("q")) == "ST_DURATION_NS_QUANTILES"
    assert semantic_type(t.schema.field("qn")) == "ST_QUANTILES"
    assert semantic_type(t.schema.field("p50")) == "ST_DURATION_NS"


def test_multi_key_groupby_and_distinct() -> None:
    t = one(BASE + "df = df.groupby(['svc', 'ok']).agg(c=('n', px.count))\npx.display(df)\n")
    assert sorted(rows(t, "svc", "ok", "c")) == [("a", True, 2), ("b", False, 1), ("b", True, 1),
                                                 ("c", False, 1)]
    t = one(BASE + "df = df.groupby(['svc']).agg()\npx.display(df)\n")
    assert t.column_names == ["svc"] and sorted(t.column("svc").to_pylist()) == ["a", "b", "c"]


def test_groupby_on_upid_and_time_keys() -> None:
    src = ("import px\ndf = px.DataFrame('http_events')\ndf.w = px.bin(df.time_, px.seconds(2))\n"
           "df = df.groupby(['upid', 'w']).agg(n=('latency', px.count))\npx.display(df)\n")
    t = one(src)
    assert sum(t.column("n").to_pylist()) == 6
    assert t.schema.field("upid").type == pa.binary(16)


def test_whole_frame_agg_and_empty_input() -> None:
    t = one(BASE + "df = df.agg(c=('n', px.count), s=('x', px.sum), q=('n', px.quantiles))\npx.display(df)\n")
    assert rows(t, "c", "s") == [(5, 13.75)]
    t = one(BASE + "df = df[df.n > 100]\ndf = df.agg(c=('n', px.count), s=('x', px.sum))\npx.display(df)\n")
    assert rows(t, "c", "s") == [(0, 0.0)]
    t = one(BASE + "df = df[df.n > 100]\ndf = df.groupby('svc').agg(c=('n', px.count))\npx.display(df)\n")
    assert t.num_rows == 0 and t.column_names == ["svc", "c"]


def test_merge_inner_left_right_outer() -> None:
    src = BASE + (
        "l = df[['svc', 'n']]\n"
        "r = df.groupby('svc').agg(total=('n', px.sum))\nr = r[r.svc != 'c']\n"
        "r2 = r\nr2.extra = 'e'\n"
        "px.display(l.merge(r, how='inner', left_on='svc', right_on='svc', suffixes=['', '_r']), 'inner')\n"
        "px.display(l.merge(r2, how='left', left_on=['svc'], right_on=['svc']), 'left')\n"
        "px.display(r.merge(l, how='right', left_on='svc', right_on='svc'), 'right')\n"
        "px.display(l.merge(r2, how='outer', left_on='svc', right_on='svc'), 'outer')\n")
    out = run(src)
    inner = out["inner"]
    assert inner.column_names == ["svc", "n", "svc_r", "total"]
    assert rows(inner, "svc", "n", "total") == [("a", 1, 4), ("b", -7, 3), ("a", 3, 4), ("b", 10, 3)]
    left = out["left"]
    assert left.column_names == ["svc_x", "n", "svc_y", "total", "extra"]
    assert rows(left, "svc_x", "svc_y", "total", "extra")[3] == ("c", "", 0, "")  # zero-filled
    right = out["right"]
    assert right.num_rows == 5 and ("", 0, "c", 4) in rows(right, "svc_x", "total", "svc_y", "n")
    assert out["outer"].num_rows == 5
    assert all(f.nullable is False for f in inner.schema)
    assert inner.column("n").null_count == 0


def test_merge_multi_key_and_cross_join() -> None:
    src = BASE + (
        "a = df[['svc', 'ok', 'n']]\nb = df.groupby(['svc', 'ok']).agg(c=('n', px.count))\n"
        "m = a.merge(b, how='inner', left_on=['svc', 'ok'], right_on=['svc', 'ok'], suffixes=['', '_b'])\n"
        "px.display(m, 'multi')\n"
        "w = df.agg(tmin=('time_', px.min), tmax=('time_', px.max))\n"
        "x = df[['svc']].merge(w, how='inner', left_on=[], right_on=[])\n"
        "x.span = x.tmax - x.tmin\npx.display(x, 'cross')\n")
    out = run(src)
    assert rows(out["multi"], "svc", "c") == [("a", 2), ("b", 1), ("a", 2), ("c", 1), ("b", 1)]
    assert out["cross"].num_rows == 5 and set(out["cross"].column("span").to_pylist()) == {4 * 10**9}


def test_append_orders_by_time() -> None:
    src = BASE + "a = df[df.ok]\nb = df[not df.ok]\npx.display(a.append(b))\n"
    t = one(src)
    assert t.column("n").to_pylist() == [1, -7, 3, 4, 10]
    src = BASE + "a = df[df.ok]\npx.display(a.append([a, a]))\n"
    assert one(src).num_rows == 9


def test_select_columns_on_source() -> None:
    t = one("import px\ndf = px.DataFrame('small', select=['n', 'svc'])\npx.display(df)\n")
    assert t.column_names == ["n", "svc"]


def test_ctx_pod_uses_fallback_on_protocol_tables() -> None:
    md = FakeMetadata({100: {"pod_name": "ns/p0", "namespace": "ns", "service_name": "ns/svc",
                             "node_name": "n1", "container_name": "c0", "cmdline": "/bin/x"}},
                      entities={("ip", "pod_id", "10.1.0.1"): "uid-1", ("pod_id", "pod_name", "uid-1"): "ns/byip"})
    src = ("import px\ndf = px.DataFrame('http_events')\n"
           "df.pod = df.ctx['pod']\ndf.ns = df.ctx['namespace']\ndf.svc = df.ctx['service']\n"
           "df.node = df.ctx['node']\ndf.cont = df.ctx['container']\ndf.cmd = df.ctx['cmd']\n"
           "df.pid = df.ctx['pid']\nkey = 'pod_name'\ndf.p2 = df.ctx[key]\n"
           "px.display(df[['pod', 'ns', 'svc', 'node', 'cont', 'cmd', 'pid', 'p2']])\n")
    q = compile_pxl(src, now_ns=NOW, schemas=SCHEMAS)
    assert "_upid_to_podname_local_addr_fallback" in repr(q.sinks[0].node.parent.exprs)  # type: ignore[attr-defined]
    t = dict(execute(q, FakeTables({"http_events": http_events()}), md))["output"]
    first, second = t.to_pylist()[:2]
    assert first == {"pod": "ns/p0", "ns": "ns", "svc": "ns/svc", "node": "n1", "cont": "c0",
                     "cmd": "/bin/x", "pid": 100, "p2": "ns/p0"}
    assert second["pod"] == "ns/byip" and second["ns"] == ""  # pid 101 unknown: IP fallback
    assert semantic_type(t.schema.field("pod")) == "ST_POD_NAME"
    assert semantic_type(t.schema.field("ns")) == "ST_NAMESPACE_NAME"


def test_ctx_after_groupby_uses_pod_id_and_pod_name() -> None:
    src = ("import px\ndf = px.DataFrame('http_events')\ndf.pod_id = df.ctx['pod_id']\n"
           "df = df.groupby('pod_id').agg(c=('latency', px.count))\n"
           "df.pod = df.ctx['pod']\ndf.pod_name = df.pod\ndf.ns = df.ctx['namespace']\npx.display(df)\n")
    q = compile_pxl(src, now_ns=NOW, schemas=SCHEMAS)
    text = repr(q.sinks[0].node)
    assert "pod_id_to_pod_name" in text and "pod_name_to_namespace" not in text  # pod_id wins
    md = FakeMetadata({100: {"pod_id": "u1"}}, entities={("pod_id", "pod_name", "u1"): "ns1/p",
                                                         ("pod_id", "namespace", "u1"): "ns1"})
    t = dict(execute(q, FakeTables({"http_events": http_events()}), md))["output"]
    got = {r["pod_id"]: r for r in t.to_pylist()}
    assert got["u1"]["pod"] == "ns1/p" and got["u1"]["ns"] == "ns1" and got[""]["pod"] == ""


def test_ctx_namespace_from_pod_name_is_computed() -> None:
    src = ("import px\ndf = px.DataFrame('small')\ndf.pod_name = 'ns9/pod' + df.svc\n"
           "df = df.groupby('pod_name').agg(c=('n', px.count))\ndf.ns = df.ctx['namespace']\npx.display(df)\n")
    t = one(src, metadata=None)
    assert set(t.column("ns").to_pylist()) == {"ns9"}


def test_time_window_passed_to_scan() -> None:
    q = compile_pxl("import px\ndf = px.DataFrame('small', start_time='-5m', end_time='-1m')\npx.display(df)\n",
                    now_ns=NOW, schemas=SCHEMAS)
    tables = FakeTables({"small": small_table(DEFAULT_ROWS)})
    execute(q, tables, FakeMetadata())
    assert tables.scans == [("small", NOW - 300 * 10**9, NOW - 60 * 10**9)]


def test_runtime_error_names_operator() -> None:
    q = compile_pxl(BASE + "px.display(df)\n", now_ns=NOW, schemas=SCHEMAS)
    bad = pa.table({"time_": pa.array([1], pa.int64()).cast(pa.timestamp("ns", "UTC"))})
    with pytest.raises(PxlRuntimeError, match="Source operator"):
        execute(q, FakeTables({"small": bad}), FakeMetadata())


def test_outputs_in_order_with_duplicate_display_names() -> None:
    out = run(BASE + "px.display(df)\npx.display(df.head(1))\npx.display(df, 'x')\npx.debug(df, 'x')\n")
    assert list(out) == ["output", "output_1", "x", "_x"]
