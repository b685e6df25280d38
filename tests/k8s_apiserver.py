"""A Kubernetes API server for tests: serves a transcript over real HTTP to the real client.

It speaks the parts of the API a reflector uses, as kube-apiserver does:
- GET <collection>            a *List (items without kind/apiVersion), paginated by ``limit`` and
                              ``continue`` over one snapshot, with the list's resourceVersion;
- GET <collection>?watch=true a chunked stream of one JSON event per line: the events after the
                              given ``resourceVersion``, then each new one as it is released; BOOKMARKs
                              only when ``allowWatchBookmarks``; the stream ends at ``timeoutSeconds``;
                              a resourceVersion older than the last compaction gets ERROR 410 Expired.

The transcript (tests/fixtures/k8s/transcript.py) holds the initial lists and the events; nothing
happens until the test releases events with :meth:`play`, so every step is deterministic. An event
marked ``unseen`` changes the store without reaching any watcher (the watch cache lost it); an ERROR
event ends every watch of its resource and compacts its history, so the client must list again.
Each event's send time (time.monotonic_ns, when first written to a watcher) is kept for benchmarks.

    python -m tests.k8s_apiserver [--pods 10000] [--port 0]   # serve a transcript until Ctrl-C
"""

from __future__ import annotations

import argparse
import base64
import copy
import itertools
import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import kubernetes.client

from tests.fixtures.k8s.transcript import JSON, RESOURCES

_PATHS = {path: resource for resource, (path, _, _) in RESOURCES.items()}
_TRUE = ("true", "1", "True")


def _status(code: int, reason: str, message: str) -> JSON:
    return {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
        "code": code,
    }


class _Resource:
    """One collection: its objects by namespace/name and the watch events logged since compaction."""

    def __init__(self, listing: JSON) -> None:
        self.kind = listing["kind"]
        self.api_version = listing["apiVersion"]
        self.objects: dict[str, JSON] = {_key(o): o for o in listing["items"]}
        self.log: list[tuple[int, str, bytes, int]] = []  # (resourceVersion, type, line, transcript index)
        self.compacted_rv = 0
        self.generation = 0  # bumped at each compaction, so open watches know to end


def _key(obj: JSON) -> str:
    meta = obj["metadata"]
    return f"{meta.get('namespace', '')}/{meta['name']}"


class FakeApiServer:
    """Serves ``transcript`` on 127.0.0.1:``port`` (0: any free port) from a background thread."""

    def __init__(self, transcript: JSON, port: int = 0) -> None:
        self.transcript = transcript
        self.resources = {r: _Resource(copy.deepcopy(listing)) for r, listing in transcript["lists"].items()}
        self.rv = int(transcript["resourceVersion"])
        self.events: list[JSON] = transcript["events"]
        self.released = 0
        self.sent_ns: dict[int, int] = {}  # transcript index -> monotonic ns when first written to a watcher
        self.requests: list[tuple[str, dict[str, str]]] = []
        self._cond = threading.Condition()
        self._closing = False
        self._snapshots: dict[str, tuple[list[JSON], str]] = {}
        self._snapshot_ids = itertools.count(1)
        self._httpd = ThreadingHTTPServer(("127.0.0.1", port), _handler_for(self))
        self._httpd.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}"

    def client_configuration(self) -> kubernetes.client.Configuration:
        """What a kubeconfig would give the client: this server, a bearer token, no TLS."""
        cfg = kubernetes.client.Configuration()
        cfg.host = self.url
        cfg.api_key = {"authorization": "fake-test-token"}
        cfg.api_key_prefix = {"authorization": "Bearer"}
        return cfg

    def api_client(self) -> kubernetes.client.ApiClient:
        return kubernetes.client.ApiClient(self.client_configuration())

    def start(self) -> FakeApiServer:
        self._thread = threading.Thread(target=self._httpd.serve_forever, name="fake-apiserver", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        with self._cond:
            self._closing = True
            self._cond.notify_all()
        self._httpd.shutdown()
        self._httpd.server_close()
        if self._thread is not None:
            self._thread.join(5)

    # ---- the test's side ---------------------------------------------------------------------------

    def label_index(self, label: str) -> int:
        for i, step in enumerate(self.events):
            if step.get("label") == label:
                return i
        raise KeyError(f"no event labelled {label!r} in the transcript")

    def play(self, until: str | None = None, count: int | None = None) -> list[JSON]:
        """Release events: up to and including the one labelled ``until``, or the next ``count``."""
        end = self.label_index(until) + 1 if until is not None else self.released + (count or 1)
        end = min(end, len(self.events))
        out = []
        with self._cond:
            while self.released < end:
                i = self.released
                self._release(i, self.events[i])
                self.released += 1
                out.append(self.events[i])
            self._cond.notify_all()
        return out

    def _release(self, index: int, step: JSON) -> None:
        res = self.resources[step["resource"]]
        event = step["event"]
        kind = event["type"]
        if kind == "ERROR":
            res.compacted_rv = self.rv + 1  # every resourceVersion we handed out is now too old
            res.log.clear()
            res.generation += 1
            return
        obj = event["object"]
        if kind == "BOOKMARK":
            rv = int(obj["metadata"]["resourceVersion"])
        else:
            rv = int(obj["metadata"]["resourceVersion"])
            self.rv = max(self.rv, rv)
            stored = {k: v for k, v in obj.items() if k not in ("kind", "apiVersion")}
            if kind == "DELETED":
                res.objects.pop(_key(obj), None)
            else:
                res.objects[_key(obj)] = stored
        if not step.get("unseen"):
            res.log.append((rv, kind, (json.dumps(event) + "\n").encode(), index))

    def wait_sent(self, label: str, timeout: float = 10.0) -> int:
        """The monotonic ns at which the event labelled ``label`` was written to a watcher."""
        i = self.label_index(label)
        with self._cond:
            if not self._cond.wait_for(lambda: i in self.sent_ns, timeout):
                raise TimeoutError(f"event {label!r} was never sent to a watcher")
            return self.sent_ns[i]

    def watchers(self, resource: str) -> int:
        return sum(1 for path, q in self.requests if _PATHS.get(path) == resource and q.get("watch") in _TRUE)

    # ---- the client's side -------------------------------------------------------------------------

    def list_page(self, resource: str, query: dict[str, str]) -> JSON:
        res = self.resources[resource]
        token = query.get("continue")
        if token:
            snap_id, offset = json.loads(base64.urlsafe_b64decode(token))
            if snap_id not in self._snapshots:
                raise LookupError("continue token expired")
            items, rv = self._snapshots[snap_id]
        else:
            with self._cond:
                items = sorted(res.objects.values(), key=_key)
                rv = str(self.rv)
            snap_id, offset = f"s{next(self._snapshot_ids)}", 0
            self._snapshots[snap_id] = (items, rv)
        limit = int(query.get("limit") or 0) or len(items)
        page = items[offset : offset + limit]
        meta: JSON = {"resourceVersion": rv}
        if offset + limit < len(items):
            meta["continue"] = base64.urlsafe_b64encode(json.dumps([snap_id, offset + limit]).encode()).decode()
            meta["remainingItemCount"] = len(items) - offset - limit
        else:
            self._snapshots.pop(snap_id, None)
        return {"kind": f"{res.kind}List", "apiVersion": res.api_version, "metadata": meta, "items": page}

    def watch_lines(self, resource: str, query: dict[str, str]) -> Iterator[bytes | None]:
        """Event lines for one watch; None means "flush what you have" (nothing new yet)."""
        res = self.resources[resource]
        since = int(query.get("resourceVersion") or 0)
        bookmarks = query.get("allowWatchBookmarks") in _TRUE
        deadline = time.monotonic() + float(query.get("timeoutSeconds") or 1800)
        with self._cond:
            if since and since < res.compacted_rv:
                status = _status(410, "Expired", f"too old resource version: {since} ({res.compacted_rv})")
                yield (json.dumps({"type": "ERROR", "object": status}) + "\n").encode()
                return
            generation = res.generation
            cursor = 0
        while True:
            with self._cond:
                self._cond.wait_for(
                    lambda seen=cursor: self._closing or res.generation != generation or len(res.log) > seen,
                    max(0.0, deadline - time.monotonic()),
                )
                if self._closing or time.monotonic() >= deadline:
                    return
                if res.generation != generation:
                    status = _status(410, "Expired", f"too old resource version: {since} ({res.compacted_rv})")
                    yield (json.dumps({"type": "ERROR", "object": status}) + "\n").encode()
                    return
                pending = res.log[cursor:]
                cursor = len(res.log)
            for rv, kind, line, index in pending:
                if kind == "BOOKMARK" and (not bookmarks or rv < since):
                    continue
                if kind != "BOOKMARK" and rv <= since:
                    continue
                yield line
                with self._cond:
                    self.sent_ns.setdefault(index, time.monotonic_ns())
                    self._cond.notify_all()
                since = max(since, rv)


def _handler_for(server: FakeApiServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True  # as Go's net/http: a watch event must not wait for an ACK

        def log_message(self, format: str, *args: Any) -> None:  # quiet: tests read server.requests
            pass

        def do_GET(self) -> None:
            url = urlsplit(self.path)
            query = {k: v[-1] for k, v in parse_qs(url.query).items()}
            server.requests.append((url.path, query))
            if self.headers.get("Authorization") != "Bearer fake-test-token":
                return self._json(401, _status(401, "Unauthorized", "Unauthorized"))
            resource = _PATHS.get(url.path)
            if resource is None:
                return self._json(404, _status(404, "NotFound", f"the server could not find {url.path}"))
            if query.get("watch") in _TRUE:
                return self._watch(resource, query)
            try:
                page = server.list_page(resource, query)
            except LookupError as e:
                return self._json(410, _status(410, "Expired", str(e)))
            return self._json(200, page)

        def _json(self, code: int, body: JSON) -> None:
            data = json.dumps(body).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _watch(self, resource: str, query: dict[str, str]) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            try:
                for line in server.watch_lines(resource, query):
                    if line:
                        self.wfile.write(b"%x\r\n%s\r\n" % (len(line), line))
                        self.wfile.flush()
                self.wfile.write(b"0\r\n\r\n")
                self.wfile.flush()
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client stopped watching
            self.close_connection = True

    return Handler


@contextmanager
def serving(transcript: JSON) -> Iterator[FakeApiServer]:
    server = FakeApiServer(transcript).start()
    try:
        yield server
    finally:
        server.stop()


def main() -> None:
    from tests.fixtures.k8s.transcript import large_cluster, load

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pods", type=int, default=0, help="serve a generated cluster of this many pods")
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args()
    transcript = large_cluster(args.pods) if args.pods else load()
    server = FakeApiServer(transcript, args.port).start()
    print(f"serving {transcript['description'].splitlines()[0]} at {server.url} (token fake-test-token)")
    try:
        while True:
            line = input("events to release (Enter = 1, or a label): ").strip()
            for step in server.play(until=line or None) if line else server.play(count=1):
                print(step["resource"], step["event"]["type"], step.get("label", ""))
    except (EOFError, KeyboardInterrupt):
        pass
    finally:
        server.stop()


if __name__ == "__main__":
    main()
