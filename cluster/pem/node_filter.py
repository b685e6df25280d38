"""Which processes a PEM owns when several PEMs share one host to simulate a cluster.

On a real cluster each PEM sees only its node's processes. On one host, `pxtui up --pems N` gives
each simulated node its share: either the processes of its own network namespace (`--netns`, each
node a namespace with its own address), or, without namespaces, every N-th process by pid, so each
process belongs to exactly one node and a connection between two processes on different nodes is
seen from both ends by two PEMs, as it would be between two machines. Connection-state events
(addresses from the kernel's socket state changes) carry no meaningful pid and are always kept.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable
from typing import Any

CACHE_TTL_S = 30.0


def netns_inode(pid: int | str = "self", proc: str = "/proc") -> int | None:
    try:
        return os.stat(f"{proc}/{pid}/ns/net").st_ino
    except OSError:
        return None


class NodeFilter:
    def __init__(self, share: tuple[int, int] | None = None, netns: int | None = None, proc: str = "/proc") -> None:
        if share is not None and not (share[1] > 0 and 0 <= share[0] < share[1]):
            raise ValueError(f"node share {share[0]}/{share[1]}: need 0 <= index < count")
        self.share = share
        self.netns = netns
        self.proc = proc
        self._owned: dict[int, bool] = {}
        self._reset_at = time.monotonic() + CACHE_TTL_S

    @property
    def active(self) -> bool:
        return self.share is not None or self.netns is not None

    def owns(self, pid: int) -> bool:
        if self.share is not None and pid % self.share[1] != self.share[0]:
            return False
        if self.netns is None:
            return True
        now = time.monotonic()
        if now > self._reset_at:  # pids are reused; a stale answer lives at most this long
            self._owned.clear()
            self._reset_at = now + CACHE_TTL_S
        owned = self._owned.get(pid)
        if owned is None:
            owned = self._owned[pid] = netns_inode(pid, self.proc) == self.netns
        return owned

    def wrap(self, handle: Callable[[Iterable[Any]], None]) -> Callable[[Iterable[Any]], None]:
        """The tracer's event handler, passing on only the events of owned processes."""
        if not self.active:
            return handle
        from cluster.pem.sources.socket_events import ConnEvent, ConnKind

        owns = self.owns
        established = ConnKind.ESTABLISHED

        def filtered(events: Iterable[Any]) -> None:
            handle([ev for ev in events
                    if owns(ev.tgid) or (type(ev) is ConnEvent and ev.kind is established)])

        return filtered
