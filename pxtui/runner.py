"""The contract between the TUI and wherever the data comes from.

The TUI never talks gRPC itself: it is handed a `ScriptRunner` and calls it from a worker thread.
This keeps the widgets testable with a fake runner that returns Arrow tables, and lets the
gRPC-backed client (pxtui/client.py) and an embedded in-process runner be swapped freely.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

import pyarrow as pa

from pxtui.scripts import Script


@dataclass
class ScriptResult:
    """Everything one run of a script produced.

    `tables` is a list, not a dict, because order matters for display when a script has no
    vis.json (script mode shows the tables in the order they were returned), and because a
    name may legitimately come back from `px.display` more than once in Pixie.
    """

    tables: list[tuple[str, pa.Table]]
    warnings: list[str] = field(default_factory=list)
    elapsed_s: float = 0.0

    def table(self, name: str) -> pa.Table | None:
        """The first table with this output name, or None when the script did not return it."""
        for n, t in self.tables:
            if n == name:
                return t
        return None


@dataclass
class ClusterStatus:
    """What the status line shows about the cluster, fetched after every run.

    `events_lost` is counted, never hidden (perf buffer or ring buffer drops on the PEMs);
    `window` is the (start, end) time in ns since the epoch of the data the tables cover,
    or None when the cluster does not know yet.
    """

    agents_healthy: int
    agents_total: int
    events_lost: int
    window: tuple[int, int] | None = None


class ScriptError(Exception):
    """The script failed to compile or run; the message already says where ("L3 : C5  ...")."""


class VizierUnavailable(Exception):
    """The query broker could not be reached or refused us (down, auth, TLS, deadline)."""


@runtime_checkable
class ScriptRunner(Protocol):
    """Runs a script against a cluster. Implementations may block: the TUI calls them from a
    worker thread, never from the event loop."""

    def run(self, script: Script, args: dict[str, str]) -> ScriptResult:
        """Run `script` with the user's vis arguments (unresolved: defaults are the runner's job).

        Raises ScriptError or VizierUnavailable; anything else is treated as a bug but the TUI
        still survives it.
        """
        ...

    def status(self) -> ClusterStatus:
        """Agent health and loss counters for the status line; cheap, called after each run."""
        ...
