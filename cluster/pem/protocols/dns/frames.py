"""DNS framing and decoding: length-prefixed messages of one direction -> :class:`DnsFrame` objects
carrying Pixie's JSON renderings.

Framing: DNS over TCP puts a 2-byte big-endian length before each message; the connection tracker
frames UDP datagrams the same way, so one reader serves both transports.

Decoding: the header, names and the A/AAAA/CNAME records Pixie renders are read here directly
(labels, compression pointers that must point backwards, names of at most 255 bytes); any other record
type is decoded by dnspython (``dns.rdata.from_wire``), and a name holding bytes that need escaping is
rendered by dnspython's ``Name.to_text`` so the text is dnspython's. Reading names with dnspython's
wire parser cost 5-8x more (tests/bench/bench_protocols_dns_nats.py), because it reads byte by byte.

Renderings (Pixie's dns stitcher):

* header: ``{"txid","qr","opcode","aa","tc","rd","ra","ad","cd","rcode","num_queries","num_answers",
  "num_auth","num_addl"}``, the counts as they are on the wire (an EDNS OPT record counts in num_addl);
* request body: ``{"queries":[{"name","type"}]}``, names without the final dot;
* response body: ``{"answers":[...]}`` from the answer section: ``{"name","type":"A"|"AAAA","addr"}``
  or ``{"name","type":"CNAME","cname"}`` as in Pixie. Pixie names only A and AAAA query types and drops
  other answer types; here any other type keeps its mnemonic (``MX``, ``TYPE65280``...) and its answers
  render as ``{"name","type","data"}`` with the record in presentation format.

A message that does not decode is counted and skipped; the reader never raises on bad input.
"""

from __future__ import annotations

import json
import socket
import struct
from dataclasses import dataclass

import dns.exception
import dns.name
import dns.rdata
import dns.rdataclass
import dns.rdatatype

from cluster.pem.data_stream import DataStream
from cluster.pem.protocols.stream_parser import StreamParser

HEADER_LEN = 12
TYPE_A = 1
TYPE_CNAME = 5
TYPE_AAAA = 28
MAX_LABELS = 128  # a 255-byte name has at most 127 labels; pointers count too
_HEADER = struct.Struct("!HHHHHH")
_RR = struct.Struct("!HHIH")  # type, class, ttl, rdata length
# Bytes dnspython prints as they are in a name (it escapes the others as \\X or \\DDD).
_PLAIN_DOT = bytes(c for c in range(0x21, 0x7F) if c not in b'"();\\@$')  # and the dots between labels
_TYPE_NAMES: dict[int, str] = {}
_encode = json.encoder.encode_basestring  # JSON string escaping, non-ASCII kept as UTF-8
# What a hostile or truncated message can make dnspython raise while decoding it.
DECODE_ERRORS = (dns.exception.DNSException, ValueError, struct.error, IndexError, KeyError, UnicodeError)


@dataclass(slots=True)
class DnsFrame:
    ts_ns: int
    txid: int
    header: str  # Pixie's header JSON
    body: str  # {"queries": ...} for a request stream, {"answers": ...} for a response stream


def header_json(wire: bytes) -> tuple[int, str]:
    """(txid, Pixie's header JSON) of a message at least HEADER_LEN bytes long."""
    txid, flags, qd, an, ns, ar = _HEADER.unpack_from(wire)
    return txid, (
        f'{{"txid":{txid},"qr":{flags >> 15},"opcode":{(flags >> 11) & 0xF},"aa":{(flags >> 10) & 1},'
        f'"tc":{(flags >> 9) & 1},"rd":{(flags >> 8) & 1},"ra":{(flags >> 7) & 1},"ad":{(flags >> 5) & 1},'
        f'"cd":{(flags >> 4) & 1},"rcode":{flags & 0xF},"num_queries":{qd},"num_answers":{an},'
        f'"num_auth":{ns},"num_addl":{ar}}}'
    )


def read_name(wire: bytes, pos: int) -> tuple[str, int]:
    """The name at ``pos`` as text without the final dot, and the position after it.

    Raises FormError on a truncated name, a forward or looping pointer, an unknown label type or a
    name longer than 255 bytes.
    """
    labels: list[bytes] = []
    after = -1  # where the name ends in the message: after its first pointer, if any
    size = 0
    n = len(wire)
    for _ in range(MAX_LABELS):
        if pos >= n:
            raise dns.exception.FormError("truncated name")
        length = wire[pos]
        if length == 0:
            if after < 0:
                after = pos + 1
            break
        if length >= 0xC0:
            if pos + 1 >= n:
                raise dns.exception.FormError("truncated pointer")
            target = ((length & 0x3F) << 8) | wire[pos + 1]
            if target >= pos:
                raise dns.exception.FormError("pointer does not point backwards")
            if after < 0:
                after = pos + 2
            pos = target
            continue
        if length > 63:
            raise dns.exception.FormError("unknown label type")
        label = wire[pos + 1 : pos + 1 + length]
        size += length + 1
        if len(label) != length or size > 255:
            raise dns.exception.FormError("bad label")
        labels.append(label)
        pos += 1 + length
    else:
        raise dns.exception.FormError("too many labels")
    if not labels:
        return ".", after
    text = b".".join(labels)
    if text.translate(None, _PLAIN_DOT) or text.count(b".") != len(labels) - 1:  # bytes dnspython escapes
        return dns.name.Name(labels).to_text(omit_final_dot=True), after
    return text.decode("ascii"), after


def render_queries(wire: bytes, pos: int, count: int) -> tuple[str, int]:
    out = []
    for _ in range(count):
        name, pos = read_name(wire, pos)
        if pos + 4 > len(wire):
            raise dns.exception.FormError("truncated question")
        rdtype = (wire[pos] << 8) | wire[pos + 1]
        pos += 4
        out.append(f'{{"name":{_encode(name)},"type":{_encode(type_name(rdtype))}}}')
    return '{"queries":[' + ",".join(out) + "]}", pos


def render_answers(wire: bytes, pos: int, count: int) -> tuple[str, int]:
    out = []
    for _ in range(count):
        name, pos = read_name(wire, pos)
        if pos + 10 > len(wire):
            raise dns.exception.FormError("truncated record")
        rdtype, rdclass, _ttl, rdlen = _RR.unpack_from(wire, pos)
        pos += 10
        end = pos + rdlen
        if end > len(wire):
            raise dns.exception.FormError("truncated rdata")
        if rdtype == TYPE_A and rdlen == 4:
            out.append(
                f'{{"name":{_encode(name)},"type":"A","addr":"{socket.inet_ntop(socket.AF_INET, wire[pos:end])}"}}'
            )
        elif rdtype == TYPE_AAAA and rdlen == 16:
            addr = socket.inet_ntop(socket.AF_INET6, wire[pos:end])
            out.append(f'{{"name":{_encode(name)},"type":"AAAA","addr":"{addr}"}}')
        elif rdtype == TYPE_CNAME:
            cname, cname_end = read_name(wire, pos)
            if cname_end != end:
                raise dns.exception.FormError("bad CNAME length")
            out.append(f'{{"name":{_encode(name)},"type":"CNAME","cname":{_encode(cname)}}}')
        else:
            rdata = dns.rdata.from_wire(dns.rdataclass.RdataClass.make(rdclass), rdtype, wire, pos, rdlen)
            data = _encode(rdata.to_text())
            out.append(f'{{"name":{_encode(name)},"type":{_encode(type_name(rdtype))},"data":{data}}}')
        pos = end
    return '{"answers":[' + ",".join(out) + "]}", pos


def skip_records(wire: bytes, pos: int, count: int) -> int:
    """The position after ``count`` resource records (authority, additional) that must be well formed."""
    for _ in range(count):
        pos = read_name(wire, pos)[1]
        if pos + 10 > len(wire):
            raise dns.exception.FormError("truncated record")
        pos += 10 + _RR.unpack_from(wire, pos)[3]
        if pos > len(wire):
            raise dns.exception.FormError("truncated rdata")
    return pos


def type_name(rdtype: int) -> str:
    name = _TYPE_NAMES.get(rdtype)
    if name is None:
        name = dns.rdatatype.to_text(rdtype)
        if len(_TYPE_NAMES) < 1024:
            _TYPE_NAMES[rdtype] = name
    return name


def decode(wire: bytes, ts_ns: int, is_request: bool) -> DnsFrame | None:
    """One DNS message -> a frame, or None when it is not a well-formed DNS message."""
    if len(wire) < HEADER_LEN:
        return None
    txid, header = header_json(wire)
    _, _, qd, an, _, _ = _HEADER.unpack_from(wire)
    try:
        if is_request:
            body = render_queries(wire, HEADER_LEN, qd)[0]
        else:  # Pixie's response body holds the answers only: the questions are skipped
            body = render_answers(wire, render_queries(wire, HEADER_LEN, qd)[1], an)[0]
    except DECODE_ERRORS:
        return None
    return DnsFrame(ts_ns, txid, header, body)


class DnsReader(StreamParser):
    """Reads length-prefixed DNS messages from one stream; kept in ``DataStream.state``."""

    __slots__ = ("is_request",)

    def __init__(self, is_request: bool) -> None:
        self.is_request = is_request
        self.errors = 0

    def next_frame(self, stream: DataStream) -> DnsFrame | None:
        """Decode and consume the next complete message; None when none is complete yet.

        A message that does not decode is skipped and counted. A length too short for a header means
        the framing is lost (TCP bytes after a gap): everything buffered is dropped, as the next
        datagram or segment most likely starts a message again.
        """
        if stream.needs_resync:  # bytes were lost before what is buffered now
            stream.needs_resync = False
            self.errors += 1
        while True:
            buf, start = stream.view()
            avail = len(buf) - start
            if avail < 2:
                return None
            size = (buf[start] << 8) | buf[start + 1]
            if size < HEADER_LEN:
                self.errors += 1
                stream.consume(avail)
                return None
            if avail < size + 2:
                return None
            ts = stream.ts_at(0)
            wire = buf[start + 2 : start + 2 + size]
            stream.consume(size + 2)
            frame = decode(wire, ts, self.is_request)
            if frame is not None:
                return frame
            self.errors += 1
