"""regex_match and replace: RE2 semantics on Python's ``re``.

Pixie compiles the pattern once (it is an init argument, so the compiler insists on a literal) with
RE2.  Python's ``re`` accepts a superset of RE2, so patterns using what RE2 rejects (backreferences,
look-around, atomic groups, possessive quantifiers) are treated as invalid here too; that keeps
"invalid pattern -> false" and "-> error text" identical.  Two conscious differences: ``re`` can
backtrack where RE2 is linear, and ``\\C`` / ``\\pN`` one-letter classes are not translated.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Sequence

import pyarrow as pa

from cluster.pxl.funcs.arrays import is_scalar, py, rowwise, unique_map
from cluster.pxl.funcs.registry import EvalContext, Registry, ScalarFunc, Signature, Value
from cluster.pxl.types import BOOLEAN, STRING

#: Constructs Python accepts but RE2 does not.
_NOT_RE2 = re.compile(r"\(\?[=!]|\(\?<[=!]|\(\?>|[*+?}]\+|\\[1-9]|\(\?P=")


class InvalidRegex(ValueError):
    """The pattern is not valid RE2; the message is RE2-like."""


@functools.lru_cache(maxsize=256)
def compile_re2(pattern: str) -> re.Pattern[str]:
    """The pattern as RE2 would read it, with '.' matching newlines."""
    stripped = re.sub(r"\\\\", "", pattern)  # escaped backslashes cannot start a construct
    stripped = re.sub(r"\[\^?\]?(?:\\.|[^\]\\])*\]", "", stripped)  # nor can class members
    bad = _NOT_RE2.search(stripped)
    if bad:
        raise InvalidRegex(f"invalid or unsupported Perl syntax: `{bad.group(0)}`")
    # RE2's \z (end of text) is Python's \Z; RE2 has no \Z.
    if re.search(r"(?<!\\)(?:\\\\)*\\Z", pattern):
        raise InvalidRegex("invalid escape sequence: `\\Z`")
    translated = re.sub(r"(?<!\\)((?:\\\\)*)\\z", r"\1\\Z", pattern)
    try:
        return re.compile(translated, re.DOTALL)
    except (re.error, RecursionError, OverflowError) as e:
        raise InvalidRegex(str(e)) from None


def regex_full_match(pattern: str, text: str) -> bool:
    try:
        return compile_re2(pattern).fullmatch(text) is not None
    except InvalidRegex:
        return False


def _rewrite(template: str, groups: int) -> str:
    """Check an RE2 rewrite string (\\0-\\9 and \\\\ only) and give Python's equivalent."""
    out = []
    i = 0
    while i < len(template):
        c = template[i]
        if c != "\\":
            out.append(c)
            i += 1
            continue
        nxt = template[i + 1] if i + 1 < len(template) else ""
        if nxt.isdigit():
            if int(nxt) > groups:
                raise InvalidRegex(f"Rewrite schema requests {nxt} matches, but the regexp only has "
                                   f"{groups} parenthesized subexpressions.")
            out.append(f"\\g<{nxt}>")
        elif nxt == "\\":
            out.append("\\\\")
        else:
            raise InvalidRegex("Rewrite schema error: '\\' not allowed at end." if not nxt else
                               "Rewrite schema error: '\\' must be followed by a digit or '\\'.")
        i += 2
    return "".join(out)


def regex_replace(pattern: str, text: str, sub: str) -> str:
    try:
        rx = compile_re2(pattern)
    except InvalidRegex as e:
        return f"Invalid regex expr: {e}"
    try:
        repl = _rewrite(sub, rx.groups)
    except InvalidRegex as e:
        return f"Invalid regex in substitution string: {e}"
    return rx.sub(repl, text)


def _regex_match(ctx: EvalContext, args: Sequence[Value], sig: Signature, n: int) -> Value:
    pattern, s = args
    if is_scalar(pattern):
        p = py(pattern)
        return unique_map(s, lambda v: regex_full_match(p, v), pa.bool_())
    return rowwise(regex_full_match, args, n, pa.bool_())


def _replace(ctx: EvalContext, args: Sequence[Value], sig: Signature, n: int) -> Value:
    pattern, s, sub = args
    if is_scalar(pattern) and is_scalar(sub):
        p, r = py(pattern), py(sub)
        return unique_map(s, lambda v: regex_replace(p, v, r), pa.string())
    return rowwise(regex_replace, args, n, pa.string())


def register(reg: Registry) -> None:
    reg.add(ScalarFunc("regex_match", (Signature((STRING, STRING), BOOLEAN),), _regex_match,
                       doc="RE2 full match of pattern (arg 1, literal) against s; invalid -> false"))
    reg.add(ScalarFunc("replace", (Signature((STRING, STRING, STRING), STRING),), _replace,
                       doc="RE2 replace-all of pattern (literal) in s by sub (\\1 backrefs)"))
