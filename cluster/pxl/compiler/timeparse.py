"""Pixie's time and duration forms (pxl_surface §6), all resolved at compile time against now."""

from __future__ import annotations

import calendar
import re

NS = {"ms": 1_000_000, "s": 1_000_000_000, "m": 60_000_000_000, "h": 3_600_000_000_000,
      "d": 86_400_000_000_000}

# Searched for, not fully matched: "-1h30m" is -1h, as in Pixie.
_RELATIVE = re.compile(r"([-]?[0-9]+)(ms|m|s|h|d)")
# %E4Y-%m-%d %H:%M:%E*S %z, e.g. "2020-07-13 18:02:5.00 -0700"
_ABSOLUTE = re.compile(
    r"^\s*(\d{4})-(\d{1,2})-(\d{1,2})[ T](\d{1,2}):(\d{1,2}):(\d{1,2})(?:\.(\d*))?\s*"
    r"(?:([+-])(\d{2}):?(\d{2})|Z|UTC)?\s*$")


class TimeParseError(ValueError):
    pass


def parse_duration_ns(text: str) -> int:
    m = _RELATIVE.search(text)
    if m is None:
        raise TimeParseError(f"'{text}' is not a duration (expected e.g. -5m, 30s, 2h, 100ms, 1d)")
    return int(m.group(1)) * NS[m.group(2)]


def parse_absolute_ns(text: str) -> int | None:
    m = _ABSOLUTE.match(text)
    if m is None:
        return None
    y, mo, d, hh, mm, ss = (int(m.group(i)) for i in range(1, 7))
    frac = (m.group(7) or "").ljust(9, "0")[:9]
    try:
        secs = calendar.timegm((y, mo, d, hh, mm, ss, 0, 0, 0))
    except (ValueError, OverflowError) as e:  # pragma: no cover - timegm is lenient
        raise TimeParseError(f"'{text}' is not a valid time: {e}") from e
    if not (1 <= mo <= 12 and 1 <= d <= 31 and hh < 24 and mm < 60 and ss < 61):
        raise TimeParseError(f"'{text}' is not a valid time")
    if m.group(8):
        offset = (int(m.group(9)) * 3600 + int(m.group(10)) * 60) * (1 if m.group(8) == "+" else -1)
        secs -= offset
    return secs * 1_000_000_000 + int(frac)


def parse_time_ns(value: str | int, now_ns: int) -> int:
    """Absolute ns for a relative string ("-5m"), an absolute string, or int ns."""
    if isinstance(value, int):
        return value
    absolute = parse_absolute_ns(value)
    if absolute is not None:
        return absolute
    if _RELATIVE.search(value) is None:
        raise TimeParseError(
            f"cannot parse time '{value}': use a relative time such as -5m, an absolute time "
            "'YYYY-MM-DD HH:MM:SS[.frac] +zzzz', or int nanoseconds")
    return now_ns + parse_duration_ns(value)


def format_duration(ns: int) -> str:
    """"-5m" style: the largest whole unit (d/h/m/s, else ms), truncated toward zero, sign kept."""
    sign = "-" if ns < 0 else ""
    mag = abs(ns)
    for unit in ("d", "h", "m", "s"):
        if mag >= NS[unit]:
            return f"{sign}{mag // NS[unit]}{unit}"
    return f"{sign}{mag // NS['ms']}ms"
