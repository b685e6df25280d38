"""redact_pii_best_effort: swap likely personal data for <REDACTED_...> tokens.

Kinds, each found independently over the whole input: e-mail addresses (also with a URL-encoded
``%40``), IPv6 and IPv4 addresses, MAC addresses, IMEI/IMEISV numbers and card numbers (13-19 digits,
spaces or dashes allowed between them, kept only when the Luhn check passes).  Where findings
overlap the longest one wins (on a tie, the kind listed first), so an IP inside an e-mail address
is redacted as the address.  Best effort by design: it favours few false positives over recall.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Sequence

import pyarrow as pa

from cluster.pxl.funcs.arrays import unique_map
from cluster.pxl.funcs.registry import EvalContext, Registry, ScalarFunc, Signature, Value
from cluster.pxl.types import STRING

_OCTET = r"(?:25[0-5]|2[0-4][0-9]|[01]?[0-9]{1,2})"
_IPV4 = rf"{_OCTET}\.{_OCTET}\.{_OCTET}\.{_OCTET}"
# Candidate IPv6 text (hex groups, colons, optional dotted tail); ipaddress decides validity.
_IPV6_CANDIDATE = r"(?:[0-9A-Fa-f]{0,4}:){2,7}(?:" + _IPV4 + r"|[0-9A-Fa-f]{1,4})?"


def luhn_ok(digits: str) -> bool:
    """The Luhn checksum of a digit string (the last digit is the check digit)."""
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = ord(ch) - 48
        if i % 2 == 1:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def _strip_delims(s: str) -> str:
    return s.replace("-", "").replace(" ", "")


def _valid_ipv6(s: str) -> bool:
    if s.count("::") > 1 or ":" not in s:
        return False
    try:
        ipaddress.IPv6Address(s)
    except ValueError:
        return False
    return True


#: (token, pattern, extra check), in tie-break order
KINDS: tuple[tuple[str, re.Pattern[str], Callable[[str], bool]], ...] = (
    ("<REDACTED_EMAIL>",
     re.compile(r"[0-9A-Za-z!#$%&'*+\-/=?^_`{|}~.]+(?:@|%40)(?:[A-Za-z0-9-]+\.)*[A-Za-z0-9-]+"),
     lambda s: True),
    ("<REDACTED_IPV6>", re.compile(_IPV6_CANDIDATE), _valid_ipv6),
    ("<REDACTED_IPV4>", re.compile(_IPV4), lambda s: True),
    ("<REDACTED_MAC_ADDR>", re.compile(r"(?:[0-9A-Fa-f]{2}[-:]){5}[0-9A-Fa-f]{2}"), lambda s: True),
    ("<REDACTED_IMEI>", re.compile(r"[0-9]{2}-[0-9]{6}-[0-9]{6}-[0-9]{2}"), lambda s: True),  # IMEISV
    ("<REDACTED_IMEI>", re.compile(r"[0-9]{2}-[0-9]{6}-[0-9]{6}-[0-9]"),
     lambda s: luhn_ok(_strip_delims(s))),
    ("<REDACTED_CC_NUMBER>", re.compile(r"(?:[0-9][ -]*){12,18}[0-9]"),
     lambda s: luhn_ok(_strip_delims(s))),
)


def redact(text: str) -> str:
    # (start, -length, kind order, end, token): sorting puts the winner of each overlap first.
    found: list[tuple[int, int, int, int, str]] = []
    for order, (token, pattern, check) in enumerate(KINDS):
        for m in pattern.finditer(text):
            if m.end() > m.start() and check(m.group(0)):
                found.append((m.start(), -(m.end() - m.start()), order, m.end(), token))
    if not found:
        return text
    found.sort()
    out: list[str] = []
    pos = 0
    i = 0
    while i < len(found):
        # The overlap group starting here: every finding that begins before the group's reach.
        end = found[i][3]
        best = found[i]
        j = i + 1
        while j < len(found) and found[j][0] < end:
            if -found[j][1] > -best[1]:
                best = found[j]
            end = max(end, found[j][3])
            j += 1
        out.append(text[pos:best[0]])
        out.append(best[4])
        pos = best[3]
        # Findings that overlapped the winner but reach past it are dropped with the group.
        i = j
    out.append(text[pos:])
    return "".join(out)


def _redact(ctx: EvalContext, args: Sequence[Value], sig: Signature, n: int) -> Value:
    return unique_map(args[0], redact, pa.string())


def register(reg: Registry) -> None:
    reg.add(ScalarFunc("redact_pii_best_effort", (Signature((STRING,), STRING),), _redact,
                       doc="IPs, e-mails, MACs, IMEIs, card numbers -> <REDACTED_...>"))
