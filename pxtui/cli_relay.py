"""`pxtui relay`: a passthrough hop between clients and a Vizier (cluster/relay/).

It forwards calls without decoding them, so what it carries stays sealed end to end: results for
the client's key, and requests for the Vizier's key when the client has pinned it.
"""

from __future__ import annotations

import signal
import sys
import threading

import click


@click.command("relay")
@click.option("--listen", required=True, metavar="ADDR", help="Where clients connect, e.g. 0.0.0.0:51500.")
@click.option("--vizier", required=True, metavar="ADDR", help="The Vizier's broker, as this host reaches it.")
def relay(listen: str, vizier: str) -> None:
    """Relay clients' gRPC calls to a Vizier they cannot reach directly, without reading them.

    Clients point --vizier (or PXTUI_VIZIER) at the relay and keep their API key; to keep their scripts
    unreadable to the relay as well, they pin the Vizier's key (PXTUI_VIZIER_KEY, printed by
    `pxtui api-key create` on the Vizier's host)."""
    from cluster.relay import Relay, RelayError

    r = Relay(listen, vizier)
    try:
        port = r.start()
    except RelayError as e:
        click.echo(f"pxtui: {e}", err=True)
        sys.exit(2)
    host = listen.rsplit(":", 1)[0]
    click.echo(f"relaying {host}:{port} -> {vizier} (Ctrl-C stops)", err=True)
    if not r.upstream_ready(timeout=3):
        click.echo(f"pxtui: warning: the Vizier at {vizier} does not answer yet; calls fail until it does", err=True)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    try:
        stop.wait()
    finally:
        r.stop()
