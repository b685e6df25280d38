"""The compiler against hostile input: mutated real scripts, random bytes and deep nesting never
crash it with anything but a located PxlCompileError, each within a bounded time; and nothing a
script writes reaches Python's builtins, object attributes, files or sockets."""

from __future__ import annotations

import builtins
import io
import socket
import time
import tokenize
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cluster import schemas
from cluster.pxl import PxlCompileError, compile_pxl
from cluster.pxl.compiler.pxviews_lib import LIBRARY_PATH
from tests.unit.test_pxl_support import NOW, SCHEMAS

ROOT = Path(__file__).resolve().parents[2]
ALL = {**{n: s.schema for n, s in schemas.TABLES.items()}, **SCHEMAS}
TIME_LIMIT_S = 2.0

SEED_SCRIPTS = [p.read_text() for p in sorted((ROOT / "pxl_scripts").rglob("*.pxl"))] + [
    LIBRARY_PATH.read_text(),
    """import px
import pxviews
ns_per_s = 1000 * 1000 * 1000
window_ns = px.DurationNanos(10 * ns_per_s)
df = px.DataFrame(table='http_events', start_time='-5m', select=['time_', 'upid', 'latency', 'resp_status'])
df.pod = df.ctx['pod']
df.failure = df.resp_status >= 400
df.timestamp = px.bin(df.time_, window_ns)
df = df.groupby(['pod', 'timestamp']).agg(lat=('latency', px.quantiles), errs=('failure', px.sum),
                                          n=('latency', px.count))
df.p50 = px.DurationNanos(px.floor(px.pluck_float64(df.lat, 'p50')))
df.ok = px.regex_match('.*api.*', df.pod) or px.equals_any(df.pod, ['a', 'b'])
df = df[df.n > 2].head(100)
px.display(df, 'out')
px.display(pxviews.http_graph('-5m', px.now()))
""",
]


def tokens_of(source: str) -> list[str]:
    try:
        return [t.string for t in tokenize.generate_tokens(io.StringIO(source).readline)]
    except (tokenize.TokenError, SyntaxError):
        return source.split()


TOKEN_POOL = sorted({t for s in SEED_SCRIPTS for t in tokens_of(s) if t.strip()} | {
    "(", ")", "[", "]", "{", "}", ":", ",", ".", "=", "==", "lambda", "__class__", "__import__",
    "not", "and", "or", "def", "return", "if", "for", "*", "**", "@", "\n", "\t", "    ", "'", '"',
    "0x", "1e400", "9" * 40, "None", "True", "px", "df", "\\", "#", ";", "async", "yield", "await",
})


def check_compiles_or_fails_cleanly(source: str) -> None:
    start = time.perf_counter()
    try:
        compile_pxl(source, now_ns=NOW, schemas=ALL)
    except PxlCompileError as e:
        assert e.errors, "a compile error must carry at least one error"
        for err in e.errors:
            assert err.message
            assert err.line >= 0 and err.col >= 0
            if source.strip():
                assert err.line >= 1, f"unlocated error: {err.message}"
    elapsed = time.perf_counter() - start
    assert elapsed < TIME_LIMIT_S, f"compile took {elapsed:.2f}s"


@st.composite
def mutated_script(draw: st.DrawFn) -> str:
    toks = list(tokens_of(draw(st.sampled_from(SEED_SCRIPTS))))
    for _ in range(draw(st.integers(1, 6))):
        if not toks:
            break
        i = draw(st.integers(0, len(toks) - 1))
        op = draw(st.sampled_from(["delete", "duplicate", "replace", "insert", "swap"]))
        if op == "delete":
            del toks[i]
        elif op == "duplicate":
            toks.insert(i, toks[i])
        elif op == "replace":
            toks[i] = draw(st.sampled_from(TOKEN_POOL))
        elif op == "insert":
            toks.insert(i, draw(st.sampled_from(TOKEN_POOL)))
        else:
            j = draw(st.integers(0, len(toks) - 1))
            toks[i], toks[j] = toks[j], toks[i]
    return draw(st.sampled_from([" ", ""])).join(toks)


@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated_script())
def test_mutated_scripts(source: str) -> None:
    check_compiles_or_fails_cleanly(source)


@settings(max_examples=150, deadline=None)
@given(st.binary(max_size=400))
def test_random_bytes(raw: bytes) -> None:
    check_compiles_or_fails_cleanly(raw.decode("utf-8", errors="replace"))


@settings(max_examples=150, deadline=None)
@given(st.lists(st.sampled_from(TOKEN_POOL), max_size=60).map(" ".join))
def test_random_token_soup(source: str) -> None:
    check_compiles_or_fails_cleanly(source)


@pytest.mark.parametrize("source", [
    "x = " + "(" * 150 + "1" + ")" * 150 + "\n",
    "x = " + "(" * 5000 + "1" + ")" * 5000 + "\n",
    "x = " + "[" * 5000 + "\n",
    "x = " + "-" * 100_000 + "1\n",
    "x = " + "not " * 50_000 + "True\n",
    "x = " + " + ".join(["1"] * 50_000) + "\n",
    "import px\nx = " + "px.abs(" * 3000 + "1" + ")" * 3000 + "\n",
    "import px\ndf = px.DataFrame('small')\ndf.x = " + " + ".join(["df.n"] * 5000) + "\n",
    "import px\n" + "".join(f"def f{i}():\n    return f{i + 1}()\n" for i in range(300)) + "def f300():\n"
    "    return 1\nx = f0()\n",
    "def f():\n    return f()\nx = f()\n",
    "x = '" + "a" * 1_000_000 + "'\n",
    "\x00",
    "\ufeffimport px\n",
    "import px\ndf = px.DataFrame('small')\n" + "df = df[df.n > 0]\n" * 2000 + "px.display(df)\n",
])
def test_deep_and_large_inputs(source: str) -> None:
    check_compiles_or_fails_cleanly(source)


# ---- sandbox ---------------------------------------------------------------------------------


ESCAPES = [
    "__import__('os').system('true')\n",
    "x = ().__class__.__bases__[0].__subclasses__()\n",
    "x = ''.__class__\n",
    "f = open('/etc/passwd')\n",
    "x = getattr(px, 'DataFrame')\n",
    "import px\nx = px.__dict__\n",
    "import px\nx = px.DataFrame.__init__\n",
    "import px\nx = px.now.__globals__\n",
    "import px\ndf = px.DataFrame('small')\nx = df.__class__\n",
    "import px\ndf = px.DataFrame('small')\nx = df.node.__dict__\n",
    "import px\ndf = px.DataFrame('small')\nx = df.n.expr\n",
    "import px\nx = px.display.fn\n",
    "x = (lambda: 1)()\n",
    "x = eval('1')\n",
    "exec('import os')\n",
    "x = globals()\n",
    "x = vars()\n",
    "x = compile('1', 'f', 'eval')\n",
    "import os\n",
    "import socket\n",
    "from os import system\n",
    "import px as os\nfrom px import __builtins__\n",
    "x = f'{1}'\n",
    "x = [c for c in ().__class__.__base__.__subclasses__()]\n",
    "import px\nx = 'abc'.upper()\n",
    "import px\nx = px.DataFrame('small').head.__self__\n",
    "x = __builtins__\n",
    "x = str.mro()\n",
    "x = int.__subclasses__()\n",
    "import px\nx = px.Pod.convert\n",
    "with open('x') as f:\n    pass\n",
    "try:\n    x = 1\nexcept Exception:\n    pass\n",
    "class A:\n    pass\n",
    "import px\ndf = px.DataFrame('small')\ndf.x = px.pluck(df.doc, '__class__')\nx = df.x.__class__\n",
]


@pytest.mark.parametrize("source", ESCAPES)
def test_no_escape_to_python(source: str, monkeypatch: pytest.MonkeyPatch) -> None:
    touched: list[str] = []

    def forbidden(name: str):
        def fn(*a: object, **k: object) -> None:
            touched.append(name)
            raise AssertionError(f"script reached {name}")

        return fn

    monkeypatch.setattr(builtins, "open", forbidden("open"))
    monkeypatch.setattr(socket, "socket", forbidden("socket"))
    monkeypatch.setattr(builtins, "eval", forbidden("eval"))
    monkeypatch.setattr(builtins, "exec", forbidden("exec"))
    with pytest.raises(PxlCompileError) as e:
        compile_pxl(source, now_ns=NOW, schemas=ALL)
    assert touched == []
    assert all(err.line >= 1 for err in e.value.errors), str(e.value)
