"""The events the socket tracer's BPF program emits, decoded: the contract between the kernel side
(bpf/socket_trace.c, drained by socket_tracer.py) and the connection tracker.

Connections are identified by (tgid, fd) plus a generation that changes whenever the fd is
reused (connect, accept or close seen), the way Pixie's conn_id carries a tsid.
Timestamps are already converted from the kernel's monotonic clock to wall-clock ns.
"""

from __future__ import annotations

import enum
import ipaddress
import socket
import struct
from dataclasses import dataclass


class Direction(enum.IntEnum):
    EGRESS = 0  # the traced process wrote/sent
    INGRESS = 1  # the traced process read/received


class ConnKind(enum.IntEnum):
    CONNECT = 1  # the traced process connected out: it is the client
    ACCEPT = 2  # the traced process accepted: it is the server
    CLOSE = 3
    ESTABLISHED = 4  # inet_sock_set_state -> ESTABLISHED: gives sk -> 4-tuple


@dataclass(slots=True)
class DataEvent:
    ts_ns: int
    tgid: int
    tid: int
    fd: int
    sk: int
    direction: Direction
    msg_size: int  # the syscall's return value: total bytes moved
    pos: int  # offset of `data` inside the syscall's bytes (iovec / chunking)
    family: int  # AF_INET / AF_INET6
    sock_type: int  # SOCK_STREAM / SOCK_DGRAM
    syscall: int
    addr: SockAddr | None  # peer from sendto/recvfrom/msg_name when given
    data: bytes
    # Plaintext captured inside a TLS library (SSL_read/SSL_write uprobes): the connection is
    # encrypted on the wire; `syscall` then holds a pseudo id (1000 SSL_read .. 1003 SSL_write_ex).
    ssl: bool = False


@dataclass(slots=True)
class ConnEvent:
    kind: ConnKind
    ts_ns: int
    tgid: int
    fd: int  # -1 for ESTABLISHED (no fd in softirq context)
    sk: int  # 0 when not known (connect/accept/close)
    local: SockAddr | None
    remote: SockAddr | None


@dataclass(slots=True, frozen=True)
class SockAddr:
    family: int
    addr: str
    port: int

    @classmethod
    def from_sockaddr(cls, raw: bytes) -> SockAddr | None:
        """Decode a user-space struct sockaddr_in / sockaddr_in6 (28 bytes max)."""
        if len(raw) < 8:
            return None
        family = struct.unpack_from("<H", raw, 0)[0]
        port = struct.unpack_from(">H", raw, 2)[0]
        if family == socket.AF_INET:
            return cls(family, socket.inet_ntop(socket.AF_INET, raw[4:8]), port)
        if family == socket.AF_INET6 and len(raw) >= 24:
            ip = ipaddress.IPv6Address(raw[8:24])
            text = str(ip.ipv4_mapped) if ip.ipv4_mapped else str(ip)
            return cls(family, text, port)
        return None


EV_DATA = 1
EV_CONNECT = 2
EV_ACCEPT = 3
EV_CLOSE = 4
EV_ESTABLISHED = 5
