"""Compile errors: located, naming what is wrong; unsupported Python and sandbox escapes rejected."""

from __future__ import annotations

import pytest

from cluster.pxl import PxlCompileError, compile_pxl
from tests.unit.test_pxl_support import NOW, SCHEMAS


def compile_error(source: str) -> PxlCompileError:
    with pytest.raises(PxlCompileError) as info:
        compile_pxl(source, now_ns=NOW, schemas=SCHEMAS)
    return info.value


def test_error_format_has_line_and_column() -> None:
    e = compile_error("import px\ndf = px.DataFrame('small')\ndf = df[df.nope == 1]\n")
    err = e.errors[0]
    assert (err.line, err.col) == (3, 9)
    assert str(err).startswith("L3 : C9  ")
    assert str(e) == str(err)


def test_unknown_column_lists_available_columns() -> None:
    e = compile_error("import px\ndf = px.DataFrame('small')\ndf.y = df.nope\n")
    msg = e.errors[0].message
    assert "'nope'" in msg and "time_, svc, n, x, ok, bytes, dur, doc" in msg


def test_unknown_column_by_subscript_and_in_drop_and_groupby() -> None:
    for stmt in ("df['zz']", "df.drop('zz')", "df.groupby('zz').agg()", "df[['svc', 'zz']]"):
        e = compile_error(f"import px\ndf = px.DataFrame('small')\nx = {stmt}\n")
        assert "'zz'" in str(e) and "available columns" in str(e)


def test_unknown_table() -> None:
    e = compile_error("import px\ndf = px.DataFrame('nope')\n")
    assert "Table 'nope' not found" in str(e) and "http_events" in str(e)


def test_unknown_builtin_is_named_with_position() -> None:
    e = compile_error("import px\nx = 1\ny = px.frobnicate(x)\n")
    err = e.errors[0]
    assert err.line == 3 and err.col == 5
    assert "px.frobnicate" in err.message


def test_refused_builtin_says_why() -> None:
    e = compile_error("import px\ndf = px._HeapGrowthStacks()\n")
    assert "px._HeapGrowthStacks is not available in pxtui" in str(e) and "tcmalloc" in str(e)


@pytest.mark.parametrize(("snippet", "kind"), [
    ("if True:\n    x = 1\n", "If"),
    ("for i in [1]:\n    x = i\n", "For"),
    ("while False:\n    x = 1\n", "While"),
    ("x = lambda y: y\n", "Lambda"),
    ("x = [i for i in [1, 2]]\n", "ListComp"),
    ("x = {i: i for i in [1]}\n", "DictComp"),
    ("x = 1 if True else 2\n", "IfExp"),
    ("class A:\n    pass\n", "ClassDef"),
    ("x = 1\nx += 1\n", "AugAssign"),
    ("with px:\n    x = 1\n", "With"),
    ("x = f'{1}'\n", "JoinedStr"),
    ("x = {1, 2}\n", "Set"),
    ("del px\n", "Delete"),
    ("pass\n", "Pass"),
])
def test_unsupported_constructs_are_named(snippet: str, kind: str) -> None:
    e = compile_error("import px\n" + snippet)
    assert f"Can't parse expression of type {kind}" in str(e)
    assert e.errors[0].line >= 2


@pytest.mark.parametrize("op", ["**", "//", "&", "|", "<<"])
def test_unsupported_operators_are_named(op: str) -> None:
    e = compile_error(f"x = 2 {op} 3\n")
    assert f"'{op}'" in str(e)


def test_chained_comparison_and_in_rejected() -> None:
    assert "Chained" in str(compile_error("x = 1 < 2 < 3\n"))
    assert "'in'" in str(compile_error("x = 1 in [1]\n"))


@pytest.mark.parametrize("source", [
    "import os\n",
    "import subprocess as sp\n",
    "from os import path\n",
])
def test_only_pxl_modules_can_be_imported(source: str) -> None:
    e = compile_error(source)
    assert "cannot be imported" in str(e)


@pytest.mark.parametrize("source", [
    "x = __import__('os')\n",
    "x = open('/etc/passwd')\n",
    "x = eval('1')\n",
    "x = exec('1')\n",
    "x = getattr(1, 'y')\n",
])
def test_python_builtins_are_not_reachable(source: str) -> None:
    assert "is not defined" in str(compile_error(source))


@pytest.mark.parametrize("source", [
    "import px\nx = px.__class__\n",
    "import px\nx = px.DataFrame.__init__\n",
    "import px\ndf = px.DataFrame('small')\nx = df.__class__.__bases__\n",
    "import px\nx = px.now.__globals__\n",
    "import px\ndf = px.DataFrame('small')\ndf.__dict__ = 1\n",
])
def test_dunder_attributes_rejected(source: str) -> None:
    assert "not allowed" in str(compile_error(source))


def test_attribute_of_literal_is_not_python_attribute() -> None:
    e = compile_error("x = 'abc'.upper()\n")
    assert "has no attribute 'upper'" in str(e)


def test_type_mismatch_names_both_types() -> None:
    e = compile_error("import px\ndf = px.DataFrame('small')\ndf.y = df.svc + df.n\n")
    assert "STRING, INT64" in str(e) and "'+'" in str(e)
    e = compile_error("import px\ndf = px.DataFrame('small')\ndf.y = px.contains(df.n, 'a')\n")
    assert "px.contains" in str(e) and "INT64, STRING" in str(e)


def test_filter_must_be_boolean() -> None:
    e = compile_error("import px\ndf = px.DataFrame('small')\ndf = df[df.n + 1]\n")
    assert "BOOLEAN" in str(e) and "INT64" in str(e)


def test_semantic_cast_cannot_change_data_type() -> None:
    e = compile_error("import px\ndf = px.DataFrame('small')\ndf.y = px.DurationNanos(df.x)\n")
    assert "Only semantic type casts are allowed" in str(e) and "FLOAT64" in str(e)


def test_default_parameter_values_rejected() -> None:
    e = compile_error("def f(a=1):\n    return a\n")
    assert "default values not supported" in str(e)


def test_varargs_and_decorators_rejected() -> None:
    assert "positional" in str(compile_error("def f(*a):\n    return 1\n"))
    assert "Decorators" in str(compile_error("import px\n@px.now\ndef f(a):\n    return 1\n"))


def test_return_outside_function() -> None:
    assert "'return' outside function" in str(compile_error("return 1\n"))


def test_tuple_unpacking_and_multiple_targets() -> None:
    assert "Tuple" in str(compile_error("a, b = 1, 2\n"))
    assert "multiple targets" in str(compile_error("a = b = 1\n"))


def test_undefined_name() -> None:
    e = compile_error("import px\nx = y + 1\n")
    assert "name 'y' is not defined" in str(e) and e.errors[0].line == 2


def test_syntax_error_is_located() -> None:
    e = compile_error("import px\nx = (1 +\n")
    assert e.errors[0].line >= 2 and "Syntax error" in str(e)


def test_missing_comma_elsewhere_is_still_an_error() -> None:
    e = compile_error("x = [1 2]\n")
    assert "Syntax error" in str(e)


def test_agg_spec_errors() -> None:
    base = "import px\ndf = px.DataFrame('small')\n"
    assert "tuple" in str(compile_error(base + "df = df.groupby('svc').agg(c=px.count)\n"))
    assert "px.max does not support STRING" in str(
        compile_error(base + "df = df.groupby('svc').agg(c=('doc', px.max))\n"))
    assert "aggregate" in str(compile_error(base + "df.c = px.mean(df.n)\n"))
    assert "at least one aggregate" in str(compile_error(base + "df = df.agg()\n"))


def test_merge_key_type_mismatch() -> None:
    src = ("import px\na = px.DataFrame('small')\nb = px.DataFrame('small')\n"
           "c = a.merge(b, how='inner', left_on='svc', right_on='n')\n")
    e = compile_error(src)
    assert "STRING" in str(e) and "INT64" in str(e)


def test_append_needs_identical_columns() -> None:
    src = ("import px\na = px.DataFrame('small')\nb = a.drop('doc')\nc = a.append(b)\n")
    assert "identical columns" in str(compile_error(src))


def test_ctx_errors() -> None:
    base = "import px\ndf = px.DataFrame('small')\n"
    assert "Unknown ctx key 'bogus'" in str(compile_error(base + "df.p = df.ctx['bogus']\n"))
    assert "needs one of the columns upid" in str(compile_error(base + "df.p = df.ctx['pod']\n"))


def test_head_requires_int_literal() -> None:
    assert "integer literal" in str(compile_error(
        "import px\ndf = px.DataFrame('small')\ndf = df.head('5')\n"))


def test_column_from_another_frame_must_exist_here() -> None:
    src = ("import px\na = px.DataFrame('small')\nb = a.groupby('svc').agg(c=('n', px.count))\n"
           "b.z = a.x\n")
    assert "not available in this DataFrame" in str(compile_error(src))


def test_user_function_argument_errors() -> None:
    src = "def f(a: int):\n    return a\n"
    assert "missing required argument 'a'" in str(compile_error(src + "x = f()\n"))
    assert "unexpected keyword" in str(compile_error(src + "x = f(b=1)\n"))
    assert "must be INT64" in str(compile_error(src + "x = f('s')\n"))
    assert "takes 1 arguments" in str(compile_error(src + "x = f(1, 2)\n"))


def test_recursion_is_bounded() -> None:
    e = compile_error("def f(a):\n    return f(a)\nx = f(1)\n")
    assert "recursion" in str(e)
