"""Each builtin against hand-computed values, over the small hand-made table (DEFAULT_ROWS):

    svc  n   x      ok     bytes dur doc
    a    1   1.5    True   100   10  {"k":"v","i":5,"f":2.5,"o":{"z":1},"arr":[1,"s"]}
    b   -7  -2.25   False  200   20  {"k":"w"}
    a    3   0.5    True   300   30  not json
    c    4   4.0    False  400   40  {"k":null}
    b   10  10.0    True   500   50  [1,2,3]
"""

from __future__ import annotations

import json

import pyarrow as pa
import pytest

from cluster.pxl import PxlCompileError, compile_pxl
from cluster.schemas import semantic_type
from tests.unit.test_pxl_support import NOW, SCHEMAS, column, one, upid


def lit(expr: str):
    """Value of a constant expression (folded at compile time), via a 1-column output."""
    return column(expr)[0]


def sem(expr: str) -> str:
    src = f"import px\ndf = px.DataFrame('small')\ndf.out = {expr}\npx.display(df[['out']])\n"
    return semantic_type(one(src).schema.field("out"))


# ---- operators -----------------------------------------------------------------------------


def test_division_is_always_float() -> None:
    assert column("df.n / 2") == [0.5, -3.5, 1.5, 2.0, 5.0]
    assert lit("7 / 2") == 3.5
    assert column("df.n / 0")[0] == float("inf")


def test_arithmetic_int_and_float() -> None:
    assert column("df.n + 1") == [2, -6, 4, 5, 11]
    assert column("df.n * df.x") == [1.5, 15.75, 1.5, 16.0, 100.0]
    assert column("df.n - df.n") == [0] * 5
    assert column("-df.n") == [-1, 7, -3, -4, -10]


def test_modulo_has_cpp_sign() -> None:
    assert column("df.n % 3") == [1, -1, 0, 1, 1]
    assert lit("-7 % 3") == -1
    assert lit("7 % -3") == 1


def test_string_concat_and_compare() -> None:
    assert column("df.svc + '_x'") == ["a_x", "b_x", "a_x", "c_x", "b_x"]
    assert column("df.svc < 'b'") == [True, False, True, False, False]
    assert lit("'ab' + 'cd'") == "abcd"


def test_comparisons_and_logic() -> None:
    assert column("df.n >= 3") == [False, False, True, True, True]
    assert column("df.n == 3 or df.ok") == [True, False, True, False, True]
    assert column("not df.ok") == [False, True, False, True, False]
    assert column("df.ok and df.n > 1") == [False, False, True, False, True]
    assert column("df.n != 3") == [True, True, False, True, True]
    assert column("df.ok == True") == [True, False, True, False, True]


def test_compile_time_bool_mixed_with_column() -> None:
    assert column("df.n > 100 or True") == [True] * 5
    assert column("df.ok and False") == [False] * 5


def test_function_forms_of_operators() -> None:
    assert column("px.equal(df.svc, 'a')") == [True, False, True, False, False]
    assert column("px.add(df.n, 1)") == [2, -6, 4, 5, 11]
    assert column("px.greaterThanEqual(df.n, 4)") == [False, False, False, True, True]
    assert column("px.logicalNot(df.ok)") == [False, True, False, True, False]
    assert column("px.negate(df.x)") == [-1.5, 2.25, -0.5, -4.0, -10.0]


def test_float_equality_is_approximate() -> None:
    assert lit("0.1 + 0.2 == 0.3") is True
    assert lit("0.1 + 0.2 != 0.3") is False


def test_constant_folding_produces_literals() -> None:
    q = compile_pxl("import px\nns_per_ms = 1000 * 1000\nns_per_s = 1000 * ns_per_ms\n"
                    "df = px.DataFrame('small')\ndf.w = px.DurationNanos(10 * ns_per_s)\npx.display(df)\n",
                    now_ns=NOW, schemas=SCHEMAS)
    assert "Call" not in q.describe()
    node = q.sinks[0].node
    assert node.exprs[-1].value == 10_000_000_000  # type: ignore[attr-defined]
    assert node.exprs[-1].semantic == "ST_DURATION_NS"  # type: ignore[attr-defined]


def test_time_arithmetic() -> None:
    src = ("import px\ndf = px.DataFrame('small')\ndf.d = df.time_ - df.time_\ndf.t = df.time_ + 5\n"
           "df.back = df.t - 5 == df.time_\ndf.r = px.now() - df.time_\npx.display(df)\n")
    t = one(src)
    assert t.column("d").to_pylist() == [0] * 5
    assert t.schema.field("t").type == pa.timestamp("ns", "UTC")
    assert t.column("back").to_pylist() == [True] * 5
    assert t.column("r").type == pa.int64()
    assert t.column("r").to_pylist()[0] == 100 * 10**9


# ---- string UDFs -----------------------------------------------------------------------------


def test_contains_including_empty_needle() -> None:
    assert column("px.contains(df.doc, 'k')") == [True, True, False, True, False]
    assert column("px.contains(df.svc, '')") == [True] * 5
    assert lit("px.contains('', '')") is True
    assert column("px.contains(df.doc, df.svc)") == [True, False, False, False, False]


def test_length_find_substring() -> None:
    assert column("px.length(df.svc + 'é')") == [3] * 5  # bytes, not characters
    assert column("px.find(df.doc, 'k')") == [2, 2, -1, 2, -1]
    assert lit("px.find('héllo', 'l')") == 3
    assert column("px.substring(df.doc, 0, 3)") == ['{"k', '{"k', "not", '{"k', "[1,"]
    assert lit("px.substring('hello', 1, 3)") == "ell"
    assert lit("px.substring('hello', 3, 100)") == "lo"
    assert lit("px.substring('hello', 5, 1)") == ""
    assert lit("px.substring('hello', 6, 1)") == ""
    assert lit("px.substring('hello', -1, 2)") == ""
    assert lit("px.substring('hello', 1, -2)") == ""
    assert column("px.substring(df.svc, -1, 1)") == [""] * 5


def test_atoi_itoa() -> None:
    assert lit("px.atoi('42', -1)") == 42
    assert lit("px.atoi(' -7 ', 0)") == -7
    assert lit("px.atoi('4x', -1)") == -1
    assert lit("px.atoi('', 9)") == 9
    assert column("px.atoi(px.itoa(df.n), 0)") == [1, -7, 3, 4, 10]
    assert column("px.atoi(df.svc, 5)") == [5] * 5
    assert column("px.itoa(df.n)") == ["1", "-7", "3", "4", "10"]


# ---- JSON -------------------------------------------------------------------------------------


def test_pluck() -> None:
    assert column("px.pluck(df.doc, 'k')") == ["v", "w", "", "", ""]  # null and bad JSON give ""
    assert column("px.pluck(df.doc, 'missing')") == [""] * 5
    assert column("px.pluck(df.doc, 'o')")[0] == '{"z":1}'
    assert column("px.pluck(df.doc, 'arr')")[0] == '[1,"s"]'
    assert column("px.pluck(df.doc, 'i')")[0] == "5"


def test_pluck_float64_and_int64() -> None:
    assert column("px.pluck_float64(df.doc, 'f')") == [2.5, 0.0, 0.0, 0.0, 0.0]
    assert column("px.pluck_float64(df.doc, 'i')")[0] == 0.0  # a JSON integer is not a double
    assert column("px.pluck_int64(df.doc, 'i')") == [5, 0, 0, 0, 0]
    assert column("px.pluck_int64(df.doc, 'f')")[0] == 0
    assert lit("px.pluck_int64('{\"b\": true}', 'b')") == 0


def test_pluck_array() -> None:
    assert lit("px.pluck_array('[\"a\", 2, {\"x\": 1}]', 0)") == "a"
    assert lit("px.pluck_array('[\"a\", 2, {\"x\": 1}]', 1)") == "2"
    assert lit("px.pluck_array('[\"a\", 2, {\"x\": 1}]', 2)") == '{"x":1}'
    assert lit("px.pluck_array('[1]', 5)") == ""
    assert lit("px.pluck_array('{\"a\": 1}', 0)") == ""
    assert column("px.pluck_array(df.doc, 1)")[4] == "2"


# ---- math, select, casts ---------------------------------------------------------------------


def test_bin_with_negatives_and_times() -> None:
    assert column("px.bin(df.n, 5)") == [0, -5, 0, 0, 10]
    assert lit("px.bin(-7, 5)") == -5  # C++ remainder: rounds toward zero
    assert lit("px.bin(7, 5)") == 5
    assert column("px.bin(df.x, 2)") == [0, -2, 0, 4, 10]
    src = "import px\ndf = px.DataFrame('small')\ndf.w = px.bin(df.time_, px.seconds(10))\npx.display(df)\n"
    t = one(src)
    assert t.schema.field("w").type == pa.timestamp("ns", "UTC")
    assert all(v.value % 10**10 == 0 for v in t.column("w"))


def test_floor() -> None:
    assert column("px.floor(df.x)") == [1, -3, 0, 4, 10]
    assert lit("px.floor(-0.5)") == -1


def test_select() -> None:
    assert column("px.select(df.ok, df.svc, 'no')") == ["a", "no", "a", "no", "b"]
    assert column("px.select(df.n > 2, df.x, 0)") == [0.0, 0.0, 0.5, 4.0, 10.0]
    assert column("px.select(True, df.n, 0)") == [1, -7, 3, 4, 10]
    with pytest.raises(PxlCompileError, match=r"px\.select"):
        column("px.select(df.ok, df.svc, 1)")


def test_semantic_casts() -> None:
    assert sem("px.DurationNanos(df.n)") == "ST_DURATION_NS"
    assert sem("px.Bytes(df.n)") == "ST_BYTES"
    assert sem("px.Percent(df.x)") == "ST_PERCENT"
    assert sem("px.Pod(df.svc)") == "ST_POD_NAME"
    assert sem("px.Service(df.svc)") == "ST_SERVICE_NAME"
    assert sem("px.Namespace(df.svc)") == "ST_NAMESPACE_NAME"
    assert sem("px.Node(df.svc)") == "ST_NODE_NAME"
    assert column("px.Bytes(df.n)") == [1, -7, 3, 4, 10]


def test_semantic_inference() -> None:
    assert sem("df.bytes + df.bytes") == "ST_BYTES"
    assert sem("df.dur - df.dur") == "ST_DURATION_NS"
    assert sem("df.n / df.dur") == "ST_THROUGHPUT_PER_NS"
    assert sem("df.bytes / df.dur") == "ST_THROUGHPUT_BYTES_PER_NS"
    assert sem("df.bytes * 2") == "ST_NONE"
    assert sem("df.n / px.DurationNanos(10)") == "ST_THROUGHPUT_PER_NS"
    assert sem("px.select(df.ok, df.bytes, df.bytes)") == "ST_BYTES"


def test_upid_parts() -> None:
    src = ("import px\ndf = px.DataFrame('http_events')\ndf.pid = px.upid_to_pid(df.upid)\n"
           "df.asid = px.upid_to_asid(df.upid)\npx.display(df[['pid', 'asid']])\n")
    t = one(src)
    assert t.column("pid").to_pylist() == [100, 101, 100, 101, 100, 101]
    assert t.column("asid").to_pylist() == [7] * 6
    assert semantic_type(t.schema.field("asid")) == "ST_ASID"
    assert upid(5, asid=9)[:8] == bytes.fromhex("0000000900000005")


def test_upid_parts_on_sliced_array() -> None:
    from cluster.pxl.funcs.upid import upid_word
    arr = pa.array([upid(1), upid(2), upid(3)], pa.binary(16)).slice(1, 2)
    assert upid_word(arr, 1).to_pylist() == [2, 3]


def test_script_reference() -> None:
    src = ("import px\ndf = px.DataFrame('small')\n"
           "df.ref = px.script_reference(df.svc, 'px/pod', {'start_time': '-5m', 'pod': df.doc})\n"
           "df.plain = px.script_reference('L', 'px/x')\npx.display(df[['ref', 'plain']])\n")
    t = one(src)
    assert semantic_type(t.schema.field("ref")) == "ST_SCRIPT_REFERENCE"
    first = json.loads(t.column("ref")[0].as_py())
    assert first == {"label": "a", "script": "px/pod",
                     "args": {"start_time": "-5m", "pod": json.loads(json.dumps(
                         '{"k":"v","i":5,"f":2.5,"o":{"z":1},"arr":[1,"s"]}'))}}
    assert t.column("plain")[0].as_py() == '{"label":"L","script":"px/x","args":{}}'
    with pytest.raises(PxlCompileError, match="script_reference"):
        column("px.script_reference('L', 'px/x', {'n': 1})")


def test_exec_hostname_is_not_folded() -> None:
    assert column("px._exec_hostname()") == ["node-1"] * 5
    assert column("px.Node(px._exec_hostname())") == ["node-1"] * 5


def test_udf_kwargs_rejected() -> None:
    with pytest.raises(PxlCompileError, match="positional"):
        column("px.contains(df.svc, sub='a')")
