"""HTTP/2 framing and HPACK for one direction of a connection: bytes -> frame events.

An :class:`H2Parser` lives in ``DataStream.state`` and turns the bytes one peer sent into calls on a
:class:`FrameSink` (the stitcher): complete, HPACK-decoded header blocks (HEADERS or PUSH_PROMISE plus
their CONTINUATIONs), DATA payload pieces, RST_STREAM, SETTINGS and GOAWAY. PING, WINDOW_UPDATE,
PRIORITY and unknown extension frames are checked and skipped.

Properties that matter for sniffed traffic:

* Bounded buffering. DATA payloads are handed on as they arrive (a 16 MiB frame is never buffered)
  and other frames larger than ``MAX_BUFFERED_FRAME`` are skipped piecewise, so one direction holds
  at most a frame header, one bounded frame and one bounded header block.
* HPACK through the ``hpack`` library, one decoder per direction, so the dynamic table follows the
  connection. When the table's history is unknown (the connection was first seen mid-stream, or
  bytes were lost, or a block was not valid HPACK) decoding continues field by field with hpack's
  integer, Huffman and table code: the dynamic table always holds the newest insertions, so index
  62+k is the k-th newest insertion ever made, and the insertions seen since are known exactly.
  A field naming an older entry is left out and counted (the sink gets the fields that did decode
  and a reason), never filled in; insertions keep being applied, so later fields stay exact.
* Never raising on bad input. Structural violations (a fixed-size frame of the wrong size, a
  stream id where none is allowed, padding longer than the payload, a missing CONTINUATION) count a
  parse error; a frame whose length cannot be trusted starts a resynchronisation: the parser scans
  for a plausible frame header followed by another plausible one, and forgets the HPACK table.
"""

from __future__ import annotations

from typing import Protocol

from hpack import Decoder, HPACKError
from hpack.hpack import decode_integer
from hpack.huffman_table import decode_huffman
from hpack.table import HeaderTable

from cluster.pem.data_stream import DataStream
from cluster.pem.protocols.http2.infer import PREFACE, settings_value_ok
from cluster.pem.protocols.stream_parser import StreamParser

DATA, HEADERS, PRIORITY, RST_STREAM, SETTINGS, PUSH_PROMISE, PING, GOAWAY, WINDOW_UPDATE, CONTINUATION = range(10)
FLAG_END_STREAM = 0x01
FLAG_ACK = 0x01
FLAG_END_HEADERS = 0x04
FLAG_PADDED = 0x08
FLAG_PRIORITY = 0x20
FRAME_HEADER = 9
SETTINGS_HEADER_TABLE_SIZE = 1
SETTINGS_MAX_FRAME_SIZE = 5

DEFAULT_MAX_FRAME = 16384  # SETTINGS_MAX_FRAME_SIZE's initial value
MID_STREAM_MAX_FRAME = 0xFFFFFF  # the peer's setting is unknown: any 24-bit length may be legal
MAX_BUFFERED_FRAME = 256 * 1024  # a larger non-DATA frame is skipped piecewise, not buffered
MAX_HEADER_BLOCK = 256 * 1024  # a larger header block is reported undecodable
MAX_HEADER_LIST = 256 * 1024  # decoded size bound (indexed fields can inflate a small block)
DEFAULT_TABLE_SIZE = 4096  # SETTINGS_HEADER_TABLE_SIZE's initial value
MID_STREAM_TABLE_SIZE = 65536  # room kept for entries seen when the real size is unknown
MAX_TABLE_SIZE = 1 << 20  # the largest dynamic table a peer may make us keep
RESYNC_WINDOW = 64 * 1024  # bytes scanned per call while looking for a frame boundary

# Name of a table entry inserted before the capture began (a NUL cannot be in a header name).
UNKNOWN_NAME = b"\0unknown"

# Payload length each fixed-size frame type must have.
_FIXED_LENGTH = {PRIORITY: 5, RST_STREAM: 4, PING: 8, WINDOW_UPDATE: 4}
# Types that must (True) or must not (False) be on stream 0; WINDOW_UPDATE may be either.
_ON_STREAM_ZERO = {
    DATA: False,
    HEADERS: False,
    PRIORITY: False,
    RST_STREAM: False,
    SETTINGS: True,
    PUSH_PROMISE: False,
    PING: True,
    GOAWAY: True,
    CONTINUATION: False,
}
# Flags each type defines (RFC 9113 §6); a resync candidate may set no others.
_FLAG_MASK = (0x09, 0x2D, 0, 0, 0x01, 0x0C, 0x01, 0, 0, 0x04)
# What a direction's bytes are doing between frames.
_FRAME, _DATA, _SKIP = 0, 1, 2
# Outcomes of a resync scan.
_FOUND, _WAIT, _MORE = 0, 1, 2


class FrameSink(Protocol):
    """What the parser reports to (the stitcher). ``client`` says which peer sent the frame.

    ``on_headers`` gets the decoded fields and ``error`` empty, or the fields that decoded and a
    reason for the ones that did not, or ``headers=None`` when nothing of the block is usable.
    ``on_data`` gets pieces of a DATA payload as they arrive (``buf[pos:pos+n]``); ``end`` is set on
    the last piece of a frame that carries END_STREAM.
    """

    def on_headers(
        self,
        client: bool,
        stream_id: int,
        ts_ns: int,
        headers: list[tuple[str, str]] | None,
        error: str,
        end_stream: bool,
        promised_id: int,
    ) -> None: ...

    def on_data(self, client: bool, stream_id: int, ts_ns: int, buf: bytes, pos: int, n: int, end: bool) -> None: ...

    def on_rst(self, client: bool, stream_id: int, error_code: int) -> None: ...

    def on_settings(self, client: bool, settings: list[tuple[int, int]]) -> None: ...

    def on_goaway(self, client: bool, last_stream_id: int, error_code: int) -> None: ...


class H2Parser(StreamParser):
    """Incremental frame parser for one direction; all state between calls lives here."""

    __slots__ = (
        "_block",
        "_block_end_stream",
        "_block_overflow",
        "_block_promised",
        "_block_size",
        "_block_stream",
        "_block_ts",
        "_data_end",
        "_data_left",
        "_data_stream",
        "_data_ts",
        "_mode",
        "_pad_left",
        "_resyncing",
        "_skip_left",
        "client",
        "decoder",
        "max_allowed_table",
        "max_frame",
        "mid_stream",
        "started",
        "table_known",
        "undecoded",
    )

    def __init__(self, client: bool) -> None:
        self.client = client  # True for the client-to-server direction (it opens with the preface)
        self.started = False
        self.mid_stream = False  # the direction was not seen from its first byte
        self.table_known = True  # False while the dynamic table's older entries are unknown
        self.max_frame = DEFAULT_MAX_FRAME
        self.max_allowed_table = MID_STREAM_TABLE_SIZE
        self.decoder = self._new_decoder(DEFAULT_TABLE_SIZE)
        self.errors = 0  # structural errors and resyncs
        self.undecoded = 0  # header blocks that could not be decoded
        self._mode = _FRAME
        self._resyncing = False
        self._data_left = 0  # DATA payload bytes still to come
        self._pad_left = 0  # padding after them
        self._data_stream = 0
        self._data_end = False
        self._data_ts = 0
        self._skip_left = 0
        self._block: list[bytes] | None = None  # fragments of a header block awaiting CONTINUATION
        self._block_stream = 0
        self._block_size = 0
        self._block_ts = 0
        self._block_end_stream = False
        self._block_promised = 0
        self._block_overflow = False

    def take_undecoded(self) -> int:
        n, self.undecoded = self.undecoded, 0
        return n

    def set_max_allowed_table(self, size: int) -> None:
        """The receiving peer's SETTINGS_HEADER_TABLE_SIZE: how large the encoder may make its table."""
        self.max_allowed_table = max(self.max_allowed_table, min(size, MAX_TABLE_SIZE))
        self.decoder.max_allowed_table_size = self.max_allowed_table

    # -- the parse loop -------------------------------------------------------------------------

    def parse(self, stream: DataStream, sink: FrameSink) -> None:
        """Consume every complete frame (and every available DATA byte) and report them to ``sink``."""
        if stream.needs_resync:
            stream.needs_resync = False
            self._lost_bytes(sink)
        buf, start = stream.view()
        end = len(buf)
        pos = start
        if not self.started:
            pos = self._start(buf, pos, end)
            if not self.started:
                stream.consume(pos - start)
                return
        while pos < end:
            mode = self._mode
            if mode == _DATA:
                pos = self._feed_data(buf, pos, end, sink)
                continue
            if mode == _SKIP:
                take = min(self._skip_left, end - pos)
                self._skip_left -= take
                pos += take
                if not self._skip_left:
                    self._mode = _FRAME
                continue
            if self._resyncing:
                pos, outcome = self._scan(buf, pos, end)
                if outcome == _WAIT:
                    break
                if outcome == _MORE:
                    continue
                self._resyncing = False
            if end - pos < FRAME_HEADER:
                break
            length = (buf[pos] << 16) | (buf[pos + 1] << 8) | buf[pos + 2]
            ftype = buf[pos + 3]
            flags = buf[pos + 4]
            sid = int.from_bytes(buf[pos + 5 : pos + 9], "big")
            if not self._plausible(length, ftype, flags, sid):
                self._desync(sink)
                continue
            if self._block is not None and ftype != CONTINUATION:
                self.errors += 1
                self._drop_block(sink, "HPACK: header block interrupted before its CONTINUATION frames ended")
            ts = stream.ts_at(pos - start)
            if ftype == DATA:
                if flags & FLAG_PADDED and end - pos <= FRAME_HEADER and length:
                    break  # the pad length byte has not arrived
                pos = self._data_header(buf, pos, length, flags, sid, ts, sink)
                continue
            if length > MAX_BUFFERED_FRAME:
                if ftype in (HEADERS, PUSH_PROMISE, CONTINUATION):
                    if ftype != CONTINUATION:
                        self._start_block(sid, ts, flags if ftype == HEADERS else flags & ~FLAG_END_STREAM, 0)
                    self._block_overflow = True  # reported when the block ends
                    if flags & FLAG_END_HEADERS:
                        self._finish_block(sink)
                self._mode = _SKIP
                self._skip_left = length
                pos += FRAME_HEADER
                continue
            if end - pos - FRAME_HEADER < length:
                break  # wait for the rest of the frame
            body = pos + FRAME_HEADER
            pos = body + length
            self._frame(buf, body, length, ftype, flags, sid, ts, sink)
        stream.consume(pos - start)

    # -- connection start ---------------------------------------------------------------------

    def _start(self, buf: bytes, pos: int, end: int) -> int:
        """Decide whether this direction starts at the connection's first byte."""
        if self.client:
            have = end - pos
            if have < len(PREFACE) and PREFACE.startswith(buf[pos:end]):
                return pos  # a split preface: wait for the rest
            self.started = True
            if buf.startswith(PREFACE, pos):
                return pos + len(PREFACE)
            self._go_mid_stream()
            return pos
        if end - pos < FRAME_HEADER:
            return pos
        self.started = True
        if not (buf[pos + 3] == SETTINGS and buf[pos + 4] & FLAG_ACK == 0 and buf[pos + 5 : pos + 9] == b"\0\0\0\0"):
            self._go_mid_stream()  # a server's first frame is its SETTINGS (RFC 9113 §3.4)
        return pos

    def _go_mid_stream(self) -> None:
        self.mid_stream = True
        self.max_frame = MID_STREAM_MAX_FRAME
        self._forget_table()

    def _forget_table(self) -> None:
        """Start over with an empty dynamic table whose older contents are unknown (see module doc)."""
        self.table_known = False
        self.decoder = self._new_decoder(max(self.decoder.header_table_size, MID_STREAM_TABLE_SIZE))

    def _new_decoder(self, table_size: int) -> Decoder:
        decoder = Decoder(max_header_list_size=MAX_HEADER_LIST)
        decoder.max_allowed_table_size = max(self.max_allowed_table, table_size)
        decoder.header_table_size = table_size
        return decoder

    # -- frames -------------------------------------------------------------------------------

    def _plausible(self, length: int, ftype: int, flags: int, sid: int) -> bool:
        """Could this header start a frame? False means the stream is out of step (or garbage)."""
        if sid >> 31 or length > self.max_frame:
            return False
        zero = _ON_STREAM_ZERO.get(ftype)
        if zero is not None and zero != (sid == 0):
            return False
        fixed = _FIXED_LENGTH.get(ftype)
        if fixed is not None and length != fixed:
            return False
        if ftype == SETTINGS:
            return length == 0 if flags & FLAG_ACK else length % 6 == 0
        if ftype == GOAWAY:
            return length >= 8
        if ftype == CONTINUATION:
            return self._block is not None and sid == self._block_stream
        return True

    def _frame(
        self, buf: bytes, body: int, length: int, ftype: int, flags: int, sid: int, ts: int, sink: FrameSink
    ) -> None:
        """Handle one whole non-DATA frame whose payload is ``buf[body:body+length]``."""
        if ftype in (HEADERS, PUSH_PROMISE):
            start, stop = self._unpad(buf, body, length, flags)
            if start < 0:
                self.errors += 1
                self._lost_block(sink, sid, ts, flags, "HTTP/2: padding longer than the frame")
                return
            promised = 0
            if ftype == HEADERS and flags & FLAG_PRIORITY:
                start += 5
            elif ftype == PUSH_PROMISE:
                promised = int.from_bytes(buf[start : start + 4], "big") & 0x7FFFFFFF
                start += 4
            if start > stop:
                self.errors += 1
                self._lost_block(sink, sid, ts, flags, "HTTP/2: header frame shorter than its fixed fields")
                return
            self._start_block(sid, ts, flags if ftype == HEADERS else flags & ~FLAG_END_STREAM, promised)
            self._add_fragment(buf[start:stop])
            if flags & FLAG_END_HEADERS:
                self._finish_block(sink)
        elif ftype == CONTINUATION:
            self._add_fragment(buf[body : body + length])
            if flags & FLAG_END_HEADERS:
                self._finish_block(sink)
        elif ftype == RST_STREAM:
            sink.on_rst(self.client, sid, int.from_bytes(buf[body : body + 4], "big"))
        elif ftype == SETTINGS:
            if not flags & FLAG_ACK:
                settings = []
                for p in range(body, body + length, 6):
                    ident = (buf[p] << 8) | buf[p + 1]
                    value = int.from_bytes(buf[p + 2 : p + 6], "big")
                    if settings_value_ok(ident, value):
                        settings.append((ident, value))
                    else:
                        self.errors += 1
                sink.on_settings(self.client, settings)
        elif ftype == GOAWAY:
            last = int.from_bytes(buf[body : body + 4], "big") & 0x7FFFFFFF
            sink.on_goaway(self.client, last, int.from_bytes(buf[body + 4 : body + 8], "big"))
        # PRIORITY, PING, WINDOW_UPDATE and unknown extension types carry nothing for the tables.

    @staticmethod
    def _unpad(buf: bytes, body: int, length: int, flags: int) -> tuple[int, int]:
        """(start, stop) of the payload inside padding; start is -1 if the padding does not fit."""
        if not flags & FLAG_PADDED:
            return body, body + length
        if length < 1 or buf[body] >= length:
            return -1, -1
        return body + 1, body + length - buf[body]

    def _data_header(self, buf: bytes, pos: int, length: int, flags: int, sid: int, ts: int, sink: FrameSink) -> int:
        """Start a DATA frame at ``pos``: its payload is then handed on piecewise by :meth:`_feed_data`."""
        pad = 0
        head = FRAME_HEADER
        if flags & FLAG_PADDED and length:
            pad = buf[pos + FRAME_HEADER]
            if pad >= length:
                self.errors += 1
                self._mode = _SKIP
                self._skip_left = length
                return pos + FRAME_HEADER
            head += 1
        self._data_stream = sid
        self._data_ts = ts
        self._data_end = bool(flags & FLAG_END_STREAM)
        self._data_left = length - (head - FRAME_HEADER) - pad
        self._pad_left = pad
        self._mode = _DATA
        return pos + head

    def _feed_data(self, buf: bytes, pos: int, end: int, sink: FrameSink) -> int:
        """Hand on what is here of the current DATA payload, then skip its padding."""
        take = min(self._data_left, end - pos)
        self._data_left -= take
        if self._data_left:
            sink.on_data(self.client, self._data_stream, self._data_ts, buf, pos, take, False)
            return pos + take
        pad = min(self._pad_left, end - pos - take)
        self._pad_left -= pad
        done = not self._pad_left
        if take or done:
            sink.on_data(self.client, self._data_stream, self._data_ts, buf, pos, take, done and self._data_end)
        if done:
            self._mode = _FRAME
        return pos + take + pad

    # -- header blocks ------------------------------------------------------------------------

    def _start_block(self, sid: int, ts: int, flags: int, promised: int) -> None:
        self._block = []
        self._block_stream = sid
        self._block_size = 0
        self._block_ts = ts
        self._block_end_stream = bool(flags & FLAG_END_STREAM)
        self._block_promised = promised
        self._block_overflow = False

    def _add_fragment(self, fragment: bytes) -> None:
        assert self._block is not None
        self._block_size += len(fragment)
        if self._block_size > MAX_HEADER_BLOCK:
            self._block_overflow = True
            self._block.clear()
        elif not self._block_overflow:
            self._block.append(fragment)

    def _finish_block(self, sink: FrameSink) -> None:
        parts = self._block
        assert parts is not None
        self._block = None
        if self._block_overflow:
            self._report_undecoded(sink, f"HPACK: header block larger than {MAX_HEADER_BLOCK} bytes not decoded")
            return
        block = parts[0] if len(parts) == 1 else b"".join(parts)
        if self.table_known:
            try:
                raw = self.decoder.decode(block, raw=True)
            except Exception as e:  # hpack's errors, or anything it raises on bytes it never expected
                self._report_undecoded(sink, f"HPACK: header block not decodable: {type(e).__name__}: {e}")
                return
            headers = [(n.decode("utf-8", "replace"), v.decode("utf-8", "replace")) for n, v in raw]
            error = ""
        else:
            decoded = self._decode_partly(block)
            if decoded is None:
                self._report_undecoded(sink, "HPACK: header block is not valid HPACK")
                return
            headers, error = decoded
            if error:
                self.undecoded += 1
        sink.on_headers(
            self.client,
            self._block_stream,
            self._block_ts,
            headers,
            error,
            self._block_end_stream,
            self._block_promised,
        )

    def _decode_partly(self, block: bytes) -> tuple[list[tuple[str, str]], str] | None:
        """Decode a block while the table's older entries are unknown: every field that is known
        is decoded, every insertion is applied (so the table stays aligned), and a field naming an
        entry from before the capture is counted and left out. None if the block is not HPACK.

        The dynamic table always holds the newest insertions, so index 62+k is the k-th newest
        insertion ever made. We know the ones made since the capture began; an insertion whose name
        is such an unknown entry is kept as a placeholder (:data:`UNKNOWN_NAME`) so the ones after it
        keep their indices. Sizes only decide how far back the table reaches, never what an index
        means, so a placeholder's unknown size cannot shift a decoded field.
        """
        table = self.decoder.header_table
        view = memoryview(block)
        end = len(block)
        pos = 0
        headers: list[tuple[str, str]] = []
        unknown = 0
        inflated = 0
        try:
            while pos < end:
                b = block[pos]
                if b & 0x80:  # indexed field
                    index, used = decode_integer(view[pos:], 7)
                    pos += used
                    if index == 0:
                        return None
                    name, value = _lookup(table, index)
                    if name is None:
                        unknown += 1
                        continue
                elif b & 0xC0 == 0x40:  # literal with incremental indexing: inserts into the table
                    name, value, pos = _literal(table, view, pos, 6)
                    table.add(UNKNOWN_NAME if name is None else name, value)
                    if name is None:
                        unknown += 1
                        continue
                elif b & 0xE0 == 0x20:  # dynamic table size update
                    size, used = decode_integer(view[pos:], 5)
                    pos += used
                    if size > MAX_TABLE_SIZE:
                        return None
                    table.maxsize = size
                    if size == 0:  # the table is now empty for the encoder too: known from here on
                        self.table_known = True
                    continue
                else:  # literal without indexing / never indexed
                    name, value, pos = _literal(table, view, pos, 4)
                    if name is None:
                        unknown += 1
                        continue
                inflated += len(name) + len(value) + 32
                if inflated <= MAX_HEADER_LIST:
                    headers.append((name.decode("utf-8", "replace"), value.decode("utf-8", "replace")))
        except (HPACKError, IndexError, ValueError):
            return None
        if unknown:
            why = "connection seen mid-stream" if self.mid_stream else "header state lost earlier"
            return headers, (
                f"HPACK: {unknown} header field(s) not decoded: they name dynamic table entries sent before "
                f"the capture ({why}, dynamic table unknown)"
            )
        if inflated > MAX_HEADER_LIST:
            return headers, f"HPACK: header list larger than {MAX_HEADER_LIST} bytes cut short"
        return headers, ""

    def _report_undecoded(self, sink: FrameSink, reason: str) -> None:
        """Tell the sink the block's headers are unknown and forget the (now unreliable) table."""
        self.undecoded += 1
        self._forget_table()
        sink.on_headers(
            self.client, self._block_stream, self._block_ts, None, reason, self._block_end_stream, self._block_promised
        )

    def _drop_block(self, sink: FrameSink, reason: str) -> None:
        """The open header block cannot be completed: report it undecodable."""
        self._block = None
        self._report_undecoded(sink, reason)

    def _lost_block(self, sink: FrameSink, sid: int, ts: int, flags: int, reason: str) -> None:
        self._start_block(sid, ts, flags, 0)
        self._drop_block(sink, reason)

    # -- losing step ----------------------------------------------------------------------------

    def _desync(self, sink: FrameSink) -> None:
        """The next bytes are not a frame header: count it, drop half-parsed state, scan for one."""
        self.errors += 1
        self._resyncing = True
        if self._block is not None:
            self._drop_block(sink, "HPACK: header block cut off by a framing error")
        self._forget_table()

    def _lost_bytes(self, sink: FrameSink) -> None:
        """Bytes were dropped (buffer overflow): whatever was in flight is gone, and the table too."""
        self._mode = _FRAME
        self._data_left = self._pad_left = self._skip_left = 0
        if not self.started:
            self.started = True
            self._go_mid_stream()
        self._desync(sink)

    def _scan(self, buf: bytes, pos: int, end: int) -> tuple[int, int]:
        """Look for the next plausible frame boundary: (position, _FOUND | _WAIT | _MORE).

        A candidate must pass stricter checks than a frame in step (flags within the type's
        defined flags, no empty SETTINGS or HEADERS: runs of zeros in a binary payload must not
        pass) and is verified by a plausible header right after its payload. The first verified
        candidate wins; failing that, the first one whose successor has not arrived yet is waited
        for (_WAIT keeps the bytes from it on). _MORE means this window held none.
        """
        last = end - FRAME_HEADER
        limit = min(last, pos + RESYNC_WINDOW)
        unverified = -1
        p = pos
        while p <= limit:
            ftype = buf[p + 3]
            if ftype <= WINDOW_UPDATE and self._candidate(buf, p, -1):
                nxt = p + FRAME_HEADER + ((buf[p] << 16) | (buf[p + 1] << 8) | buf[p + 2])
                if nxt + FRAME_HEADER <= end:
                    if self._candidate(buf, nxt, ftype):
                        return p, _FOUND
                elif unverified < 0 and nxt - p <= RESYNC_WINDOW:
                    unverified = p
            p += 1
        if unverified >= 0:
            return unverified, _WAIT
        if p > last:
            return p, _WAIT  # fewer than a frame header's bytes left
        return p, _MORE

    def _candidate(self, buf: bytes, p: int, prev: int) -> bool:
        """Is the header at ``p`` a believable frame start after a loss of step? ``prev`` is the type
        of the candidate it would follow (-1 for none)."""
        length = (buf[p] << 16) | (buf[p + 1] << 8) | buf[p + 2]
        ftype = buf[p + 3]
        flags = buf[p + 4]
        sid = int.from_bytes(buf[p + 5 : p + 9], "big")
        if ftype > CONTINUATION or flags & ~_FLAG_MASK[ftype] or sid >> 31 or length > self.max_frame:
            return False
        if ftype == CONTINUATION:
            return prev in (HEADERS, PUSH_PROMISE) and sid != 0
        if _ON_STREAM_ZERO.get(ftype, sid == 0) != (sid == 0):
            return False
        fixed = _FIXED_LENGTH.get(ftype)
        if fixed is not None:
            return length == fixed
        if ftype == SETTINGS:
            return length == 0 if flags & FLAG_ACK else length > 0 and length % 6 == 0
        if ftype == GOAWAY:
            return length >= 8
        return length > 0 or (ftype == DATA and flags & FLAG_END_STREAM != 0)


def _lookup(table: HeaderTable, index: int) -> tuple[bytes | None, bytes]:
    """(name, value) of a table entry; name None when the entry predates the capture."""
    try:
        name, value = table.get_by_index(index)
    except HPACKError:
        return None, b""
    if name is UNKNOWN_NAME:
        return None, value
    return name, value


def _literal(table: HeaderTable, view: memoryview, pos: int, prefix_bits: int) -> tuple[bytes | None, bytes, int]:
    """A literal field at ``pos``: (name or None if it names an unknown entry, value, new position)."""
    index, used = decode_integer(view[pos:], prefix_bits)
    pos += used
    if index:
        name, _ = _lookup(table, index)
    else:
        name, pos = _string(view, pos)
    value, pos = _string(view, pos)
    return name, value, pos


def _string(view: memoryview, pos: int) -> tuple[bytes, int]:
    """An HPACK string literal (RFC 7541 §5.2), Huffman-decoded by hpack when flagged."""
    huffman = view[pos] & 0x80
    length, used = decode_integer(view[pos:], 7)
    pos += used
    if pos + length > len(view):
        raise ValueError("HPACK string literal runs past the header block")
    raw = view[pos : pos + length].tobytes()
    return (decode_huffman(raw) if huffman else raw), pos + length
