"""DNS: Pixie's header/query/answer JSON, txid stitching (out of order, lost, expired), the UDP
datagram framing and per-peer connections of the connection tracker, inference, and robustness.

Messages are built with dnspython's message API (the same wire format any resolver sends); the
datagram events are what the socket tracer emits for sendto/recvmsg/sendmmsg."""

from __future__ import annotations

import os
import socket

import dns.flags
import dns.message
import dns.rcode
import dns.rrset
from hypothesis import given, settings
from hypothesis import strategies as st

from cluster.pem.data_stream import DataStream
from cluster.pem.protocols.dns import DnsReader, DnsStitcher, decode, infer
from cluster.pem.protocols.dns.stitch import REQUEST_TIMEOUT_NS
from cluster.pem.protocols.http.infer import MessageKind
from cluster.schemas import ROLE_CLIENT, ROLE_SERVER
from tests.util import as_rows


def query(name: str, rdtype: str = "A", txid: int = 1, edns: bool = False) -> dns.message.QueryMessage:
    q = dns.message.make_query(name, rdtype, use_edns=0 if edns else False)
    q.id = txid
    return q


def answer(q: dns.message.Message, *records: tuple[str, str, str], rcode: int = 0) -> bytes:
    r = dns.message.make_response(q)
    r.flags |= dns.flags.RA
    r.set_rcode(rcode)
    for name, rdtype, text in records:
        r.answer.append(dns.rrset.from_text(name, 300, "IN", rdtype, text))
    return r.to_wire()


def framed(wire: bytes) -> bytes:
    return len(wire).to_bytes(2, "big") + wire


def run(events: list[tuple[int, str, bytes]], role: int = ROLE_CLIENT, st_: DnsStitcher | None = None):
    """Feed (ts, 'req'|'resp', framed bytes) in order, processing after each like the tracker does."""
    st_ = st_ or DnsStitcher()
    req, resp = DataStream(), DataStream()
    egress, ingress = (req, resp) if role == ROLE_CLIENT else (resp, req)
    out = []
    for ts, side, data in events:
        (req if side == "req" else resp).append(ts, data)
        out += st_.process(role, egress, ingress)
    return out, st_


def test_pixie_header_and_bodies():
    q = query("pixie.ai", txid=0)
    wire = q.to_wire()
    frame = decode(wire, 1, True)
    assert frame is not None and frame.txid == 0
    assert frame.header == (
        '{"txid":0,"qr":0,"opcode":0,"aa":0,"tc":0,"rd":1,"ra":0,"ad":0,"cd":0,"rcode":0,'
        '"num_queries":1,"num_answers":0,"num_auth":0,"num_addl":0}'
    )  # Pixie's stitcher_test, flags 0x0100
    assert frame.body == '{"queries":[{"name":"pixie.ai","type":"A"}]}'
    resp = decode(answer(q, ("pixie.ai.", "A", "1.2.3.4")), 2, False)
    assert resp is not None
    assert resp.header == (
        '{"txid":0,"qr":1,"opcode":0,"aa":0,"tc":0,"rd":1,"ra":1,"ad":0,"cd":0,"rcode":0,'
        '"num_queries":1,"num_answers":1,"num_auth":0,"num_addl":0}'
    )  # flags 0x8180
    assert resp.body == '{"answers":[{"name":"pixie.ai","type":"A","addr":"1.2.3.4"}]}'


def test_answer_types_and_edns_counts():
    q = query("www.example.com", "AAAA", txid=7, edns=True)
    wire = answer(
        q, ("www.example.com.", "CNAME", "edge.example.net."), ("edge.example.net.", "AAAA", "2001:db8:0:0::1")
    )
    frame = decode(wire, 5, False)
    assert frame is not None
    assert frame.body == (
        '{"answers":[{"name":"www.example.com","type":"CNAME","cname":"edge.example.net"},'
        '{"name":"edge.example.net","type":"AAAA","addr":"2001:db8::1"}]}'
    )
    assert '"num_addl":1}' in frame.header  # the OPT record counts, as on the wire
    mx = decode(answer(query("example.com", "MX"), ("example.com.", "MX", "10 mail.example.com.")), 1, False)
    assert (
        mx is not None and mx.body == '{"answers":[{"name":"example.com","type":"MX","data":"10 mail.example.com."}]}'
    )
    nx = decode(answer(query("nope.example.com"), rcode=dns.rcode.NXDOMAIN), 1, False)
    assert nx is not None and '"rcode":3,' in nx.header and nx.body == '{"answers":[]}'


def test_stitch_by_txid_out_of_order():
    qa, qaaaa = query("svc.test", "A", txid=0x4A3C), query("svc.test", "AAAA", txid=0x6800)
    ra, raaaa = answer(qa, ("svc.test.", "A", "192.0.2.10")), answer(qaaaa, ("svc.test.", "AAAA", "2001:db8::10"))
    recs, st_ = run([
        (10, "req", framed(qa.to_wire())), (11, "req", framed(qaaaa.to_wire())),
        (30, "resp", framed(raaaa)), (35, "resp", framed(ra)),
    ])  # fmt: skip
    got = [(r["req_body"], r["resp_body"], r["latency"], r["time_"]) for r in recs]
    assert got == [
        ('{"queries":[{"name":"svc.test","type":"AAAA"}]}',
         '{"answers":[{"name":"svc.test","type":"AAAA","addr":"2001:db8::10"}]}', 19, 30),
        ('{"queries":[{"name":"svc.test","type":"A"}]}',
         '{"answers":[{"name":"svc.test","type":"A","addr":"192.0.2.10"}]}', 25, 35),
    ]  # fmt: skip
    assert st_.parse_errors == 0 and st_.unmatched_responses == 0 and st_.records == 2


def test_server_role_and_unmatched_and_later_request():
    q1 = query("a.test", txid=1)
    events = [(5, "resp", framed(answer(q1))), (6, "req", framed(q1.to_wire())), (7, "resp", framed(answer(q1)))]
    recs, st_ = run(events, role=ROLE_SERVER)
    assert st_.unmatched_responses == 1  # a response cannot answer a later request
    assert len(recs) == 1 and recs[0]["latency"] == 1 and recs[0]["time_"] == 7


def test_unanswered_requests_expire_and_are_bounded():
    events = [(i, "req", framed(query("x.test", txid=i).to_wire())) for i in range(10)]
    _, st_ = run(events, st_=DnsStitcher(max_pending=4))
    assert st_.dropped_requests == 6
    late = (REQUEST_TIMEOUT_NS + 100, "req", framed(query("y.test", txid=99).to_wire()))
    _, st_ = run([*events, late], st_=DnsStitcher(max_pending=4))
    assert st_.dropped_requests == 10  # the four left were older than the timeout


def test_every_split_point_gives_the_same_records():
    q = query("split.test", txid=5)
    req, resp = framed(q.to_wire()), framed(answer(q, ("split.test.", "A", "10.0.0.1")))
    whole, _ = run([(1, "req", req), (2, "resp", resp)])
    for cut in range(1, len(resp)):
        recs, st_ = run([(1, "req", req[:cut] if cut < len(req) else req), (1, "req", req[cut:]),
                         (2, "resp", resp[:cut]), (2, "resp", resp[cut:])])  # fmt: skip
        assert recs == whole and st_.parse_errors == 0, cut


def test_malformed_messages_are_counted_never_raised():
    q = query("ok.test", txid=3)
    looping = b"\x00\x03\x00\x00\x00\x01\x00\x00\x00\x00\x00\x00\xc0\x0c\x00\x01\x00\x01"  # a pointer to itself
    recs, st_ = run([
        (1, "req", framed(b"\x00\x01\x01\x00\x00\x01" + b"\x00" * 6)),  # one question announced, none there
        (2, "req", framed(looping)),
        (3, "req", b"\x00\x05abcde"),  # shorter than a header: framing lost, buffer dropped
        (4, "req", framed(q.to_wire())),
        (5, "resp", framed(answer(q))),
    ])  # fmt: skip
    assert len(recs) == 1 and st_.parse_errors == 3 and st_.internal_errors == 0


def test_reader_counts_lost_bytes():
    stream = DataStream()
    reader = DnsReader(True)
    stream.append(1, framed(query("a.test").to_wire()))
    stream.clear()
    assert reader.next_frame(stream) is None and reader.take_errors() == 1


def test_infer_udp_tcp_and_not_dns():
    q = query("svc.test", txid=0x1234, edns=True)
    assert infer(q.to_wire()) is MessageKind.REQUEST
    assert infer(answer(q, ("svc.test.", "A", "1.1.1.1"))) is MessageKind.RESPONSE
    assert infer(memoryview(framed(q.to_wire()))) is MessageKind.REQUEST  # DNS over TCP's first read
    not_dns = (
        b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", b"*1\r\n$4\r\nPING\r\n", b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03",
        q.to_wire()[:-3], q.to_wire() + b"junk", b"", b"\x00" * 12, os.urandom(64),
    )  # fmt: skip
    for data in not_dns:
        assert infer(data) is None, data


# ---- through the connection tracker: UDP datagrams, per-peer connections, TCP ----


def tracker():
    from cluster.pem.conn_tracker import ConnTracker
    from cluster.pem.process_info import ProcessCache
    from cluster.pem.sources.socket_events import SockAddr
    from cluster.store.table_store import TableStore

    local = SockAddr(socket.AF_INET, "127.0.0.1", 53)
    return ConnTracker(TableStore(), ProcessCache(asid=1), addr_lookup=lambda pid, fd: (local, None))


def dgram(ts: int, fd: int, out: bool, data: bytes, peer_port: int | None, pos: int = 0, size: int | None = None):
    from cluster.pem.sources.socket_events import DataEvent, Direction, SockAddr

    peer = SockAddr(socket.AF_INET, "127.0.0.1", peer_port) if peer_port else None
    pid = os.getpid()
    direction = Direction.EGRESS if out else Direction.INGRESS
    return DataEvent(ts, pid, pid, fd, 0xABC, direction, size or len(data), pos, socket.AF_INET,
                     socket.SOCK_DGRAM, 47, peer, data)  # fmt: skip


def test_udp_server_socket_gets_a_connection_per_peer():
    t = tracker()
    qs = [query(f"peer{i}.test", txid=7) for i in range(3)]  # the same txid from three clients
    evs = []
    for i, q in enumerate(qs):
        evs.append(dgram(10 + i, 5, False, q.to_wire(), 40000 + i))
    for i, q in reversed(list(enumerate(qs))):
        evs.append(dgram(20 + i, 5, True, answer(q, (f"peer{i}.test.", "A", f"10.0.0.{i}")), 40000 + i))
    t.handle(evs)
    t.flush()
    rows = sorted(as_rows(t.store.scan("dns_events", None, None)), key=lambda r: r["remote_port"])
    assert [(r["remote_port"], r["local_port"], r["trace_role"]) for r in rows] == [
        (40000, 53, 2), (40001, 53, 2), (40002, 53, 2)]  # fmt: skip
    assert [r["resp_body"].split('"addr":')[1] for r in rows] == ['"10.0.0.0"}]}', '"10.0.0.1"}]}', '"10.0.0.2"}]}']
    assert t.stats.parse_errors == 0 and t.stats.unmatched_responses == 0
    assert {c.protocol for c in t._conns.values()} == {6}
    from cluster.pem.sources.socket_events import ConnEvent, ConnKind

    t.handle([ConnEvent(ConnKind.CLOSE, 99, os.getpid(), 5, 0, None, None)])
    assert t.active_connections() == 0  # closing the socket closes every peer's connection


def test_udp_client_sendmmsg_and_lost_chunk():
    t = tracker()
    qa, qaaaa = query("c.test", "A", txid=1), query("c.test", "AAAA", txid=2)
    ra = answer(qa, ("c.test.", "A", "192.0.2.1"))
    t.handle([
        dgram(1, 3, True, qa.to_wire(), None), dgram(2, 3, True, qaaaa.to_wire(), None),  # sendmmsg, connected
        dgram(3, 3, False, ra[:20], 53, size=len(ra)),  # a datagram whose second part was not captured
        dgram(4, 3, False, answer(qaaaa), 53),
        dgram(5, 3, False, ra, 53),
    ])  # fmt: skip
    t.flush()
    rows = as_rows(t.store.scan("dns_events", None, None))
    assert sorted((r["req_body"].count("AAAA"), r["trace_role"], r["latency"]) for r in rows) == [(0, 1, 4), (1, 1, 2)]
    assert t.stats.parse_errors == 1  # the incomplete datagram, dropped when the next began


def test_tcp_length_read_byte_by_byte_is_inferred():
    from cluster.pem.sources.socket_events import DataEvent, Direction

    t = tracker()
    q = query("tcp.test", txid=9)
    wire = q.to_wire()
    pid = os.getpid()

    def ev(ts, out, data):
        d = Direction.EGRESS if out else Direction.INGRESS
        return DataEvent(ts, pid, pid, 8, 0xDEF, d, len(data), 0, socket.AF_INET, socket.SOCK_STREAM, 0, None, data)

    length = len(wire).to_bytes(2, "big")
    t.handle([ev(1, False, length[:1]), ev(2, False, length[1:]), ev(3, False, wire),  # dnsmasq's reads
              ev(4, True, framed(answer(q, ("tcp.test.", "A", "10.1.1.1"))))])  # fmt: skip
    t.flush()
    [row] = as_rows(t.store.scan("dns_events", None, None))
    assert row["trace_role"] == 2 and row["req_body"] == '{"queries":[{"name":"tcp.test","type":"A"}]}'


# ---- bad input: arbitrary bytes never raise, memory stays bounded ----


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.booleans(), st.binary(max_size=80)), max_size=16))
def test_noise_never_raises(chunks):
    q = query("fuzz.test", txid=77)
    events = [(i, "req" if is_req else "resp", data) for i, (is_req, data) in enumerate(chunks)]
    events.insert(len(events) // 2, (100, "req", framed(q.to_wire())))
    recs, st_ = run(events)
    st_.on_close(ROLE_CLIENT, DataStream(), DataStream())
    assert st_.internal_errors == 0
    assert all(isinstance(r["resp_body"], str) for r in recs)


@settings(max_examples=200, deadline=None)
@given(st.binary(min_size=12, max_size=300), st.integers(0, 299))
def test_mutated_messages_never_raise(noise, at):
    q = query("mutate.test", "MX", txid=5, edns=True)
    wire = bytearray(answer(q, ("mutate.test.", "MX", "5 mx.mutate.test."), ("mutate.test.", "A", "1.2.3.4")))
    for i, b in enumerate(noise[: len(wire)]):
        if i % 3 == at % 3:
            wire[(at + i) % len(wire)] = b
    for cut in (len(wire), at % len(wire)):
        data = bytes(wire[:cut])
        infer(data)
        decode(data, 1, False)
        decode(data, 1, True)
    _, st_ = run([(1, "req", framed(q.to_wire())), (2, "resp", framed(bytes(wire)))])
    assert st_.internal_errors == 0


def test_memory_stays_bounded_under_garbage():
    st_ = DnsStitcher(max_pending=64)
    req, resp = DataStream(max_bytes=64 * 1024), DataStream(max_bytes=64 * 1024)
    rnd = os.urandom(1 << 20)
    for i in range(0, len(rnd), 4096):
        req.append(i, b"\xff\xff" + rnd[i : i + 4094])  # announces 64 KiB messages that never complete
        resp.append(i, rnd[i : i + 4096])
        st_.process(ROLE_CLIENT, req, resp)
        assert len(req) <= req.max_bytes and len(resp) <= resp.max_bytes
    for i in range(500):
        req.append(i, framed(query("q.test", txid=i).to_wire()))
        st_.process(ROLE_CLIENT, req, resp)
    assert len(req.frames) <= 64 and st_.internal_errors == 0


@settings(max_examples=300, deadline=None)
@given(st.lists(st.binary(min_size=1, max_size=20), min_size=0, max_size=6))
def test_names_render_as_dnspython_renders_them(labels):
    import dns.name

    from cluster.pem.protocols.dns.frames import read_name

    name = dns.name.Name([*labels, b""])
    wire = b"\x00" * 12 + name.to_wire()
    assert read_name(wire, 12) == (name.to_text(omit_final_dot=True), len(wire))


def test_compression_pointers_must_point_backwards():
    import dns.exception
    import pytest

    from cluster.pem.protocols.dns.frames import read_name

    wire = b"\x00" * 12 + b"\x03foo\x00" + b"\x03bar\xc0\x0c"
    assert read_name(wire, 17) == ("bar.foo", len(wire))
    for bad in (b"\x00" * 12 + b"\xc0\x0c", b"\x00" * 12 + b"\x01a\xc0\x0c", b"\x00" * 12 + b"\xc0\x20",
                b"\x00" * 12 + b"\x40abc", b"\x00" * 12 + b"\x05ab"):  # fmt: skip
        with pytest.raises(dns.exception.FormError):
            read_name(bad, 12)
