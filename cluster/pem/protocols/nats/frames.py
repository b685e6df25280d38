"""NATS client protocol framing: bytes of one direction -> :class:`NatsMessage` objects, with the
options rendered as Pixie renders them (nats_events.beta ``cmd`` and ``body``).

The protocol (docs.nats.io, "Client Protocol") is a control line ending in CRLF, followed for PUB,
HPUB, MSG and HMSG by a payload of the announced size and a CRLF. Renderings (Pixie's nats parser):

* INFO, CONNECT: the JSON text as sent, trailing blanks stripped; -ERR: the error text as sent;
* SUB: ``{"sid","subject"}`` or ``{"queue group","sid","subject"}``; UNSUB: ``{"sid"}`` or
  ``{"max_msgs","sid"}``;
* PUB: ``{"payload","reply-to"?,"subject"}``; MSG: ``{"payload","reply-to"?,"sid","subject"}``;
* PING, PONG, +OK: empty.

Keys are sorted, as Pixie's std::map orders them. HPUB and HMSG (headers, NATS 2.2; Pixie does not
parse them) render like PUB and MSG plus ``"headers"``, an object of the header fields (repeated
fields joined by ","), and ``"status"`` when the header line carries one (``503`` for no responders).
Payloads are decoded as UTF-8 (invalid bytes replaced) and kept up to ``body_cap`` bytes.

Verbs are case-insensitive on the wire and upper-case here. The parser waits (consuming nothing)
while a message is incomplete, never raises on bad input and, after garbage, resynchronises on the
next line that starts with a verb, counting one error.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

from cluster.pem.data_stream import DataStream
from cluster.pem.protocols.stream_parser import StreamParser

MAX_LINE = 256 * 1024  # INFO lists cluster URLs; a control line longer than this is garbage
MAX_PAYLOAD = 64 * 1024 * 1024  # nats-server's max_payload cannot exceed 64 MiB
DEFAULT_BODY_CAP = 512
VERBS = frozenset(("INFO", "CONNECT", "PUB", "HPUB", "SUB", "UNSUB", "MSG", "HMSG", "PING", "PONG", "+OK", "-ERR"))
_BLANKS = b" \t\r\n\x0b\x0c"  # what bytes.split() splits on
_VERB_BYTES = tuple(v.encode() for v in VERBS)
_RESYNC = re.compile(rb"\n(?=(?:INFO|CONNECT|H?PUB|UNSUB|SUB|H?MSG|PING|PONG|\+OK|-ERR)[ \t\r\n])", re.I)
dumps = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), sort_keys=True).encode


class _NeedMore(Exception):
    pass


class _Bad(Exception):
    pass


@dataclass(slots=True)
class NatsMessage:
    ts_ns: int
    cmd: str  # the verb, upper-case, as Pixie writes it ("+OK" and "-ERR" with their sign)
    body: str  # Pixie's rendering of the options (see the module docstring)
    verbose: bool = False  # CONNECT only: the client asked for +OK after every message


def _digits(raw: bytes, limit: int) -> int:
    if not raw.isdigit() or len(raw) > 10:
        raise _Bad
    n = int(raw)
    if n > limit:
        raise _Bad
    return n


def _headers(block: bytes) -> tuple[dict[str, str], str]:
    """A NATS/1.0 header block -> (fields, status). The first line may carry a status and text."""
    lines = block.decode("utf-8", "replace").split("\r\n")
    first = lines[0]
    if not first.startswith("NATS/"):
        raise _Bad
    status = first.partition(" ")[2].strip()
    fields: dict[str, str] = {}
    for line in lines[1:]:
        if not line:
            continue
        key, sep, value = line.partition(":")
        if not sep:
            raise _Bad
        key, value = key.strip(), value.strip()
        fields[key] = f"{fields[key]},{value}" if key in fields else value
    return fields, status


class NatsParser(StreamParser):
    """Incremental parser for one direction; kept in ``DataStream.state``."""

    __slots__ = ("_in_garbage", "body_cap")

    def __init__(self, body_cap: int = DEFAULT_BODY_CAP) -> None:
        self.body_cap = body_cap
        self.errors = 0
        self._in_garbage = False

    def next_message(self, stream: DataStream) -> NatsMessage | None:
        """Parse and consume the next complete message, or None if there is none yet."""
        buf, start = stream.view()
        end = len(buf)
        pos = start
        if stream.needs_resync:  # bytes were lost: what follows is probably mid-message
            stream.needs_resync = False
            pos = self._skip_garbage(buf, pos, end)
        while pos < end:
            if buf[pos] in _BLANKS:  # blank space between messages
                pos += 1
                continue
            try:
                msg, after = self._parse(buf, pos, end)
            except _NeedMore:
                break
            except _Bad:
                pos = self._skip_garbage(buf, pos, end)
                continue
            msg.ts_ns = stream.ts_at(pos - start)
            stream.consume(after - start)
            self._in_garbage = False
            return msg
        stream.consume(pos - start)
        return None

    def _skip_garbage(self, buf: bytes, pos: int, end: int) -> int:
        if not self._in_garbage:
            self.errors += 1
            self._in_garbage = True
        hit = _RESYNC.search(buf, pos, end)
        return end if hit is None else hit.start() + 1

    def _parse(self, buf: bytes, pos: int, end: int) -> tuple[NatsMessage, int]:
        nl = buf.find(b"\n", pos, min(end, pos + MAX_LINE))
        if nl < 0:
            if end - pos >= MAX_LINE:
                raise _Bad
            head = buf[pos : pos + 8].split(None, 1)[0].upper()
            if not any(v.startswith(head) for v in _VERB_BYTES):
                raise _Bad  # not even the start of a verb: do not wait for a line that never ends
            raise _NeedMore
        parts = buf[pos:nl].split(None, 1)  # verb, then the rest with its own blanks kept
        if not parts:
            raise _Bad
        after = nl + 1
        verb = parts[0].decode("ascii", "replace").upper()
        rest = parts[1].strip() if len(parts) > 1 else b""
        if verb in ("PING", "PONG", "+OK"):
            if rest:
                raise _Bad
            return NatsMessage(0, verb, ""), after
        if verb in ("INFO", "CONNECT"):
            if not rest.startswith(b"{"):
                raise _Bad
            text = rest.decode("utf-8", "replace")
            verbose = verb == "CONNECT" and _connect_verbose(text)
            return NatsMessage(0, verb, text, verbose), after
        if verb == "-ERR":
            return NatsMessage(0, verb, rest.decode("utf-8", "replace")), after
        fields = rest.split()
        if verb == "SUB":
            if len(fields) == 2:
                return NatsMessage(0, verb, dumps({"subject": _s(fields[0]), "sid": _s(fields[1])})), after
            if len(fields) == 3:
                keys = ("subject", "queue group", "sid")
                return NatsMessage(0, verb, dumps({k: _s(v) for k, v in zip(keys, fields, strict=True)})), after
            raise _Bad
        if verb == "UNSUB":
            if len(fields) not in (1, 2):
                raise _Bad
            keys = ("sid", "max_msgs")
            return NatsMessage(0, verb, dumps({k: _s(v) for k, v in zip(keys, fields, strict=False)})), after
        return self._with_payload(verb, fields, buf, after, end)

    def _with_payload(
        self, verb: str, fields: list[bytes], buf: bytes, after: int, end: int
    ) -> tuple[NatsMessage, int]:
        names = _PAYLOAD_FIELDS.get((verb, len(fields)))
        if names is None:
            raise _Bad
        headers = verb in ("HPUB", "HMSG")
        total = _digits(fields[-1], MAX_PAYLOAD)
        hdr_len = _digits(fields[-2], total) if headers else 0
        if end - after < total + 2:
            raise _NeedMore
        if buf[after + total : after + total + 2] != b"\r\n":
            raise _Bad
        opts: dict[str, object] = {k: _s(v) for k, v in zip(names, fields, strict=False)}
        if headers:
            opts["headers"], status = _headers(buf[after : after + hdr_len])
            if status:
                opts["status"] = status
        payload = buf[after + hdr_len : after + min(total, hdr_len + self.body_cap)]
        opts["payload"] = payload.decode("utf-8", "replace")
        return NatsMessage(0, verb, dumps(opts)), after + total + 2


# (verb, number of fields) -> names of the leading fields (the sizes that follow are not rendered).
_PAYLOAD_FIELDS: dict[tuple[str, int], tuple[str, ...]] = {
    ("PUB", 2): ("subject",),
    ("PUB", 3): ("subject", "reply-to"),
    ("HPUB", 3): ("subject",),
    ("HPUB", 4): ("subject", "reply-to"),
    ("MSG", 3): ("subject", "sid"),
    ("MSG", 4): ("subject", "sid", "reply-to"),
    ("HMSG", 4): ("subject", "sid"),
    ("HMSG", 5): ("subject", "sid", "reply-to"),
}


def _s(raw: bytes) -> str:
    return raw.decode("utf-8", "replace")


def _connect_verbose(text: str) -> bool:
    try:
        opts = json.loads(text)
    except ValueError:
        return False
    return isinstance(opts, dict) and opts.get("verbose") is True
