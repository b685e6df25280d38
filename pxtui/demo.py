"""A small microservice demo on this host, so there is real traffic to look at with no cluster.

`loadgen` calls `frontend` over HTTP/1.1; `frontend` calls `catalog` (products) and `cart`; `cart`
keeps carts in the machine's Redis. As root, each role runs in a network namespace of its own
(pxtui.demo_net: ``pxtui-demo-<role>-1`` on a bridge, 10.213.0.0/24 by default), so the bare-host
metadata shows them as pods ``demo/<role>-1`` of services ``demo/<role>`` with their own IPs, and
the service graphs show real pod-to-pod edges. Redis listens on the host's loopback, which a
namespace cannot reach, so a small relay (role ``relay``, on the host) listens on the bridge
address and forwards to it: the cart -> Redis edge is real Redis traffic on both hops.

Without root (or when namespaces cannot be made) the same roles run on 127.0.0.1 with distinct
ports and the cart talks to Redis directly; `start` says which and why. Each process names itself
(prctl PR_SET_NAME), so loopback roles show as services ``host/<role>``.

The traffic is deliberately varied: keep-alive and new connections, GET and POST with JSON bodies,
gzip and chunked responses, some 404s, 500s and (with no Redis) 503s.

One demo per host: the namespaces and links are host-wide, and `stop` removes every demo process,
namespace and link it finds, whichever state directory started them.
"""

from __future__ import annotations

import contextlib
import ctypes
import gzip
import http.client
import json
import os
import random
import socket
import socketserver
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

from cluster import paths
from pxtui import demo_net

ROLES = ("catalog", "cart", "frontend", "loadgen")
SERVERS = ("catalog", "cart", "frontend")
POD_PORT = 8080
RELAY_PORT = 16379
PRODUCTS = [
    {"id": i, "name": n, "price": p}
    for i, (n, p) in enumerate([("kettle", 24.5), ("teapot", 31.0), ("mug", 8.25), ("grinder", 54.9)], 1)
]


def _port_env(name: str, default: int) -> int:
    return int(os.environ.get(name, str(default)))


def _redis_addr() -> tuple[str, int]:
    host, _, port = os.environ.get("PXTUI_DEMO_REDIS", "127.0.0.1:6379").rpartition(":")
    return host, int(port)


def _set_comm(name: str) -> None:
    try:
        libc = ctypes.CDLL(None)
        libc.prctl(15, name.encode()[:15], 0, 0, 0)  # PR_SET_NAME
    except OSError:
        pass


# ---- the services ------------------------------------------------------------------------------
class _Quiet(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    config: ClassVar[dict[str, Any]] = {}

    def log_message(self, format: str, *args: object) -> None:
        pass

    def reply(
        self, status: int, body: bytes, ctype: str = "application/json", gz: bool = False, chunked: bool = False
    ) -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        if gz:
            body = gzip.compress(body)
            self.send_header("Content-Encoding", "gzip")
        if chunked:
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            for i in range(0, len(body), 64):
                part = body[i : i + 64]
                self.wfile.write(f"{len(part):x}\r\n".encode() + part + b"\r\n")
            self.wfile.write(b"0\r\n\r\n")
        else:
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    def body(self) -> bytes:
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n) if n else b""


class CatalogHandler(_Quiet):
    def do_GET(self) -> None:
        if self.path == "/products":
            self.reply(200, json.dumps({"products": PRODUCTS}).encode(), gz=True)
        elif self.path.startswith("/products/"):
            pid = self.path.rsplit("/", 1)[-1]
            match = [p for p in PRODUCTS if str(p["id"]) == pid]
            if match:
                self.reply(200, json.dumps(match[0]).encode(), chunked=True)
            else:
                self.reply(404, json.dumps({"error": f"no product {pid}"}).encode())
        else:
            self.reply(404, b'{"error":"not found"}')


class CartHandler(_Quiet):
    """Carts in Redis (a hash per session); without Redis every cart call is a 503."""

    _redis: ClassVar[Any] = None

    @classmethod
    def redis(cls) -> Any:
        if cls._redis is None:
            import redis

            host, port = cls.config["redis"]
            cls._redis = redis.Redis(host=host, port=port, socket_timeout=2, socket_connect_timeout=1)
        return cls._redis

    def do_GET(self) -> None:
        if not self.path.startswith("/cart/"):
            self.reply(404, b'{"error":"not found"}')
            return
        session = self.path.rsplit("/", 1)[-1]
        try:
            items = self.redis().hgetall(f"pxtui-demo:cart:{session}")
        except Exception as e:  # redis.RedisError and socket errors alike: the store is down
            self.reply(503, json.dumps({"error": f"cart store unavailable: {type(e).__name__}"}).encode())
            return
        cart = {k.decode(): int(v) for k, v in items.items()}
        self.reply(200, json.dumps({"session": session, "items": cart}).encode())

    def do_POST(self) -> None:
        try:
            order = json.loads(self.body())
            session, product, qty = str(order["session"]), int(order["product"]), int(order["qty"])
        except (ValueError, KeyError, TypeError):
            self.reply(400, b'{"error":"bad order"}')
            return
        if qty > 5:
            self.reply(500, json.dumps({"error": "inventory service timeout"}).encode())
            return
        key = f"pxtui-demo:cart:{session}"
        try:
            pipe = self.redis().pipeline()
            pipe.hincrby(key, str(product), qty)
            pipe.expire(key, 600)
            total = pipe.execute()[0]
        except Exception as e:
            self.reply(503, json.dumps({"error": f"cart store unavailable: {type(e).__name__}"}).encode())
            return
        self.reply(
            201, json.dumps({"order": random.randint(1000, 9999), "product": product, "in_cart": total}).encode()
        )


class FrontendHandler(_Quiet):
    def _call(self, peer: str, method: str, path: str, body: bytes | None = None) -> tuple[int, bytes]:
        host, port = self.config[peer]
        conn = http.client.HTTPConnection(host, port, timeout=5)
        try:
            headers = {"Accept-Encoding": "gzip"}
            if body is not None:
                headers["Content-Type"] = "application/json"
            conn.request(method, path, body=body, headers=headers)
            r = conn.getresponse()
            data = r.read()
            if r.getheader("Content-Encoding") == "gzip":
                data = gzip.decompress(data)
            return r.status, data
        except (OSError, http.client.HTTPException) as e:
            return 502, json.dumps({"error": f"{peer} unreachable: {type(e).__name__}"}).encode()
        finally:
            conn.close()

    def do_GET(self) -> None:
        if self.path == "/healthz":
            self.reply(200, b"ok", ctype="text/plain")
        elif self.path == "/":
            status, data = self._call("catalog", "GET", "/products")
            catalog = json.loads(data) if status == 200 else {}
            self.reply(status, json.dumps({"page": "home", "catalog": catalog}).encode())
        elif self.path.startswith("/product/"):
            self.reply(*self._call("catalog", "GET", "/products/" + self.path.rsplit("/", 1)[-1]))
        elif self.path.startswith("/cart/"):
            self.reply(*self._call("cart", "GET", self.path))
        else:
            self.reply(404, b'{"error":"no such page"}')

    def do_POST(self) -> None:
        if self.path != "/cart":
            self.reply(404, b'{"error":"no such page"}')
            return
        self.reply(*self._call("cart", "POST", "/cart", self.body()))


HANDLERS: dict[str, type[_Quiet]] = {"catalog": CatalogHandler, "cart": CartHandler, "frontend": FrontendHandler}


def serve(role: str, config: dict[str, Any]) -> None:
    _set_comm(role)
    handler = HANDLERS[role]
    handler.config = {k: tuple(v) if isinstance(v, list) else v for k, v in config.items()}
    host, port = config[role]
    ThreadingHTTPServer((host, port), handler).serve_forever()


def loadgen(config: dict[str, Any]) -> None:
    _set_comm("loadgen")
    host, port = config["frontend"]
    period = 1.0 / max(float(config.get("rate", 5.0)), 0.1)
    keep = http.client.HTTPConnection(host, port, timeout=5)
    rnd = random.Random(7)
    while True:
        t0 = time.monotonic()
        kind = rnd.random()
        session = f"s{rnd.randint(1, 20)}"
        try:
            if kind < 0.3:
                keep.request("GET", "/")
            elif kind < 0.6:
                keep.request("GET", f"/product/{rnd.randint(1, 5)}")
            elif kind < 0.85:
                order = {
                    "session": session,
                    "product": rnd.randint(1, 4),
                    "qty": rnd.randint(1, 7),
                    "note": "demo order",
                }
                keep.request("POST", "/cart", body=json.dumps(order), headers={"Content-Type": "application/json"})
            elif kind < 0.95:
                keep.request("GET", f"/cart/{session}")
            else:
                fresh = http.client.HTTPConnection(host, port, timeout=5)
                fresh.request("GET", "/healthz")
                fresh.getresponse().read()
                fresh.close()
                time.sleep(max(0.0, period - (time.monotonic() - t0)))
                continue
            keep.getresponse().read()
        except (OSError, http.client.HTTPException):
            keep.close()
            keep = http.client.HTTPConnection(host, port, timeout=5)
            time.sleep(0.5)
        time.sleep(max(0.0, period - (time.monotonic() - t0)))


class _Relay(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True
    upstream: tuple[str, int] = ("127.0.0.1", 6379)


class _RelayHandler(socketserver.BaseRequestHandler):
    """Copy bytes both ways between a pod and the loopback-only server, until either side closes."""

    def handle(self) -> None:
        assert isinstance(self.server, _Relay)
        try:
            up = socket.create_connection(self.server.upstream, timeout=2)
        except OSError:
            return
        up.settimeout(None)
        pumps = [
            threading.Thread(target=_pump, args=(a, b), daemon=True)
            for a, b in ((self.request, up), (up, self.request))
        ]
        for t in pumps:
            t.start()
        for t in pumps:
            t.join()
        up.close()


def _pump(src: socket.socket, dst: socket.socket) -> None:
    with contextlib.suppress(OSError):
        while data := src.recv(65536):
            dst.sendall(data)
    with contextlib.suppress(OSError):
        dst.shutdown(socket.SHUT_WR)


def relay(config: dict[str, Any]) -> None:
    _set_comm("redis-relay")
    server = _Relay(tuple(config["relay"]), _RelayHandler)
    server.upstream = tuple(config["upstream"])
    server.serve_forever()


# ---- start and stop ----------------------------------------------------------------------------
def _netns_config(rate: float, lay: demo_net.Layout) -> dict[str, Any]:
    cfg: dict[str, Any] = {role: [lay.pods[role].ip, POD_PORT] for role in SERVERS}
    cfg.update(rate=rate, redis=[lay.gateway, RELAY_PORT], relay=[lay.gateway, RELAY_PORT], upstream=_redis_addr())
    return cfg


def _loopback_config(rate: float) -> dict[str, Any]:
    return {
        "frontend": ["127.0.0.1", _port_env("PXTUI_DEMO_FRONTEND_PORT", 18080)],
        "catalog": ["127.0.0.1", _port_env("PXTUI_DEMO_CATALOG_PORT", 18081)],
        "cart": ["127.0.0.1", _port_env("PXTUI_DEMO_CART_PORT", 18082)],
        "redis": list(_redis_addr()),
        "rate": rate,
    }


#: the Popen objects of this process's demo children, so that they are reaped (no zombies) when stopped
_children: list[subprocess.Popen] = []


def _spawn(role: str, config: dict[str, Any], prefix: list[str]) -> None:
    args = [*prefix, sys.executable, "-m", "pxtui.demo", role, json.dumps(config, separators=(",", ":"))]
    proc = subprocess.Popen(
        args,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
        cwd=str(Path(__file__).resolve().parent.parent),
    )
    _children.append(proc)


def start(rate: float = 5.0) -> str:
    """Start the demo (in network namespaces when possible) and say how it runs."""
    stop()
    note = ""
    lay = None
    if os.environ.get("PXTUI_DEMO_NETNS", "1").lower() in ("0", "no", "false", "loopback"):
        note = "PXTUI_DEMO_NETNS is off: "
    else:
        try:
            lay = demo_net.layout(list(ROLES), os.environ.get("PXTUI_DEMO_SUBNET", demo_net.DEFAULT_SUBNET))
            demo_net.create(lay)
        except demo_net.NetnsUnavailable as e:
            stop()
            lay, note = None, f"network namespaces unavailable ({e}); running on loopback instead: "
    try:
        if lay is not None:
            cfg = _netns_config(rate, lay)
            _spawn("relay", cfg, [])
            _wait_port(tuple(cfg["relay"]), "relay")
            for role in ROLES:
                _spawn(role, cfg, demo_net.exec_prefix(lay.pods[role]))
                if role in SERVERS:
                    _wait_port(tuple(cfg[role]), role)
            fe = cfg["frontend"]
            return (
                f"demo running in network namespaces ({lay.subnet}): loadgen -> frontend {fe[0]}:{fe[1]} -> "
                f"catalog, cart -> redis (via relay {lay.gateway}:{RELAY_PORT}) at {rate:g} req/s; "
                f"pods demo/<role>-1 in namespace demo"
            )
        cfg = _loopback_config(rate)
        for role in ROLES:
            _spawn(role, cfg, [])
            if role in SERVERS:
                _wait_port(tuple(cfg[role]), role)
        return (
            f"{note}demo running: loadgen -> frontend :{cfg['frontend'][1]} -> catalog :{cfg['catalog'][1]}, "
            f"cart :{cfg['cart'][1]} -> redis {cfg['redis'][0]}:{cfg['redis'][1]} at {rate:g} req/s"
        )
    except BaseException:
        stop()
        raise


def _wait_port(addr: tuple[str, int], role: str, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as s:
            s.settimeout(0.5)
            if s.connect_ex(addr) == 0:
                return
        time.sleep(0.05)
    raise RuntimeError(f"demo {role} did not start listening on {addr[0]}:{addr[1]} within {timeout:g} s")


def _demo_processes() -> list[int]:
    """Every process running this module (``python -m pxtui.demo ROLE ...``) on the host."""
    out = []
    me = os.getpid()
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit() or int(entry.name) == me:
            continue
        try:
            with open(f"/proc/{entry.name}/cmdline", "rb") as f:
                argv = f.read().split(b"\0")
        except OSError:
            continue
        if argv[1:3] == [b"-m", b"pxtui.demo"]:
            out.append(int(entry.name))
    return out


def stop() -> str:
    """Stop every demo process and remove every demo namespace and link; safe to run any time."""
    killed = demo_net.kill_all(_demo_processes())
    try:
        removed = demo_net.destroy()
    except demo_net.NetnsUnavailable as e:
        raise RuntimeError(f"cannot remove the demo's network namespaces: {e}") from None
    for proc in _children:
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=5)
    _children.clear()
    with contextlib.suppress(OSError):
        (paths.state_dir() / "demo.pids").unlink()  # what older versions kept; the scan above replaces it
    if not killed and not removed:
        return "demo not running"
    parts = [f"{killed} processes"] + ([", ".join(removed)] if removed else [])
    return "demo stopped (" + "; ".join(parts) + ")"


if __name__ == "__main__":
    role = sys.argv[1] if len(sys.argv) > 1 else ""
    try:
        conf = json.loads(sys.argv[2]) if len(sys.argv) > 2 else _loopback_config(5.0)
    except ValueError:
        sys.exit(f"python -m pxtui.demo {role}: the second argument must be the JSON config")
    if role == "loadgen":
        loadgen(conf)
    elif role == "relay":
        relay(conf)
    elif role in SERVERS:
        serve(role, conf)
    else:
        sys.exit(f"usage: python -m pxtui.demo {{{'|'.join((*ROLES, 'relay'))}}} [JSON config]")
