"""What every protocol's end-to-end test needs: real peers in child processes, rows polled through
the real PxL path of the session's Vizier, and the CLI's JSON.

The traffic must not come from the test process (the tests and the Vizier share nothing but the
kernel), and rows arrive a flush or two after the traffic, so tests poll with a deadline.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from collections.abc import Callable, Sequence

import pytest

from tests.util import as_rows
from tests.vizier_proc import ROOT, Vizier, wait_until


def require(server: str, port: int, start: str) -> None:
    """Fail (never skip) with the command that starts a loopback server the test needs."""
    try:
        socket.create_connection(("127.0.0.1", port), timeout=2).close()
    except OSError:
        pytest.fail(f"{server} is not listening on 127.0.0.1:{port}; start it with: {start}")


def child(code: str) -> str:
    """Run client code in a child process; its stdout."""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    return out.stdout


def cli_json(v: Vizier, *args: str) -> dict:
    """`pxtui ARGS` against the Vizier, its -o json output parsed."""
    out = subprocess.run([sys.executable, "-m", "pxtui.cli", *args], cwd=ROOT, capture_output=True, text=True,
                         env=v.env(), timeout=60)  # fmt: skip
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def table_script(table: str, filters: Sequence[str] = (), role: int | None = None) -> str:
    """A PxL script showing ``table``'s rows of the last 5 minutes passing every filter (on df)."""
    lines = ["import px", f"df = px.DataFrame(table='{table}', start_time='-5m')"]
    lines += [f"df = df[{f}]" for f in filters]
    if role is not None:
        lines.append(f"df = df[df.trace_role == {role}]")
    return "\n".join([*lines, "px.display(df, 'found')", ""])


def poll_rows(
    v: Vizier, script: str, want: int | Callable[[list[dict]], bool], what: str, timeout: float = 20
) -> list[dict]:
    """Run ``script`` until its rows satisfy ``want`` (a row count, or a predicate); the rows."""
    client = v.client()
    seen: list[dict] = []
    ok = (lambda rows: len(rows) >= want) if isinstance(want, int) else want
    try:

        def ready() -> list[dict] | None:
            res = client.execute(script)
            seen[:] = as_rows(res.tables[0][1]) if res.tables else []
            return seen if ok(seen) else None

        try:
            return wait_until(ready, timeout, what)  # type: ignore[return-value]
        except AssertionError as e:
            raise AssertionError(f"{e}; rows found: {json.dumps(seen, default=str)[:4000]}") from None
    finally:
        client.close()
