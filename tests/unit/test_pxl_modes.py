"""Script mode vs function mode, argument conversion, the missing-comma quirk, real script shapes."""

from __future__ import annotations

import pyarrow as pa
import pytest

from cluster import schemas
from cluster.pxl import PxlCompileError, compile_pxl, execute
from cluster.pxl.vis import FuncToExecute
from tests.unit.test_pxl_support import NOW, SCHEMAS, FakeMetadata, FakeTables, http_events, run

HTTP_DATA = """
import px
def http_data(start: str, num_head: int):
    df = px.DataFrame(table='http_events', start_time=start)
    df.pod = df.ctx['pod']
    df = df.drop(['upid'])
    df = df.drop(['trace_role', 'content_type', 'minor_version'])
    df = df.head(num_head)
    return df
"""


def test_pixie_http_data_script_shape() -> None:
    funcs = [FuncToExecute("http_data", {"start": "-5m", "num_head": "4"}, "http_data")]
    q = compile_pxl(HTTP_DATA, funcs=funcs, now_ns=NOW, schemas={"http_events": schemas.HTTP_EVENTS})
    assert [s.name for s in q.sinks] == ["http_data"]
    md = FakeMetadata({100: {"pod_name": "default/web-1"}, 101: {"pod_name": "default/web-2"}})
    tables = FakeTables({"http_events": http_events()})
    (name, t), = execute(q, tables, md)
    assert name == "http_data" and t.num_rows == 4
    expected = [f.name for f in schemas.HTTP_EVENTS if f.name not in
                ("upid", "trace_role", "content_type", "minor_version")] + ["pod"]
    assert t.column_names == expected
    assert t.column("pod").to_pylist() == ["default/web-1", "default/web-2"] * 2
    assert tables.scans == [("http_events", NOW - 300 * 10**9, None)]
    assert schemas.semantic_type(t.schema.field("latency")) == "ST_DURATION_NS"


def test_function_mode_ignores_display_keeps_debug() -> None:
    src = ("import px\ndf = px.DataFrame('small')\npx.display(df, 'ignored')\npx.debug(df, 'top')\n"
           "def f(n: int):\n    px.debug(df.head(n), 'inner')\n    return df.head(n)\n")
    out = run(src, funcs=[FuncToExecute("f", {"n": "2"}, "out")])
    assert list(out) == ["_top", "_inner", "out"]
    assert out["out"].num_rows == 2


def test_debug_name_clash_with_function_output_is_numbered() -> None:
    src = "import px\ndef f():\n    df = px.DataFrame('small')\n    px.debug(df, 'x')\n    return df\n"
    out = run(src, funcs=[FuncToExecute("f", {}, "_x")])
    assert list(out) == ["_x_1", "_x"]


def test_script_mode_display_default_name() -> None:
    assert list(run("import px\npx.display(px.DataFrame('small'))\n")) == ["output"]


@pytest.mark.parametrize(("annotation", "text", "expected"), [
    ("str", "abc", "abc"),
    ("int", "42", 42),
    ("float", "2.5", 2.5),
    ("bool", "Yes", True),
    ("bool", "0", False),
    ("bool", "F", False),
    ("px.Pod", "ns/pod", "ns/pod"),
    ("px.Service", "ns/svc", "ns/svc"),
    ("px.Namespace", "ns", "ns"),
    ("px.Node", "node-1", "node-1"),
    ("px.Time", "123", 123),
    ("px.Time", "-1s", NOW - 10**9),
])
def test_function_argument_conversion(annotation: str, text: str, expected: object) -> None:
    src = f"import px\ndef f(a: {annotation}):\n    df = px.DataFrame('small')\n    df.v = a\n    return df\n"
    out = run(src, funcs=[FuncToExecute("f", {"a": text}, "o")])
    assert out["o"].column("v")[0].as_py() == expected


def test_semantic_annotation_sets_semantic_type() -> None:
    src = "import px\ndef f(a: px.Pod):\n    df = px.DataFrame('small')\n    df.v = a\n    return df\n"
    out = run(src, funcs=[FuncToExecute("f", {"a": "x/y"}, "o")])
    assert schemas.semantic_type(out["o"].schema.field("v")) == "ST_POD_NAME"


@pytest.mark.parametrize(("src", "args", "message"), [
    ("def f(a):\n    return 1\n", {"a": "1"}, "no type annotation"),
    ("def f(a: int):\n    return 1\n", {"a": "x"}, "cannot convert 'x' to int"),
    ("def f(a: bool):\n    return 1\n", {"a": "maybe"}, "not a boolean"),
    ("def f(a: int):\n    return 1\n", {}, "Missing argument 'a'"),
    ("def f(a: int):\n    return 1\n", {"a": "1", "b": "2"}, "no parameter 'b'"),
    ("def f(a: int):\n    return a\n", {"a": "1"}, "must return a DataFrame"),
    ("def g(a: int):\n    return a\n", {"a": "1"}, "Function 'f' not found"),
])
def test_function_mode_errors(src: str, args: dict[str, str], message: str) -> None:
    with pytest.raises(PxlCompileError, match=message) as info:
        compile_pxl("import px\n" + src, funcs=[FuncToExecute("f", args, "o")], now_ns=NOW, schemas=SCHEMAS)
    if "not found" not in message:
        assert info.value.errors[0].line == 2


def test_function_returning_list_of_frames() -> None:
    src = "import px\ndef f():\n    df = px.DataFrame('small')\n    return [df, df.head(1)]\n"
    out = run(src, funcs=[FuncToExecute("f", {}, "o")])
    assert list(out) == ["o[0]", "o[1]"]


def test_missing_comma_between_keyword_arguments_is_accepted() -> None:
    src = ("import px\ndf = px.DataFrame('small')\n"
           "df = df.groupby('svc').agg(\n"
           "    c=('n', px.count)\n"
           "    s=('n', px.sum),\n"
           "    m=('x', px.mean)  # comment\n"
           "    hi=('x', px.max)\n"
           ")\npx.display(df)\n")
    t = run(src)["output"]
    assert t.column_names == ["svc", "c", "s", "m", "hi"]


def test_missing_comma_in_merge_kwargs_is_accepted() -> None:
    src = ("import px\na = px.DataFrame('small')\n"
           "b = a.merge(a, how='inner', left_on='svc'\n"
           "            right_on='svc', suffixes=['', '_r'])\npx.display(b)\n")
    assert run(src)["output"].num_rows == 9


def test_docstrings_and_module_constants() -> None:
    src = ('"""Module doc."""\nimport px\nk8s_object = "pod"\nwindow_ns = px.DurationNanos(10 * 1000)\n'
           'def f(start_time: str):\n    """Function doc."""\n'
           '    df = px.DataFrame("http_events", start_time=start_time)\n'
           "    df[k8s_object] = df.ctx[k8s_object]\n    df.w = window_ns\n    return df\n")
    out = run(src, funcs=[FuncToExecute("f", {"start_time": "-5m"}, "o")])
    assert "pod" in out["o"].column_names
    assert schemas.semantic_type(out["o"].schema.field("w")) == "ST_DURATION_NS"


def test_import_forms() -> None:
    out = run("import px as p\nfrom px import DataFrame, display\ndisplay(DataFrame('small').head(1))\n"
              "import pxtrace\nimport pxviews\n")
    assert out["output"].num_rows == 1
    with pytest.raises(PxlCompileError, match=r"pxtrace\.UpsertTracepoint is not supported"):
        compile_pxl("import pxtrace\npxtrace.UpsertTracepoint('a', 'b', 'c', 1, '5m')\n",
                    now_ns=NOW, schemas=SCHEMAS)


LET_SCRIPT = """
import px
ns_per_ms = 1000 * 1000
ns_per_s = 1000 * ns_per_ms
window_ns = px.DurationNanos(2 * ns_per_s)

def service_let(start_time: str, svc_filter: str, include_errors: bool):
    df = px.DataFrame(table='http_events', start_time=start_time)
    df = df[px.contains(df.req_path, svc_filter)]
    df.failure = df.resp_status >= 400
    df.timestamp = px.bin(df.time_, window_ns)
    df = df.groupby(['timestamp', 'req_method']).agg(
        latency_quantiles=('latency', px.quantiles),
        error_rate=('failure', px.mean),
        errors=('failure', px.sum),
        throughput_total=('latency', px.count),
        bytes_total=('resp_body_size', px.sum),
    )
    df.latency_p50 = px.DurationNanos(px.floor(px.pluck_float64(df.latency_quantiles, 'p50')))
    df.request_throughput = df.throughput_total / window_ns
    df.bytes_per_ns = df.bytes_total / window_ns
    df.time_ = df.timestamp
    df = df[df.errors >= 0 or include_errors]
    df.link = px.script_reference(df.req_method, 'px/service', {'start_time': start_time})
    return df.drop(['latency_quantiles'])
"""


def test_latency_error_throughput_shape() -> None:
    funcs = [FuncToExecute("service_let", {"start_time": "-5m", "svc_filter": "", "include_errors": "true"},
                           "let")]
    out = run(LET_SCRIPT, funcs=funcs)["let"]
    assert sum(out.column("throughput_total").to_pylist()) == 6
    assert sum(out.column("errors").to_pylist()) == 2  # rows 0 and 4 have status 500
    sem = {f.name: schemas.semantic_type(f) for f in out.schema}
    assert sem["latency_p50"] == "ST_DURATION_NS"
    assert sem["request_throughput"] == "ST_THROUGHPUT_PER_NS"
    assert sem["bytes_per_ns"] == "ST_THROUGHPUT_BYTES_PER_NS"
    assert sem["link"] == "ST_SCRIPT_REFERENCE"
    assert out.schema.field("time_").type == pa.timestamp("ns", "UTC")
