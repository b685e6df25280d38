"""The embedded Vizier: every role (PEM, Kelvin, query broker, metadata) in one process on this host.

`pxtui up` starts this module in the background; `--foreground` runs it attached. It exits with a
clear message, and status 1, when the eBPF side cannot load, rather than serving empty tables.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
from concurrent import futures

import grpc

from cluster import paths
from cluster.api import vizier_pb2_grpc as pb_grpc
from cluster.auth.api_keys import ApiKeyStore
from cluster.pem.agent import Pem, PemConfig
from cluster.vizier.broker import Broker

log = logging.getLogger("pxtui.vizier")


def serve(addr: str, config: PemConfig, ready: threading.Event | None = None,
          stop: threading.Event | None = None) -> int:
    paths.ensure_state_dir()
    keys = ApiKeyStore(paths.api_keys_file())
    pem = Pem(config)
    log.info("loading eBPF probes (BCC compiles them; this takes a few seconds)")
    try:
        pem.start()
    except Exception as e:
        log.error("cannot collect data: %s", e)
        print(f"pxtui vizier: cannot collect data: {e}", file=sys.stderr)
        return 1
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=8, thread_name_prefix="grpc"))
    pb_grpc.add_VizierServiceServicer_to_server(Broker(pem, keys), server)
    try:
        server.add_insecure_port(addr)
    except RuntimeError as e:
        pem.stop()
        print(f"pxtui vizier: cannot listen on {addr}: {e}", file=sys.stderr)
        return 1
    server.start()
    paths.pid_file().write_text(str(os.getpid()))
    paths.addr_file().write_text(addr)
    st = pem.status()
    log.info("vizier ready on %s: %d probes, kernel headers %s", addr, len(st.probes), st.kernel_headers)
    if ready is not None:
        ready.set()
    stop = stop or threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        if threading.current_thread() is threading.main_thread():
            signal.signal(sig, lambda *_: stop.set())
    stop.wait()
    log.info("stopping")
    server.stop(grace=2).wait()
    pem.stop()
    for f in (paths.pid_file(), paths.addr_file()):
        f.unlink(missing_ok=True)
    return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="pxtui-vizier", description=__doc__)
    p.add_argument("--addr", default=os.environ.get("PXTUI_VIZIER_LISTEN", paths.DEFAULT_ADDR))
    p.add_argument("--body-cap", type=int, default=int(os.environ.get("PXTUI_BODY_CAP", "512")))
    p.add_argument("--table-max-mb", type=int, default=256)
    p.add_argument("--conn-stats-period", type=float, default=10.0)
    a = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    cfg = PemConfig(body_cap=a.body_cap, table_max_bytes=a.table_max_mb * 1024 * 1024,
                    conn_stats_period_s=a.conn_stats_period)
    return serve(a.addr, cfg)


if __name__ == "__main__":
    sys.exit(main())
