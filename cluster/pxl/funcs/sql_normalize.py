"""normalize_mysql / normalize_pgsql: turn SQL literals into placeholders so similar queries group.

Output is Pixie's JSON: ``{"query": <normalized>, "params": [<literal text>, ...]}``, or
``{"error": <why>}`` when the query cannot be normalized.

What is supported (a lexer, not a full SQL grammar, so any statement works and spacing is kept):

* literals replaced: integers and decimals (``1``, ``1.23``, ``.5``, ``1e3``), hex ``0x1F``,
  strings ``'..'`` (with ``''`` and, for MySQL, backslash escapes), MySQL ``".."`` strings,
  prefixed strings ``X'..'``, ``B'..'``, ``E'..'``, ``N'..'``, and ``true`` / ``false``;
* left alone: identifiers (also quoted ones: MySQL backticks, PostgreSQL ``".."``), ``@vars``,
  keywords, ``NULL``, comments (``--``, ``#`` for MySQL, ``/* */``), operators;
* placeholders: MySQL ``?``; PostgreSQL ``$n``, renumbered $1, $2, ... in order of appearance;
* the two request shapes the protocol tables store: a plain query (MySQL Query = 3, PostgreSQL
  "Query") and an executed prepared statement ``query=[<sql>] params=[<p1>, <p2>, ...]`` (MySQL
  StmtExecute = 23, PostgreSQL "Execute"), whose bound values become params in placeholder order,
  interleaved with any literals still written in the statement.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass

import pyarrow as pa

from cluster.pxl.funcs.arrays import rowwise
from cluster.pxl.funcs.registry import EvalContext, Registry, ScalarFunc, Signature, Value
from cluster.pxl.types import INT64, STRING

MYSQL_QUERY, MYSQL_EXECUTE = 3, 23
PG_QUERY, PG_EXECUTE = "Query", "Execute"

_EXECUTE = re.compile(r"\Aquery=\[(.*)\] params=\[(.*)\]\Z", re.DOTALL)
_NUMBER = re.compile(r"0[xX][0-9A-Fa-f]+|(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
_WORD = re.compile(r"[A-Za-z_\x80-\U0010FFFF][A-Za-z0-9_$\x80-\U0010FFFF]*")


class NormalizeError(ValueError):
    pass


@dataclass(frozen=True)
class Dialect:
    name: str
    placeholder: str  # "?" or "$"
    double_quote_is_string: bool
    backslash_escapes: bool
    hash_comments: bool


MYSQL = Dialect("MySQL", "?", True, True, True)
PGSQL = Dialect("PostgreSQL", "$", False, False, False)


def _quoted_end(sql: str, start: int, quote: str, backslash: bool) -> int:
    """Index just past the closing quote of the literal opened at ``start``."""
    i = start + 1
    while i < len(sql):
        c = sql[i]
        if backslash and c == "\\":
            i += 2
            continue
        if c == quote:
            if i + 1 < len(sql) and sql[i + 1] == quote:  # doubled quote = one quote character
                i += 2
                continue
            return i + 1
        i += 1
    raise NormalizeError(f"unterminated {quote} quoted text starting at offset {start}")


def _scan(sql: str, d: Dialect) -> list[tuple[int, int, str]]:
    """(start, end, kind) of each literal ("lit") and placeholder ("ph") in ``sql``."""
    out: list[tuple[int, int, str]] = []
    i, n = 0, len(sql)
    prev_word_end = -1
    while i < n:
        c = sql[i]
        if c.isspace():
            i += 1
        elif sql.startswith("--", i) or (d.hash_comments and c == "#"):
            nl = sql.find("\n", i)
            i = n if nl < 0 else nl + 1
        elif sql.startswith("/*", i):
            close = sql.find("*/", i + 2)
            if close < 0:
                raise NormalizeError(f"unterminated comment starting at offset {i}")
            i = close + 2
        elif c == "'":
            end = _quoted_end(sql, i, "'", d.backslash_escapes)
            out.append((i, end, "lit"))
            i = end
        elif c == '"':
            end = _quoted_end(sql, i, '"', d.backslash_escapes and d.double_quote_is_string)
            if d.double_quote_is_string:
                out.append((i, end, "lit"))
            i = end
        elif c == "`":
            i = _quoted_end(sql, i, "`", False)
        elif c == "?" and d.placeholder == "?":
            out.append((i, i + 1, "ph"))
            i += 1
        elif c == "$" and d.placeholder == "$" and i + 1 < n and sql[i + 1].isdigit():
            j = i + 1
            while j < n and sql[j].isdigit():
                j += 1
            out.append((i, j, "ph"))
            i = j
        elif c == "@":
            m = _WORD.match(sql, i + 1)
            i = m.end() if m else i + 1
        elif c.isdigit() or (c == "." and i + 1 < n and sql[i + 1].isdigit() and prev_word_end != i):
            m = _NUMBER.match(sql, i)
            assert m is not None
            out.append((i, m.end(), "lit"))
            i = m.end()
        else:
            m = _WORD.match(sql, i)
            if m is None:
                i += 1
                continue
            word = m.group(0)
            if len(word) == 1 and word in "xXbBeEnN" and m.end() < n and sql[m.end()] == "'":
                end = _quoted_end(sql, m.end(), "'", word in "eE" or d.backslash_escapes)
                out.append((i, end, "lit"))
                i = end
                continue
            if word.lower() in ("true", "false"):
                out.append((i, m.end(), "lit"))
            i = m.end()
            prev_word_end = i
            continue
        prev_word_end = -1
    return out


def _split_params(text: str) -> list[str]:
    """The bound values of ``params=[...]``: comma-separated, commas inside quotes kept."""
    if not text.strip():
        return []
    params, cur, quote = [], [], ""
    for c in text:
        if quote:
            cur.append(c)
            if c == quote:
                quote = ""
        elif c in "'\"":
            quote = c
            cur.append(c)
        elif c == ",":
            params.append("".join(cur).strip())
            cur = []
        else:
            cur.append(c)
    params.append("".join(cur).strip())
    return params


def normalize(sql: str, d: Dialect, execute: bool) -> tuple[str, list[str]]:
    bound: list[str] = []
    if execute:
        m = _EXECUTE.match(sql)
        if m is None:
            raise NormalizeError("executed statement is not of the form 'query=[...] params=[...]'")
        sql, bound = m.group(1), _split_params(m.group(2))
    out: list[str] = []
    params: list[str] = []
    pos = 0
    next_bound = 0
    for start, end, kind in _scan(sql, d):
        if kind == "lit":
            value = sql[start:end]
        elif d.placeholder == "$":
            idx = int(sql[start + 1:end]) - 1
            if not 0 <= idx < len(bound):
                raise NormalizeError(f"placeholder {sql[start:end]} has no bound parameter")
            value = bound[idx]
        else:
            if next_bound >= len(bound):
                raise NormalizeError("more ? placeholders than bound parameters")
            value = bound[next_bound]
            next_bound += 1
        params.append(value)
        out.append(sql[pos:start])
        out.append("?" if d.placeholder == "?" else f"${len(params)}")
        pos = end
    out.append(sql[pos:])
    return "".join(out), params


def to_json(query: str, params: list[str]) -> str:
    return json.dumps({"query": query, "params": params}, separators=(",", ":"), ensure_ascii=False)


def error_json(message: str) -> str:
    return json.dumps({"error": message}, separators=(",", ":"), ensure_ascii=False)


def normalize_mysql(sql: str, cmd: int) -> str:
    if cmd not in (MYSQL_QUERY, MYSQL_EXECUTE):
        return error_json(f"only Query ({MYSQL_QUERY}) and StmtExecute ({MYSQL_EXECUTE}) requests can "
                          f"be normalized, got command {cmd}")
    try:
        return to_json(*normalize(sql, MYSQL, cmd == MYSQL_EXECUTE))
    except NormalizeError as e:
        return error_json(str(e))


def normalize_pgsql(sql: str, cmd: str) -> str:
    if cmd not in (PG_QUERY, PG_EXECUTE):
        return error_json(f"only Query and Execute requests can be normalized, got '{cmd}'")
    try:
        return to_json(*normalize(sql, PGSQL, cmd == PG_EXECUTE))
    except NormalizeError as e:
        return error_json(str(e))


def _udf(fn):
    def impl(ctx: EvalContext, args: Sequence[Value], sig: Signature, n: int) -> Value:
        return rowwise(fn, args, n, pa.string())

    return impl


def register(reg: Registry) -> None:
    reg.add(ScalarFunc("normalize_mysql", (Signature((STRING, INT64), STRING),), _udf(normalize_mysql),
                       doc='JSON {"query","params"} with literals as ?, or {"error"}'))
    reg.add(ScalarFunc("normalize_pgsql", (Signature((STRING, STRING), STRING),), _udf(normalize_pgsql),
                       doc='JSON {"query","params"} with literals as $n, or {"error"}'))
