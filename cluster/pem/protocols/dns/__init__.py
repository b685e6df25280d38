"""DNS over UDP and TCP: infer (is it a DNS message), frames (bytes -> messages), stitch (-> dns_events)."""

from cluster.pem.protocols.dns.frames import DnsFrame, DnsReader, decode
from cluster.pem.protocols.dns.infer import infer
from cluster.pem.protocols.dns.stitch import DnsStitcher

__all__ = ["DnsFrame", "DnsReader", "DnsStitcher", "decode", "infer"]
