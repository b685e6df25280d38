"""Real TLS peers for the TLS tracing tests and benchmark, run as child processes (never inside the
agent, which does not trace itself): an HTTPS server on Python's ssl module and http.client clients.

    tls_peers.py serve CERT KEY             prints the port, then serves HTTPS on 127.0.0.1
    tls_peers.py post PORT CAFILE PATH BODY  POST then GET PATH/missing on one keep-alive connection
    tls_peers.py get PORT CAFILE PATH [N]    N keep-alive GETs (default 1), prints the seconds taken
    tls_peers.py loop PORT CAFILE PATH      a GET every 0.2 s (PATH/<n>) until stdin closes
"""

from __future__ import annotations

import http.client
import json
import select
import ssl
import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

BIG = 40_000  # more than two 16 KiB capture chunks: the plaintext arrives in three events


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: object) -> None:
        pass

    def _send(self, status: int, body: bytes, ctype: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        if self.path.endswith("/missing"):
            self._send(404, b"not here", "text/plain")
        elif self.path.endswith("/big"):
            self._send(200, bytes(ord("a") + i % 26 for i in range(BIG)), "text/plain")
        else:
            self._send(200, b"hello tls from " + self.path.encode(), "text/plain")

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self._send(201, json.dumps({"got": len(body), "echo": body[:64].decode()}).encode(), "application/json")


def serve(cert: str, key: str) -> None:
    srv = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)
    srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
    print(srv.server_address[1], flush=True)
    srv.serve_forever()


def _conn(port: int, cafile: str) -> http.client.HTTPSConnection:
    ctx = ssl.create_default_context(cafile=cafile)  # the test's self-signed cert, verified
    return http.client.HTTPSConnection("127.0.0.1", port, timeout=10, context=ctx)


def post(port: int, cafile: str, path: str, body: str) -> None:
    c = _conn(port, cafile)
    c.request("POST", path, body=body.encode(), headers={"Content-Type": "application/json"})
    r = c.getresponse()
    assert r.status == 201, r.status
    r.read()
    c.request("GET", path + "/missing")  # the same keep-alive connection
    c.getresponse().read()
    c.close()


def get(port: int, cafile: str, path: str, n: int) -> None:
    c = _conn(port, cafile)
    c.connect()
    t0 = time.perf_counter()
    for _ in range(n):
        c.request("GET", path)
        r = c.getresponse()
        r.read()
        assert r.status == 200, r.status
    print(f"{time.perf_counter() - t0:.6f}", flush=True)
    c.close()


def loop(port: int, cafile: str, path: str) -> None:
    c = _conn(port, cafile)
    n = 0
    print("ready", flush=True)
    while not select.select([sys.stdin], [], [], 0.2)[0]:
        c.request("GET", f"{path}/{n}")
        c.getresponse().read()
        n += 1
    c.close()


if __name__ == "__main__":
    cmd, args = sys.argv[1], sys.argv[2:]
    if cmd == "serve":
        serve(args[0], args[1])
    elif cmd == "post":
        post(int(args[0]), args[1], args[2], args[3])
    elif cmd == "get":
        get(int(args[0]), args[1], args[2], int(args[3]) if len(args) > 3 else 1)
    elif cmd == "loop":
        loop(int(args[0]), args[1], args[2])
    else:
        sys.exit(f"unknown command {cmd!r}: serve, post, get or loop")
