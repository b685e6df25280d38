"""Data access modes, applied to a query's output tables before they are sealed for the client.

Pixie's three modes, chosen per API key (cluster/auth/api_keys.py):

- `full`: the tables as the query produced them.
- `restricted`: every column that carries a payload (Pixie's sensitive columns: request and response
  bodies, headers, SQL text, Redis arguments, NATS message bodies) is replaced by "REDACTED".
- `pii`: every string column keeps its text, but what looks like PII inside it is replaced by a
  `<REDACTED_TYPE>` tag: email addresses, IPv4 and IPv6 addresses, MAC addresses, credit card numbers
  (Luhn-checked), IBANs (mod-97-checked), US social security numbers, phone numbers, JWTs, bearer and
  basic credentials, and pxtui API keys. Best effort, as Pixie says of its own: a pattern that is not
  listed, or written in an unusual way, passes through.

Everything is vectorised with pyarrow.compute (RE2 regexes over whole columns); the checksums run as
column arithmetic over the candidate matches only. No Python runs per row.

Where it applies: the broker redacts the tables a query outputs, by column name. Pixie redacts at the
table source instead, which also covers a payload copied into a column of another name
(`df.x = df.req_body`); see redacting_batches() for the source-level form.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator

import pyarrow as pa
import pyarrow.compute as pc

from cluster.auth.api_keys import MODES, check_mode

__all__ = [
    "MODES",
    "REDACTED",
    "SENSITIVE_COLUMNS",
    "redact_outputs",
    "redact_pii",
    "redact_table",
    "redacting_batches",
]

REDACTED = "REDACTED"

# Pixie's sensitive columns (its planner's SensitiveColumnMap), by name: the output of a query has lost
# the name of the table a column came from, and these names mean a payload in every table that has them.
SENSITIVE_COLUMNS = frozenset(
    {"req_headers", "req_body", "resp_headers", "resp_body", "req", "resp", "req_args", "body"}
)

_STRING_TYPES = (pa.types.is_string, pa.types.is_large_string)


def _is_string(t: pa.DataType) -> bool:
    return any(f(t) for f in _STRING_TYPES)


# ---- PII patterns (RE2) ----------------------------------------------------------------------------
_OCTET = r"(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])"
_IPV4 = rf"{_OCTET}(?:\.{_OCTET}){{3}}"
_H = r"[0-9A-Fa-f]{1,4}"


def _ipv6_pattern() -> str:
    """Every place the `::` can stand (or none), each with a plain or an IPv4 tail. The IPv4-tailed forms
    come first: RE2 takes the first alternative that matches, and `::ffff:1` is a prefix of `::ffff:1.2.3.4`."""
    v4_tail = [rf"(?:{_H}:){{6}}{_IPV4}"]
    plain = [rf"(?:{_H}:){{7}}{_H}"]
    for before in range(0, 7):
        left = rf"(?:{_H}:){{{before - 1}}}{_H}" if before > 1 else (_H if before == 1 else "")
        if before <= 5:
            v4_tail.append(rf"{left}::(?:{_H}:){{0,{5 - before}}}{_IPV4}")
        plain.append(rf"{left}::(?:{_H}(?::{_H}){{0,{6 - before}}})?" if before < 7 else rf"{left}::")
    plain.append(rf"(?:{_H}:){{6}}{_H}::")
    return "|".join(v4_tail + plain)


# A candidate must not continue a longer hex/word token on its left; the character before is kept.
_IPV6 = rf"(^|[^0-9A-Za-z_:.])(?:{_ipv6_pattern()})"

# (pattern, replacement) applied in order: credentials first (they hold digits and dots), then email
# addresses (whose domain may be an IP), then addresses, then the number-shaped identifiers.
_PLAIN_RULES: list[tuple[str, str]] = [
    (r"\beyJ[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*", "<REDACTED_JWT>"),
    (r"\b((?i:bearer|basic|token))(\s+)[A-Za-z0-9._~+/=-]{8,}", r"\1\2<REDACTED_TOKEN>"),
    (r"\bpxk_[A-Za-z0-9_-]{16,}", "<REDACTED_API_KEY>"),
    # The local part leaves out RFC 5322's rarer characters (/ = ? & ...): they delimit URLs and queries.
    (r"[A-Za-z0-9._%+'-]+(?:@|%40)[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+", "<REDACTED_EMAIL>"),
]
_ADDRESS_RULES: list[tuple[str, str]] = [
    (r"\b(?:[0-9A-Fa-f]{2}[:-]){5}[0-9A-Fa-f]{2}\b", "<REDACTED_MAC_ADDR>"),
    (_IPV6, r"\1<REDACTED_IPV6>"),
    (rf"\b{_IPV4}\b", "<REDACTED_IPV4>"),
    (r"\+[0-9]{8,15}\b", "<REDACTED_PHONE>"),  # E.164, before card numbers: its digits may pass Luhn
]
_NUMBER_RULES: list[tuple[str, str]] = [
    (r"\b[0-9]{3}-[0-9]{2}-[0-9]{4}\b", "<REDACTED_SSN>"),
    (r"(?:\+[0-9]{1,3}[ .-]?)?(?:\([0-9]{3}\)|\b[0-9]{3})[ .-]?[0-9]{3}[ .-][0-9]{4}\b", "<REDACTED_PHONE>"),
]
# Card numbers: 13 to 19 digits, optionally grouped by spaces or dashes, starting as the card networks'
# numbers do (2-6), so that nanosecond timestamps and other long counters are not candidates at all.
_CC = r"\b[2-6](?:[ -]?[0-9]){12,18}\b"
_IBAN = r"\b[A-Z]{2}[0-9]{2}(?: ?[A-Z0-9]){11,30}\b"

# Markers for candidates while they are checked; any occurrence in the data is neutralised first.
_SEP, _MARK = "\x1e", "\x1f"


# ---- checksums over columns --------------------------------------------------------------------
def _mod(x: pa.Array, m: int) -> pa.Array:
    """x mod m for non-negative int64 (integer division truncates)."""
    return pc.subtract(x, pc.multiply(pc.divide(x, m), m))


def _digits_at(padded: pa.Array, width: int) -> list[pa.Array]:
    return [pc.cast(pc.utf8_slice_codeunits(padded, i, i + 1), pa.int64()) for i in range(width)]


def _luhn_ok(candidates: pa.Array) -> pa.Array:
    """Luhn over a column of digit strings (separators already removed). Left-padding with zeros keeps
    the checksum, so every string becomes 19 digits and position i has a fixed distance from the end."""
    width = 19
    padded = pc.utf8_lpad(candidates, width, "0")
    total = pa.scalar(0, pa.int64())
    for i, d in enumerate(_digits_at(padded, width)):
        if (width - 1 - i) % 2 == 1:  # every second digit from the right is doubled
            d = pc.multiply(d, 2)
            d = pc.if_else(pc.greater(d, 9), pc.subtract(d, 9), d)
        total = pc.add(total, d)
    return pc.equal(_mod(total, 10), 0)


def _iban_ok(candidates: pa.Array) -> pa.Array:
    """ISO 13616: move the first four characters to the end, letters become 10..35, the number mod 97 is 1.
    The number (up to 68 digits) is reduced seven digits at a time, so it never leaves int64."""
    moved = pc.binary_join_element_wise(
        pc.utf8_slice_codeunits(candidates, 4), pc.utf8_slice_codeunits(candidates, 0, 4), ""
    )
    for code, letter in enumerate("ABCDEFGHIJKLMNOPQRSTUVWXYZ", start=10):
        moved = pc.replace_substring(moved, letter, str(code))
    width = 70  # a multiple of 7 above 68
    padded = pc.utf8_lpad(moved, width, "0")
    rest = pa.scalar(0, pa.int64())
    for i in range(0, width, 7):
        chunk = pc.cast(pc.utf8_slice_codeunits(padded, i, i + 7), pa.int64())
        acc = pc.add(pc.multiply(rest, 10_000_000), chunk)
        rest = _mod(acc, 97)
    return pc.equal(rest, 1)


def _validated(arr: pa.Array, pattern: str, strip: str, check: Callable[[pa.Array], pa.Array], tag: str) -> pa.Array:
    """Replace the matches of `pattern` that pass `check` by `tag`, leaving the others as they were.

    Each match is cut out as its own list element (the string is split around markers put in by one
    regex replace), checked as a column, and the lists are joined back. Only rows with a match take
    part, so the common case (no card numbers at all) costs one regex scan."""
    has = pc.fill_null(pc.match_substring_regex(arr, pattern), False)
    if not pc.any(has).as_py():
        return arr
    rows = pc.filter(arr, has)
    marked = pc.replace_substring_regex(rows, f"({pattern})", f"{_SEP}{_MARK}\\1{_SEP}")
    parts = pc.split_pattern(marked, _SEP)
    flat = parts.flatten()
    is_cand = pc.starts_with(flat, _MARK)
    text = pc.if_else(is_cand, pc.utf8_slice_codeunits(flat, 1), flat)
    cand = pc.filter(text, is_cand)
    ok = check(pc.replace_substring_regex(cand, strip, "")) if strip else check(cand)
    ok_full = pc.replace_with_mask(pa.repeat(pa.scalar(False), len(flat)), is_cand, ok)
    pieces = pc.if_else(ok_full, pa.scalar(tag, flat.type), text)
    joined = pc.binary_join(type(parts).from_arrays(parts.offsets, pieces), "")
    return pc.replace_with_mask(arr, has, joined.cast(arr.type))


# Any candidate of any rule: one scan finds the rows worth the dozen passes (most rows have none).
_ANY = "|".join(f"(?:{p})" for p, _ in _PLAIN_RULES + _ADDRESS_RULES + _NUMBER_RULES) + f"|(?:{_IBAN})|(?:{_CC})"


def _redact_strings(arr: pa.Array) -> pa.Array:
    if pc.any(pc.match_substring_regex(arr, f"[{_SEP}{_MARK}]")).as_py():
        arr = pc.replace_substring_regex(arr, f"[{_SEP}{_MARK}]", "\ufffd")
    has = pc.fill_null(pc.match_substring_regex(arr, _ANY), False)
    if not pc.any(has).as_py():
        return arr
    return pc.replace_with_mask(arr, has, _apply_rules(pc.filter(arr, has)))


def _apply_rules(arr: pa.Array) -> pa.Array:
    for pattern, repl in _PLAIN_RULES:
        arr = pc.replace_substring_regex(arr, pattern, repl)
    arr = _validated(arr, _IBAN, " ", _iban_ok, "<REDACTED_IBAN>")
    for pattern, repl in _ADDRESS_RULES:
        arr = pc.replace_substring_regex(arr, pattern, repl)
    arr = _validated(arr, _CC, "[ -]", _luhn_ok, "<REDACTED_CC_NUMBER>")
    for pattern, repl in _NUMBER_RULES:
        arr = pc.replace_substring_regex(arr, pattern, repl)
    return arr


def _redact_repetitive(arr: pa.Array) -> pa.Array:
    """Columns such as addresses and headers repeat a few values over many rows: when a sample says so,
    the rules run once per distinct value. Bodies are mostly distinct, and are not hashed for nothing."""
    if len(arr) >= 64:
        sample = arr.slice(0, 1024)
        if pc.count_distinct(sample).as_py() * 2 <= len(sample):
            enc = pc.dictionary_encode(arr)
            return pc.take(_redact_strings(enc.dictionary), enc.indices)
    return _redact_strings(arr)


def redact_pii(values: pa.Array | pa.ChunkedArray) -> pa.Array | pa.ChunkedArray:
    """PII inside a string column (plain or dictionary-encoded) replaced by tags; other types as they are."""
    if isinstance(values, pa.ChunkedArray):
        return pa.chunked_array([redact_pii(c) for c in values.chunks], type=values.type)
    t = values.type
    if pa.types.is_dictionary(t) and _is_string(t.value_type):
        return pa.DictionaryArray.from_arrays(values.indices, _redact_strings(values.dictionary))
    if _is_string(t) and len(values):
        return _redact_repetitive(values)
    return values


# ---- tables ----------------------------------------------------------------------------------------
def _constant(field: pa.Field, n: int) -> pa.Array:
    if _is_string(field.type):
        return pa.repeat(pa.scalar(REDACTED, field.type), n)
    if pa.types.is_dictionary(field.type) and _is_string(field.type.value_type):
        return pa.repeat(pa.scalar(REDACTED, field.type.value_type), n).dictionary_encode().cast(field.type)
    return pa.nulls(n, field.type)  # a payload column turned into another type: nothing of it is kept


def redact_table(table: pa.Table, mode: str) -> pa.Table:
    """The table as a key with this mode may see it; schema, field metadata and row count unchanged."""
    check_mode(mode)
    if mode == "full":
        return table
    for i, field in enumerate(table.schema):
        if mode == "restricted":
            if field.name in SENSITIVE_COLUMNS:
                table = table.set_column(i, field, _constant(field, table.num_rows))
        elif mode == "pii":
            col = table.column(i)
            if _is_string(field.type) or pa.types.is_dictionary(field.type):
                table = table.set_column(i, field, redact_pii(col))
    return table


def redact_outputs(outputs: Iterable[tuple[str, pa.Table]], mode: str) -> list[tuple[str, pa.Table]]:
    """For the broker: every output table of a query, redacted for the mode of the key that ran it."""
    return [(name, redact_table(table, mode)) for name, table in outputs]


def redacting_batches(batches: Iterable[pa.RecordBatch], mode: str) -> Iterator[pa.RecordBatch]:
    """Source-level redaction (Pixie's placement): batches as a table scan yields them, redacted before
    any operator sees them, so a payload copied into a column of another name is redacted too."""
    check_mode(mode)
    for b in batches:
        if mode == "full" or b.num_rows == 0:
            yield b
            continue
        t = redact_table(pa.Table.from_batches([b]), mode)
        yield pa.RecordBatch.from_arrays([c.combine_chunks() for c in t.columns], schema=t.schema)
