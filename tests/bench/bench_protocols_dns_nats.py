"""Parse cost of the DNS and NATS protocols on one core, with baselines measured in the same run.

* DNS: a resolver's exchange (A query with EDNS, answer with a CNAME and two A records), framed the
  way the connection tracker frames UDP datagrams, through DnsStitcher one exchange per call.
  Baseline: decoding the same two messages with ``dns.message.from_wire`` alone (dnspython's full
  decoder, no stitching, no rendering): the ratio says what decoding record by record saves.
* NATS: a request/reply as a client sees it (PUB with reply-to, then the MSG delivered to it, each a
  record), one exchange per call, and the same through a verbose connection (PUB waits for +OK).
* Common baseline: the Redis stitcher on a SET exchange of similar size (an existing protocol),
  so the figures can be compared across protocols and machines.

Prints µs per record, records/s and the ratios; best of 5 runs (the machine is shared).

    .venv/bin/python -m tests.bench.bench_protocols_dns_nats
"""

from __future__ import annotations

import time
from collections.abc import Callable

import dns.message
import dns.rrset

from cluster.pem.data_stream import DataStream
from cluster.pem.protocols.dns import DnsStitcher
from cluster.pem.protocols.nats import NatsStitcher
from cluster.pem.protocols.redis import RedisStitcher
from cluster.schemas import ROLE_CLIENT

N = 5000


def dns_exchange(i: int) -> tuple[bytes, bytes]:
    q = dns.message.make_query(f"svc-{i}.shop.svc.cluster.local", "A", use_edns=0)
    q.id = i & 0xFFFF
    r = dns.message.make_response(q)
    r.answer.append(dns.rrset.from_text(q.question[0].name, 30, "IN", "CNAME", "lb.shop.svc.cluster.local."))
    r.answer.append(dns.rrset.from_text("lb.shop.svc.cluster.local.", 30, "IN", "A", "10.0.0.1", "10.0.0.2"))
    return q.to_wire(), r.to_wire()


def framed(wire: bytes) -> bytes:
    return len(wire).to_bytes(2, "big") + wire


def nats_exchange(i: int) -> tuple[bytes, bytes]:
    payload = b'{"order":%d,"items":[{"sku":"A-100","qty":2}],"total":45.47}' % i
    inbox = b"_INBOX.Ub0aX71tfdXiZf0CUchjNc.%d" % i
    pub = b"PUB orders.created %s %d\r\n%s\r\n" % (inbox, len(payload), payload)
    msg = b"MSG orders.created 1 %s %d\r\n%s\r\n" % (inbox, len(payload), payload)
    return pub, msg


def redis_exchange(i: int) -> tuple[bytes, bytes]:
    value = b'{"order":%d,"items":[{"sku":"A-100","qty":2}],"total":45.47}' % i
    key = b"order:%d" % i
    return b"*3\r\n$3\r\nSET\r\n$%d\r\n%s\r\n$%d\r\n%s\r\n" % (len(key), key, len(value), value), b"+OK\r\n"


def stitch_run(new: Callable[[], object], pairs: list[tuple[bytes, bytes]], prologue: tuple[bytes, bytes] = (b"", b""),
               ack: bytes = b"") -> tuple[float, int]:  # fmt: skip
    """Seconds and records for feeding every (request, response) pair, one stitcher call per pair."""
    st = new()
    egress, ingress = DataStream(), DataStream()
    egress.append(1, prologue[0])
    ingress.append(1, prologue[1])
    records = len(st.process(ROLE_CLIENT, egress, ingress))  # type: ignore[attr-defined]
    ts = 1_700_000_000_000_000_000
    t0 = time.perf_counter()
    for req, resp in pairs:
        egress.append(ts, req)
        ingress.append(ts + 1000, ack + resp if ack else resp)
        ts += 2000
        records += len(st.process(ROLE_CLIENT, egress, ingress))  # type: ignore[attr-defined]
    return time.perf_counter() - t0, records


def from_wire_run(pairs: list[tuple[bytes, bytes]]) -> tuple[float, int]:
    t0 = time.perf_counter()
    for q, r in pairs:
        dns.message.from_wire(q)
        dns.message.from_wire(r)
    return time.perf_counter() - t0, len(pairs)


def best(fn: Callable[[], tuple[float, int]]) -> tuple[float, int]:
    return min(fn() for _ in range(5))


def report(name: str, elapsed: float, records: int, base_us: float | None = None, base_name: str = "") -> float:
    us = 1e6 * elapsed / records
    ratio = f"   {us / base_us:5.2f}x {base_name}" if base_us else ""
    print(f"{name:<44} {us:8.2f} us/record {records / elapsed:>10,.0f} records/s{ratio}")
    return us


NATS_INFO = b'INFO {"server_id":"N","headers":true,"max_payload":1048576}\r\n'


def measure() -> list[tuple[str, str, float, int]]:
    """(protocol, workload, seconds, records) per workload, best of 5: one core's parse throughput, for
    tests/bench/bench_protocol_parsers.py."""
    dns_framed = [(framed(q), framed(r)) for q, r in (dns_exchange(i) for i in range(N))]
    nats_pairs = [nats_exchange(i) for i in range(N)]
    redis_pairs = [redis_exchange(i) for i in range(N)]
    stitch_run(DnsStitcher, dns_framed[:500])  # warm-up
    return [
        ("Redis", "SET + OK", *best(lambda: stitch_run(RedisStitcher, redis_pairs))),
        ("DNS", "A query + CNAME, 2 A answer", *best(lambda: stitch_run(DnsStitcher, dns_framed))),
        ("NATS", "PUB + MSG", *best(lambda: stitch_run(NatsStitcher, nats_pairs,
                                                      (b'CONNECT {"verbose":false}\r\n', NATS_INFO)))),
    ]  # fmt: skip


def main() -> None:
    dns_pairs = [dns_exchange(i) for i in range(N)]
    dns_framed = [(framed(q), framed(r)) for q, r in dns_pairs]
    nats_pairs = [nats_exchange(i) for i in range(N)]
    redis_pairs = [redis_exchange(i) for i in range(N)]
    q_len, r_len = len(dns_pairs[0][0]), len(dns_pairs[0][1])
    print(f"DNS query {q_len} B, answer {r_len} B; NATS PUB {len(nats_pairs[0][0])} B, MSG {len(nats_pairs[0][1])} B;"
          f" Redis SET {len(redis_pairs[0][0])} B; {N} exchanges, best of 5")  # fmt: skip
    stitch_run(DnsStitcher, dns_framed[:500])  # warm-up

    redis_el, redis_n = best(lambda: stitch_run(RedisStitcher, redis_pairs))
    redis_us = report("baseline: Redis SET exchange (RedisStitcher)", redis_el, redis_n)

    el, n = best(lambda: from_wire_run(dns_pairs))
    fw_us = report("baseline: DNS dns.message.from_wire x2", el, n, redis_us, "Redis")
    el, n = best(lambda: stitch_run(DnsStitcher, dns_framed))
    assert n == N, n
    dns_us = report("DNS exchange (DnsStitcher)", el, n, redis_us, "Redis")
    print(f"{'':<44} {dns_us / fw_us:8.2f}x dns.message.from_wire")

    info = NATS_INFO
    el, n = best(lambda: stitch_run(NatsStitcher, nats_pairs, (b'CONNECT {"verbose":false}\r\n', info)))
    assert n == 2 * N + 2, n
    report("NATS PUB + MSG (NatsStitcher)", el, n, redis_us, "Redis")
    el, n = best(lambda: stitch_run(NatsStitcher, nats_pairs, (b'CONNECT {"verbose":true}\r\n', info + b"+OK\r\n"),
                                    ack=b"+OK\r\n"))  # fmt: skip
    assert n == 2 * N + 2, n
    report("NATS verbose PUB (+OK) + MSG", el, n, redis_us, "Redis")


if __name__ == "__main__":
    main()
