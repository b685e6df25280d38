"""List-then-watch of one resource kind through the official client, into the cluster state.

Kubernetes' reflector protocol, as client-go does it: list (in pages) to get the state and its
resourceVersion, then watch from that resourceVersion; every event carries the object's new
resourceVersion and BOOKMARKs advance it without a change, so a watch that ends (server timeout,
dropped connection) resumes exactly where it stopped. When the server has compacted past our
resourceVersion it answers 410 Gone (an ERROR event in the stream, or the status of the request),
and the only correct recovery is a fresh list, which also reveals what was deleted meanwhile.

The client is asked for raw responses (_preload_content=False) and the JSON parsed here: turning
10,000 pods into V1Pod models would cost seconds and megabytes we never read (see objects.py).
"""

from __future__ import annotations

import contextlib
import json
import logging
import random
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from kubernetes.client.exceptions import ApiException
from kubernetes.watch.watch import iter_resp_lines

from cluster.metadata.k8s.state import ClusterState

log = logging.getLogger(__name__)

GONE = 410


class ResourceExpired(Exception):
    """The server no longer has the history our resourceVersion points into: list again."""


@dataclass
class ReflectorStats:
    lists: int = 0
    relists_after_gone: int = 0
    events: int = 0
    bookmarks: int = 0
    errors: int = 0
    resource_version: str = ""
    last_error: str = ""


class Reflector:
    """Keeps ``state``'s view of one resource in step with the API server, on its own thread."""

    def __init__(
        self,
        resource: str,
        list_fn: Callable[..., Any],
        state: ClusterState,
        *,
        page_size: int = 500,
        watch_timeout_s: int = 300,
        request_timeout_s: float = 30.0,
        backoff_s: tuple[float, float] = (0.2, 10.0),
    ) -> None:
        self.resource = resource
        self.list_fn = list_fn
        self.state = state
        self.page_size = page_size
        self.watch_timeout_s = watch_timeout_s
        self.request_timeout_s = request_timeout_s
        self.backoff_s = backoff_s
        self.stats = ReflectorStats()
        self.synced = threading.Event()
        self._rv: str | None = None  # None: the next step is a full list
        self._stop = threading.Event()
        self._resp: Any = None
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name=f"k8s-watch-{self.resource}", daemon=True)
        self._thread.start()

    def request_stop(self) -> None:
        """Ask the thread to end; :meth:`stop` also waits for it."""
        self._stop.set()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        resp = self._resp
        if resp is not None:
            with contextlib.suppress(Exception):  # already closed by the thread itself
                resp.shutdown()  # unblocks the read the watch thread sits in
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def _run(self) -> None:
        delay = self.backoff_s[0]
        while not self._stop.is_set():
            try:
                if self._rv is None:
                    self._list()
                self._watch()
                delay = self.backoff_s[0]
            except ResourceExpired:
                self.stats.relists_after_gone += 1
                self._rv = None
                log.info("watch of %s expired (410 Gone): listing again", self.resource)
            except Exception as e:  # the API server away, a broken stream: retry with backoff
                if self._stop.is_set():
                    break
                self.stats.errors += 1
                self.stats.last_error = _describe(e)
                log.warning("watch of %s failed (%s); retrying in %.1fs", self.resource, self.stats.last_error, delay)
                self._stop.wait(delay * (0.5 + random.random()))
                delay = min(delay * 2, self.backoff_s[1])

    def _list(self) -> None:
        """All objects, a page at a time, as one consistent snapshot (the first page's version)."""
        items: list[dict] = []
        token: str | None = None
        rv = ""
        while True:
            kwargs: dict[str, Any] = {
                "limit": self.page_size,
                "_preload_content": False,
                "_request_timeout": self.request_timeout_s,
            }
            if token:
                kwargs["_continue"] = token
            try:
                resp = self.list_fn(**kwargs)
            except ApiException as e:
                if e.status == GONE:  # the continue token expired: start the list over
                    items, token, rv = [], None, ""
                    continue
                raise
            page = json.loads(resp.data)
            meta = page.get("metadata") or {}
            items.extend(page.get("items") or [])
            rv = rv or str(meta.get("resourceVersion") or "")
            token = meta.get("continue")
            if not token:
                break
        self.state.replace(self.resource, items)
        self._rv = rv
        self.stats.lists += 1
        self.stats.resource_version = rv
        self.synced.set()

    def _watch(self) -> None:
        """Stream events from our resourceVersion until the server ends the watch."""
        timeout = int(self.watch_timeout_s * (1 + random.random()))  # spread reconnects, as client-go
        try:
            resp = self.list_fn(
                watch=True,
                resource_version=self._rv,
                allow_watch_bookmarks=True,
                timeout_seconds=timeout,
                _preload_content=False,
                _request_timeout=(self.request_timeout_s, timeout + self.request_timeout_s),
            )
        except ApiException as e:
            if e.status == GONE:
                raise ResourceExpired() from e
            raise
        self._resp = resp
        try:
            if self._stop.is_set():
                return
            for line in iter_resp_lines(resp):
                if not line:
                    continue
                self._event(json.loads(line))
                if self._stop.is_set():
                    return
        finally:
            self._resp = None
            resp.release_conn()

    def _event(self, event: dict) -> None:
        kind = event.get("type")
        obj = event.get("object") or {}
        if kind == "ERROR":
            code = obj.get("code")
            if code == GONE:
                raise ResourceExpired(obj.get("message", ""))
            raise ApiException(status=code or 500, reason=f"{obj.get('reason', '')}: {obj.get('message', '')}")
        rv = str((obj.get("metadata") or {}).get("resourceVersion") or "")
        if kind == "BOOKMARK":
            self.stats.bookmarks += 1
        else:
            self.state.apply(self.resource, str(kind), obj)
            self.stats.events += 1
        if rv:
            self._rv = rv
            self.stats.resource_version = rv


def _describe(e: Exception) -> str:
    if isinstance(e, ApiException):
        return f"HTTP {e.status} {e.reason}"
    return f"{type(e).__name__}: {e}"
