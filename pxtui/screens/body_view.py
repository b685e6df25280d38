"""Bodies as people read them: SQL broken at its clauses, Redis as a command line, JSON indented.

The detail screen calls `body_renderable` for every string cell. Which form applies is decided by
the row's shape, the way the tables are defined (schemas.md): MySQL `req_body` and PostgreSQL
`req` hold SQL and come with a `req_cmd`; Redis rows have `req_cmd` + `req_args` (JSON, an object
of named arguments or an array); Kafka bodies and HTTP bodies are JSON. Anything else is shown
as it is: a body that merely looks like SQL in an HTTP request is not rewritten.
"""

from __future__ import annotations

import json
import re
from typing import Any

from rich.console import RenderableType
from rich.syntax import Syntax
from rich.text import Text

_JSON_START = ("{", "[")

SQL_START = re.compile(
    r"^\s*(select|insert|update|delete|with|create|alter|drop|begin|commit|rollback|set|show|explain|"
    r"replace|truncate|grant|call|values|prepare|execute)\b", re.IGNORECASE)

# Longest first, so "LEFT OUTER JOIN" is matched before "JOIN".
_CLAUSES = sorted(
    ["SELECT", "FROM", "WHERE", "GROUP BY", "ORDER BY", "HAVING", "LIMIT", "OFFSET", "VALUES", "SET",
     "RETURNING", "UNION ALL", "UNION", "INNER JOIN", "LEFT OUTER JOIN", "LEFT JOIN", "RIGHT JOIN",
     "FULL JOIN", "CROSS JOIN", "JOIN", "ON CONFLICT", "INSERT INTO", "UPDATE", "DELETE FROM", "WINDOW"],
    key=len, reverse=True)
_CLAUSE_RE = re.compile(r"\b(" + "|".join(c.replace(" ", r"\s+") for c in _CLAUSES) + r")\b", re.IGNORECASE)
_BOOL_RE = re.compile(r"\s+\b(AND|OR)\b\s+", re.IGNORECASE)
_QUOTED = re.compile(r"('(?:[^']|'')*'|\"(?:[^\"]|\"\")*\"|`[^`]*`)")

SQL_COLUMNS = ("req_body", "req")


def pretty_json(text: str) -> str | None:
    """Indented JSON when `text` is a JSON object or array, else None (plain text stays plain)."""
    stripped = text.strip()
    if not stripped.startswith(_JSON_START):
        return None
    try:
        return json.dumps(json.loads(stripped), indent=2, ensure_ascii=False)
    except ValueError:
        return None


def pretty_sql(sql: str) -> str:
    """One clause per line, AND/OR indented under it; quoted literals are never touched."""
    parts = _QUOTED.split(sql.strip())
    out = []
    for i, part in enumerate(parts):
        if i % 2:  # a quoted literal
            out.append(part)
            continue
        part = re.sub(r"\s+", " ", part)
        part = _CLAUSE_RE.sub(lambda m: "\n" + re.sub(r"\s+", " ", m.group(1)), part)
        part = _BOOL_RE.sub(lambda m: "\n  " + m.group(1) + " ", part)
        out.append(part)
    lines = [ln.rstrip() for ln in "".join(out).split("\n")]
    return "\n".join(ln for ln in lines if ln.strip()).strip()


def _redis_word(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    if text == "" or re.search(r"[\s\"']", text):
        return json.dumps(text, ensure_ascii=False)
    return text


def redis_command(cmd: str, args_text: str) -> str:
    """`SET` + '{"key": "k", "value": "v 1"}' -> 'SET k "v 1"', as redis-cli would take it."""
    try:
        args = json.loads(args_text) if args_text.strip() else []
    except ValueError:
        return f"{cmd} {args_text}".strip()
    if isinstance(args, dict):
        words: list[Any] = []
        for v in args.values():
            words.extend(v if isinstance(v, list) else [v])
    elif isinstance(args, list):
        words = args
    else:
        words = [args]
    return " ".join([cmd, *(_redis_word(w) for w in words)]).strip()


def body_renderable(name: str, value: str, row: dict[str, Any]) -> RenderableType | None:
    """A pretty form of string cell `name` in `row`, or None to show the text as it is."""
    if name == "req_args" and isinstance(row.get("req_cmd"), str):
        line = Text(redis_command(row["req_cmd"], value), style="bold")
        pretty = pretty_json(value)
        if pretty is None:
            return line
        return Text("\n").join([line, Syntax(pretty, "json", background_color="default").highlight(pretty)])
    if name in SQL_COLUMNS and "req_cmd" in row and SQL_START.match(value):
        sql = pretty_sql(value)
        return Syntax(sql, "sql", word_wrap=True, background_color="default")
    pretty = pretty_json(value)
    if pretty is not None:
        return Syntax(pretty, "json", word_wrap=True, background_color="default")
    return None
