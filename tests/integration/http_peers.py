"""Real HTTP peers for the end-to-end tests, run as child processes (never inside the agent)."""

from __future__ import annotations

import json
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, format, *args):
        pass

    def _send(self, status: int, body: bytes, ctype: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        if self.path.endswith("/missing"):
            self._send(404, b"not here", "text/plain")
        else:
            self._send(200, b"hello from " + self.path.encode(), "text/plain")

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self._send(201, json.dumps({"got": len(body), "echo": body[:64].decode()}).encode(), "application/json")


def serve(port: int) -> None:
    srv = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    print("ready", flush=True)
    srv.serve_forever()


def post(port: int, path: str, body: str) -> None:
    import http.client

    c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    c.request("POST", path, body=body.encode(), headers={"Content-Type": "application/json"})
    r = c.getresponse()
    r.read()
    c.request("GET", path + "/missing")  # the same keep-alive connection
    c.getresponse().read()
    c.close()


if __name__ == "__main__":
    if sys.argv[1] == "serve":
        serve(int(sys.argv[2]))
    else:
        post(int(sys.argv[2]), sys.argv[3], sys.argv[4])
