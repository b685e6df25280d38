"""String-side builtins against hand-computed values: regex_match, replace, split, has_service_name,
equals_any, the enum name tables, SQL normalisation and PII redaction."""

from __future__ import annotations

import json

import pytest

from cluster.pxl import PxlCompileError
from cluster.pxl.funcs.pii import luhn_ok, redact
from cluster.pxl.funcs.regex_funcs import regex_full_match, regex_replace
from cluster.pxl.funcs.sql_normalize import normalize_mysql, normalize_pgsql
from tests.unit.test_pxl_support import column, run

# small table svc column: a, b, a, c, b ; n column: 1, -7, 3, 4, 10


def lit(expr: str):
    return column(expr)[0]


# ---- regex ----------------------------------------------------------------------------------


def test_regex_match_is_a_full_match() -> None:
    assert column("px.regex_match('a', df.svc)") == [True, False, True, False, False]
    assert column("px.regex_match('[ab]', df.svc)") == [True, True, True, False, True]
    assert lit("px.regex_match('ab', 'abc')") is False
    assert lit("px.regex_match('ab.*', 'abc')") is True


def test_regex_dot_matches_newline_and_invalid_pattern_is_false() -> None:
    assert regex_full_match("a.b", "a\nb")
    assert not regex_full_match("(", "(")
    assert not regex_full_match("[z-a]", "a")
    # RE2 has no backreferences or look-around: such patterns are invalid, hence false.
    assert not regex_full_match(r"(a)\1", "aa")
    assert not regex_full_match(r"a(?=b)b", "ab")
    assert regex_full_match(r"\\1", "\\1")  # an escaped backslash followed by 1 is fine
    assert regex_full_match(r"[+*]+", "+*")  # quantifier characters inside a class are literal
    assert regex_full_match(r"ab\z", "ab")


def test_regex_pattern_must_be_a_literal() -> None:
    with pytest.raises(PxlCompileError, match=r"pattern .* must be a string literal"):
        column("px.regex_match(df.svc, df.svc)")
    with pytest.raises(PxlCompileError, match=r"px.replace\(\) takes 3 arguments"):
        column("px.replace('a', df.svc)")


def test_replace_all_with_backreferences() -> None:
    assert column("px.replace('([ab])', df.svc, '<\\\\1>')") == ["<a>", "<b>", "<a>", "c", "<b>"]
    assert regex_replace(r"10\.0\.0\.[0-9]+", "from 10.0.0.1 to 10.0.0.22", "IP") == "from IP to IP"
    assert regex_replace("a", "banana", r"\0\0") == "baanaanaa"
    assert regex_replace("x", "a\\b", "y") == "a\\b"
    assert regex_replace("a", "aa", r"\\") == "\\\\"


def test_replace_reports_bad_patterns_in_the_value() -> None:
    assert regex_replace("(", "abc", "x").startswith("Invalid regex expr: ")
    assert regex_replace("(a)", "abc", r"\2").startswith("Invalid regex in substitution string: ")
    assert regex_replace("a", "abc", "\\q").startswith("Invalid regex in substitution string: ")


# ---- split / has_service_name / equals_any --------------------------------------------------


def test_split_gives_a_json_array() -> None:
    assert lit("px.split('a,b,,c', ',')") == '["a","b","","c"]'
    assert lit("px.split('', ',')") == '[""]'
    assert lit("px.split('abc', '')") == '["a","b","c"]'
    assert lit("px.split('a::b', '::')") == '["a","b"]'
    assert lit("px.pluck_array(px.split('x/y/z', '/'), 1)") == "y"
    assert json.loads(lit("px.split('é,\"q\"', ',')")) == ["é", '"q"']


def test_has_service_name() -> None:
    assert column("px.has_service_name(df.svc, 'a')") == [True, False, True, False, False]
    assert lit("px.has_service_name('[\"ns/a\",\"ns/b\"]', 'ns/b')") is True
    assert lit("px.has_service_name('[\"ns/a\"]', 'ns/b')") is False
    assert lit("px.has_service_name('[broken', '[broken')") is True
    assert lit("px.has_service_name('', 'x')") is False


def test_equals_any_expands_to_or_of_equals() -> None:
    assert column("px.equals_any(df.svc, ['a', 'c'])") == [True, False, True, True, False]
    assert column("px.equals_any(df.n, [10, -7])") == [False, True, False, False, True]
    with pytest.raises(PxlCompileError, match="non-empty list"):
        column("px.equals_any(df.svc, [])")
    with pytest.raises(PxlCompileError, match="does not support argument types"):
        column("px.equals_any(df.svc, [1])")


# ---- enum names -----------------------------------------------------------------------------


def test_enum_names() -> None:
    assert column("px.protocol_name(df.n)") == ["HTTP", "Invalid (-7)", "MySQL", "CQL", "Kafka"]
    assert lit("px.protocol_name(11)") == "Invalid (11)"
    assert lit("px.protocol_name(13)") == "Invalid (13)"
    assert lit("px.protocol_name(12)") == "AMQP"
    assert lit("px.mysql_command_name(3)") == "Query"
    assert lit("px.mysql_command_name(23)") == "StmtExecute"
    assert lit("px.mysql_command_name(99)") == "99"
    assert column("px.cql_opcode_name(df.n)") == ["Startup", "-7", "Authenticate", "4", "Execute"]
    assert lit("px.kafka_api_key_name(0)") == "Produce"
    assert lit("px.kafka_api_key_name(61)") == "DescribeProducers"
    assert lit("px.kafka_api_key_name(55)") == "55"
    assert lit("px.mux_frame_type_name(-128)") == "Rerr"
    assert lit("px.mux_frame_type_name(127)") == "Rerr"
    assert lit("px.mux_frame_type_name(-1)") == "Rreq"
    assert lit("px.amqp_frame_type_name(8)") == "Heartbeat"
    assert lit("px.amqp_frame_type_name(1)") == "Frame method"


def test_amqp_method_name() -> None:
    assert lit("px.amqp_method_name(60, 40)") == "BasicPublish"
    assert lit("px.amqp_method_name(10, 11)") == "ConnectionStart-ok"
    assert lit("px.amqp_method_name(60, 100)") == "BasicRecover-async"
    assert lit("px.amqp_method_name(90, 0)") == "Tx"
    assert lit("px.amqp_method_name(7, 10)") == "Unknown"
    assert column("px.amqp_method_name(60, df.n * 10)") == [
        "BasicQos", "Basic", "BasicCancel", "BasicPublish", "BasicRecover-async"]


# ---- SQL normalisation -----------------------------------------------------------------------


def _norm(out: str) -> dict:
    return json.loads(out)


@pytest.mark.parametrize(("sql", "cmd", "query", "params"), [
    ("SELECT 1", 3, "SELECT ?", ["1"]),
    ("SELECT * FROM test WHERE prop=@a AND prop2='abcd'", 3,
     "SELECT * FROM test WHERE prop=@a AND prop2=?", ["'abcd'"]),
    ("query=[SELECT * FROM test WHERE prop=? AND prop2='abcd'] params=[1234]", 23,
     "SELECT * FROM test WHERE prop=? AND prop2=?", ["1234", "'abcd'"]),
    ("query=[INSERT INTO test (a, b, c, d, e) VALUES (?, ?, 1.23, ?, ?)] params=[1, 'abcd', true, "
     "X'DEADBEEF']", 23, "INSERT INTO test (a, b, c, d, e) VALUES (?, ?, ?, ?, ?)",
     ["1", "'abcd'", "1.23", "true", "X'DEADBEEF'"]),
    ("INSERT INTO test (a, b, c, d, e) VALUES (1, 'abcd', 1.23, true, X'DEADBEEF')", 3,
     "INSERT INTO test (a, b, c, d, e) VALUES (?, ?, ?, ?, ?)",
     ["1", "'abcd'", "1.23", "true", "X'DEADBEEF'"]),
    ("SELECT `col1`, t2.x FROM t2 WHERE s = \"it's\" -- 5\n LIMIT 10", 3,
     "SELECT `col1`, t2.x FROM t2 WHERE s = ? -- 5\n LIMIT ?", ['"it\'s"', "10"]),
    ("SELECT 'a\\'b', 'c''d', 0x1F, 1e3, .5 /* 7 */ FROM t WHERE x IS NULL", 3,
     "SELECT ?, ?, ?, ?, ? /* 7 */ FROM t WHERE x IS NULL", ["'a\\'b'", "'c''d'", "0x1F", "1e3", ".5"]),
])
def test_normalize_mysql(sql: str, cmd: int, query: str, params: list[str]) -> None:
    assert _norm(normalize_mysql(sql, cmd)) == {"query": query, "params": params}


@pytest.mark.parametrize(("sql", "cmd", "query", "params"), [
    ("SELECT 1", "Query", "SELECT $1", ["1"]),
    ("query=[SELECT * FROM test WHERE prop=$1 AND prop2='abcd'] params=['1234']", "Execute",
     "SELECT * FROM test WHERE prop=$1 AND prop2=$2", ["'1234'", "'abcd'"]),
    ("INSERT INTO test (a, b, c, d, e) VALUES (1, 'abcd', 1.23, true, E'\\\\xDEADBEEF')", "Query",
     "INSERT INTO test (a, b, c, d, e) VALUES ($1, $2, $3, $4, $5)",
     ["1", "'abcd'", "1.23", "true", "E'\\\\xDEADBEEF'"]),
    ("query=[SELECT $2, $1] params=[a, b]", "Execute", "SELECT $1, $2", ["b", "a"]),
    ('SELECT "Col" FROM "T" WHERE v = \'x\'', "Query", 'SELECT "Col" FROM "T" WHERE v = $1', ["'x'"]),
])
def test_normalize_pgsql(sql: str, cmd: str, query: str, params: list[str]) -> None:
    assert _norm(normalize_pgsql(sql, cmd)) == {"query": query, "params": params}


def test_normalize_errors_are_json() -> None:
    assert "error" in _norm(normalize_mysql("SELECT 'oops", 3))
    assert "error" in _norm(normalize_mysql("SELECT 1", 1))
    assert "error" in _norm(normalize_mysql("query=[SELECT ?, ?] params=[1]", 23))
    assert "error" in _norm(normalize_pgsql("SELECT 1", "Parse"))
    assert "error" in _norm(normalize_pgsql("query=[SELECT $3] params=[1]", "Execute"))
    assert "error" in _norm(normalize_pgsql("SELECT 1 /* open", "Query"))


def test_normalize_through_pxl() -> None:
    out = lit("px.pluck(px.normalize_mysql(\"SELECT * FROM t WHERE a='x'\", 3), 'query')")
    assert out == "SELECT * FROM t WHERE a=?"
    assert lit("px.pluck(px.normalize_pgsql('SELECT 2', 'Query'), 'params')") == '["2"]'


# ---- PII ------------------------------------------------------------------------------------


def test_luhn() -> None:
    assert luhn_ok("4111111111111111")
    assert luhn_ok("79927398713")
    assert not luhn_ok("4111111111111112")


@pytest.mark.parametrize(("text", "expected"), [
    ("ip 10.0.0.1 and 256.1.1.1x", "ip <REDACTED_IPV4> and 2<REDACTED_IPV4>x"),
    ("mail a.b+c@example.com or a%40b.io", "mail <REDACTED_EMAIL> or <REDACTED_EMAIL>"),
    ("user@10.0.0.1", "<REDACTED_EMAIL>"),
    ("v6 2001:db8::1 and ::ffff:10.0.0.1", "v6 <REDACTED_IPV6> and <REDACTED_IPV6>"),
    ("time 12:30:45 stays", "time 12:30:45 stays"),
    ("mac 00:1A:2b:3C:4d:5E", "mac <REDACTED_MAC_ADDR>"),
    ("card 4111-1111-1111-1111 end", "card <REDACTED_CC_NUMBER> end"),
    ("card 4111 1111 1111 1112 end", "card 4111 1111 1111 1112 end"),
    ("imei 49-015420-323751-8", "imei <REDACTED_IMEI>"),
    ("imeisv 49-015420-323751-89", "imeisv <REDACTED_IMEI>"),
    ("nothing here", "nothing here"),
    ("", ""),
])
def test_redact(text: str, expected: str) -> None:
    assert redact(text) == expected


def test_redact_through_pxl_keeps_clean_rows() -> None:
    out = run("import px\ndf = px.DataFrame('small')\ndf.r = px.redact_pii_best_effort(df.svc + "
              "' 1.2.3.4')\npx.display(df[['r']])\n")["output"]
    assert out.column("r").to_pylist() == [f"{s} <REDACTED_IPV4>" for s in "abacb"]
