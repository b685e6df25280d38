"""Network UDFs: nslookup (reverse DNS), cidrs_contain_ip and get_cidrs.

nslookup asks the resolver of the machine running the query, like Pixie's getnameinfo call.  A slow
resolver must not stall a query, so every distinct address of a batch is looked up in parallel with
one shared deadline; an address without an answer in time is returned unchanged and not cached, so
a later query can still name it.  Answers (names, "no name" and resolver errors) are kept in an LRU.
"""

from __future__ import annotations

import ipaddress
import json
import socket
import threading
from collections import OrderedDict
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor, wait

import pyarrow as pa

from cluster.pxl.funcs.arrays import is_scalar, py, rowwise, unique_map
from cluster.pxl.funcs.json_funcs import dump_compact
from cluster.pxl.funcs.registry import EvalContext, Registry, ScalarFunc, Signature, Value
from cluster.pxl.sources import ClusterNetworkSource
from cluster.pxl.types import BOOLEAN, STRING

LOOKUP_TIMEOUT_S = 0.5
CACHE_SIZE = 4096


class ReverseDNS:
    """getnameinfo with an LRU of answers and a per-batch deadline."""

    def __init__(self, timeout_s: float = LOOKUP_TIMEOUT_S, capacity: int = CACHE_SIZE) -> None:
        self.timeout_s = timeout_s
        self.capacity = capacity
        self._cache: OrderedDict[str, str] = OrderedDict()
        self._lock = threading.Lock()
        self._pool: ThreadPoolExecutor | None = None

    @staticmethod
    def resolve(addr: str) -> str:
        """The host name, the address itself when it has none, or the resolver's error text."""
        try:
            ipaddress.ip_address(addr)
        except ValueError:
            return addr  # not an IP (e.g. "-" for an unknown peer): nothing to look up
        try:
            host, _ = socket.getnameinfo((addr, 0), 0)
        except (socket.gaierror, OSError) as e:
            return str(e)
        return host

    def _cached(self, addr: str) -> str | None:
        with self._lock:
            if addr in self._cache:
                self._cache.move_to_end(addr)
                return self._cache[addr]
        return None

    def _store(self, addr: str, name: str) -> None:
        with self._lock:
            self._cache[addr] = name
            self._cache.move_to_end(addr)
            while len(self._cache) > self.capacity:
                self._cache.popitem(last=False)

    def lookup_many(self, addrs: Sequence[str]) -> dict[str, str]:
        out: dict[str, str] = {}
        todo = []
        for a in addrs:
            hit = self._cached(a)
            if hit is None:
                todo.append(a)
            else:
                out[a] = hit
        if todo:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(max_workers=4, thread_name_prefix="pxl-nslookup")
            futures = {self._pool.submit(self.resolve, a): a for a in todo}
            done, _ = wait(futures, timeout=self.timeout_s)
            for fut, addr in futures.items():
                if fut in done:
                    name = fut.result()
                    self._store(addr, name)
                    out[addr] = name
                else:
                    out[addr] = addr
        return out


RESOLVER = ReverseDNS()


def _nslookup(ctx: EvalContext, args: Sequence[Value], sig: Signature, n: int) -> Value:
    values = args[0]
    if is_scalar(values):
        addr = py(values)
        return pa.scalar(RESOLVER.lookup_many([addr])[addr])
    if len(values) == 0:
        return pa.array([], pa.string())
    enc = values.dictionary_encode()
    distinct = enc.dictionary.to_pylist()
    names = RESOLVER.lookup_many(distinct)
    return pa.array([names[a] for a in distinct], pa.string()).take(enc.indices)


def parse_cidrs(text: str) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
    """The networks of a JSON array of CIDR strings; malformed entries are skipped."""
    try:
        items = json.loads(text)
    except ValueError:
        return []
    nets = []
    for item in items if isinstance(items, list) else []:
        if isinstance(item, str):
            try:
                nets.append(ipaddress.ip_network(item, strict=False))
            except ValueError:
                continue
    return nets


def cidrs_contain_ip(cidrs_json: str, ip: str) -> bool:
    try:
        addr = ipaddress.ip_address(ip)
    except ValueError:
        return False
    return any(addr.version == net.version and addr in net for net in parse_cidrs(cidrs_json))


def _cidrs_contain_ip(ctx: EvalContext, args: Sequence[Value], sig: Signature, n: int) -> Value:
    cidrs, ip = args
    if is_scalar(cidrs):
        nets = parse_cidrs(py(cidrs))

        def inside(text: str) -> bool:
            try:
                addr = ipaddress.ip_address(text)
            except ValueError:
                return False
            return any(addr.version == net.version and addr in net for net in nets)

        return unique_map(ip, inside, pa.bool_())
    return rowwise(cidrs_contain_ip, args, n, pa.bool_())


def _get_cidrs(ctx: EvalContext, args: Sequence[Value], sig: Signature, n: int) -> Value:
    """Pod and service CIDRs from the metadata source's optional ``cidrs()``; none known -> []."""
    md = ctx.metadata
    cidrs = list(md.cidrs()) if isinstance(md, ClusterNetworkSource) else []
    return pa.scalar(dump_compact(cidrs))


def register(reg: Registry) -> None:
    reg.add(ScalarFunc("nslookup", (Signature((STRING,), STRING),), _nslookup, foldable=False,
                       doc="reverse DNS name of an IP, or the IP when it has none"))
    reg.add(ScalarFunc("cidrs_contain_ip", (Signature((STRING, STRING), BOOLEAN),), _cidrs_contain_ip,
                       doc="ip is inside one of the CIDRs of the JSON array"))
    reg.add(ScalarFunc("get_cidrs", (Signature((), STRING),), _get_cidrs, foldable=False,
                       doc="pod and service CIDRs of the cluster, as a JSON array"))
