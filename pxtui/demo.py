"""A small microservice demo on this host, so there is real traffic to look at with no cluster.

Three processes talk HTTP/1.1 over loopback: `loadgen` calls `frontend`, which calls `catalog`.
Each names itself (prctl PR_SET_NAME) so the local metadata shows them as services. The traffic is
deliberately varied: keep-alive and new connections, GET and POST with JSON bodies, gzip responses,
chunked responses, and some 404s and 500s.
"""

from __future__ import annotations

import contextlib
import ctypes
import gzip
import http.client
import json
import os
import random
import signal
import subprocess
import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from cluster import paths

FRONTEND_PORT = int(os.environ.get("PXTUI_DEMO_FRONTEND_PORT", "18080"))
CATALOG_PORT = int(os.environ.get("PXTUI_DEMO_CATALOG_PORT", "18081"))
ROLES = ("catalog", "frontend", "loadgen")
PRODUCTS = [{"id": i, "name": n, "price": p} for i, (n, p) in
            enumerate([("kettle", 24.5), ("teapot", 31.0), ("mug", 8.25), ("grinder", 54.9)], 1)]


def _set_comm(name: str) -> None:
    try:
        libc = ctypes.CDLL(None)
        libc.prctl(15, name.encode()[:15], 0, 0, 0)  # PR_SET_NAME
    except OSError:
        pass


class _Quiet(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: object) -> None:
        pass

    def reply(self, status: int, body: bytes, ctype: str = "application/json", gz: bool = False,
              chunked: bool = False) -> None:
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


class FrontendHandler(_Quiet):
    catalog: http.client.HTTPConnection | None = None

    def _catalog(self, path: str) -> tuple[int, bytes]:
        conn = http.client.HTTPConnection("127.0.0.1", CATALOG_PORT, timeout=5)
        try:
            conn.request("GET", path, headers={"Accept-Encoding": "gzip"})
            r = conn.getresponse()
            data = r.read()
            if r.getheader("Content-Encoding") == "gzip":
                data = gzip.decompress(data)
            return r.status, data
        finally:
            conn.close()

    def do_GET(self) -> None:
        if self.path == "/healthz":
            self.reply(200, b"ok", ctype="text/plain")
        elif self.path == "/":
            status, data = self._catalog("/products")
            self.reply(status, json.dumps({"page": "home", "catalog": json.loads(data)}).encode())
        elif self.path.startswith("/product/"):
            status, data = self._catalog("/products/" + self.path.rsplit("/", 1)[-1])
            self.reply(status, data)
        else:
            self.reply(404, b'{"error":"no such page"}')

    def do_POST(self) -> None:
        req = self.body()
        try:
            order = json.loads(req)
        except ValueError:
            self.reply(400, b'{"error":"bad json"}')
            return
        if order.get("qty", 0) > 5:
            self.reply(500, json.dumps({"error": "inventory service timeout"}).encode())
            return
        self.reply(201, json.dumps({"order": random.randint(1000, 9999), "items": order}).encode())


def serve(role: str) -> None:
    _set_comm(role)
    handler, port = (CatalogHandler, CATALOG_PORT) if role == "catalog" else (FrontendHandler, FRONTEND_PORT)
    ThreadingHTTPServer(("127.0.0.1", port), handler).serve_forever()


def loadgen(rate: float) -> None:
    _set_comm("loadgen")
    period = 1.0 / max(rate, 0.1)
    keep = http.client.HTTPConnection("127.0.0.1", FRONTEND_PORT, timeout=5)
    rnd = random.Random(7)
    while True:
        t0 = time.monotonic()
        kind = rnd.random()
        try:
            if kind < 0.35:
                keep.request("GET", "/")
            elif kind < 0.7:
                keep.request("GET", f"/product/{rnd.randint(1, 5)}")
            elif kind < 0.95:
                order = {"product": rnd.randint(1, 4), "qty": rnd.randint(1, 7), "note": "demo order"}
                keep.request("POST", "/cart", body=json.dumps(order), headers={"Content-Type": "application/json"})
            else:
                fresh = http.client.HTTPConnection("127.0.0.1", FRONTEND_PORT, timeout=5)
                fresh.request("GET", "/healthz")
                fresh.getresponse().read()
                fresh.close()
                time.sleep(max(0.0, period - (time.monotonic() - t0)))
                continue
            keep.getresponse().read()
        except (OSError, http.client.HTTPException):
            keep.close()
            keep = http.client.HTTPConnection("127.0.0.1", FRONTEND_PORT, timeout=5)
            time.sleep(0.5)
        time.sleep(max(0.0, period - (time.monotonic() - t0)))


def _pidfile() -> Path:
    return paths.state_dir() / "demo.pids"


def start(rate: float = 5.0) -> str:
    paths.ensure_state_dir()
    stop()
    pids = []
    for role in ROLES:
        args = [sys.executable, "-m", "pxtui.demo", role]
        if role == "loadgen":
            args.append(str(rate))
        proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL, start_new_session=True,
                                cwd=str(Path(__file__).resolve().parent.parent))
        pids.append(proc.pid)
        if role != "loadgen":
            _wait_port(FRONTEND_PORT if role == "frontend" else CATALOG_PORT)
    _pidfile().write_text(" ".join(map(str, pids)))
    return f"demo running: loadgen -> frontend :{FRONTEND_PORT} -> catalog :{CATALOG_PORT} at {rate:g} req/s"


def _wait_port(port: int, timeout: float = 10.0) -> None:
    import socket

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise RuntimeError(f"demo service on port {port} did not start")


def stop() -> str:
    try:
        pids = [int(p) for p in _pidfile().read_text().split()]
    except (FileNotFoundError, ValueError):
        return "demo not running"
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
    _pidfile().unlink(missing_ok=True)
    return f"demo stopped ({len(pids)} processes)"


if __name__ == "__main__":
    role = sys.argv[1] if len(sys.argv) > 1 else ""
    if role == "loadgen":
        loadgen(float(sys.argv[2]) if len(sys.argv) > 2 else 5.0)
    elif role in ROLES:
        serve(role)
    else:
        sys.exit(f"usage: python -m pxtui.demo {{{'|'.join(ROLES)}}} [rate]")
