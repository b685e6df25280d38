"""Source text -> Python AST, tolerating the one syntax quirk Pixie's parser has.

Pixie's parser (pypa) accepts a missing comma between keyword arguments of a call, and five shipped
scripts rely on it.  CPython rejects it with "Perhaps you forgot a comma?"; we then insert the comma
where CPython points and re-parse, but keep the repair only if it really sat between two keyword
arguments, so other missing commas (``[a b]``) are still errors.
"""

from __future__ import annotations

import ast
import io
import tokenize

from cluster.pxl.errors import PxlCompileError, PxlError

_MAX_REPAIRS = 64


def _insert_comma(source: str, err: SyntaxError) -> tuple[str, tuple[int, int]] | None:
    """Put a comma after the token that precedes the one CPython's error range ends on."""
    if err.end_lineno is None or err.end_offset is None:
        return None
    end = (err.end_lineno, err.end_offset - 1)
    prev: tokenize.TokenInfo | None = None
    try:
        for tok in tokenize.generate_tokens(io.StringIO(source).readline):
            if tok.type in (tokenize.NL, tokenize.NEWLINE, tokenize.COMMENT, tokenize.INDENT,
                            tokenize.DEDENT):
                continue
            if tok.end == end and prev is not None:
                line_no, col = prev.end
                lines = source.splitlines(keepends=True)
                line = lines[line_no - 1]
                lines[line_no - 1] = line[:col] + "," + line[col:]
                return "".join(lines), prev.end
            if tok.start >= end:
                return None
            prev = tok
    except (tokenize.TokenError, SyntaxError, IndentationError):
        return None
    return None


def _between_keywords(tree: ast.AST, pos: tuple[int, int]) -> bool:
    """Was the inserted comma right after a keyword argument that another keyword follows?"""
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            for a, b in zip(node.keywords, node.keywords[1:], strict=False):
                if (a.end_lineno, a.end_col_offset) == pos and b.arg is not None:
                    return True
    return False


def _deepest_point(source: str) -> tuple[int, int]:
    """Where the brackets nest deepest (1-based line, col), else the start of the longest line:
    the best place to point at when Python's parser gives up without a location."""
    depth = best = 0
    where = (1, 1)
    line, col = 1, 0
    for ch in source:
        col += 1
        if ch == "\n":
            line, col = line + 1, 0
        elif ch in "([{":
            depth += 1
            if depth > best:
                best, where = depth, (line, col)
        elif ch in ")]}":
            depth -= 1
    if best:
        return where
    lengths = [len(x) for x in source.splitlines()] or [0]
    return lengths.index(max(lengths)) + 1, 1


def parse_source(source: str) -> ast.Module:
    text = source
    repairs: list[tuple[int, int]] = []
    first_error: SyntaxError | None = None
    for _ in range(_MAX_REPAIRS):
        try:
            tree = ast.parse(text, mode="exec")
        except (RecursionError, MemoryError):
            line, col = _deepest_point(source)
            raise PxlCompileError([PxlError("Syntax error: the script is nested too deeply to parse",
                                            line, col)]) from None
        except SyntaxError as e:
            first_error = first_error or e
            fixed = _insert_comma(text, e) if "forgot a comma" in (e.msg or "") else None
            if fixed is None:
                break
            text, pos = fixed
            repairs.append(pos)
            continue
        if all(_between_keywords(tree, p) for p in repairs):
            return tree
        break
    assert first_error is not None
    e = first_error
    line, col = e.lineno or 0, e.offset or 0
    if not line:  # e.g. a NUL byte: CPython rejects the text before it knows a position
        nul = source.find("\0")
        line, col = (source.count("\n", 0, nul) + 1, nul - source.rfind("\n", 0, nul)) if nul >= 0 else (1, 1)
    raise PxlCompileError([PxlError(f"Syntax error: {e.msg}", line, col)])
