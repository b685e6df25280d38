"""What every Vizier role does to serve gRPC, and how engine errors become QueryError kinds.

Kept in one place because the PEM, the Kelvin and the broker each start a server behind the same
service-token check and each report a failed query the same way: a deadline is DEADLINE, a memory
budget is RESOURCE, any other engine error is RUNTIME, so clients treat them alike wherever they
happened.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent import futures

import grpc

from cluster.api import vizier_pb2 as pb

#: messages of up to 64 MiB between roles (result parts are ~4 MiB; metadata snapshots can be larger)
GRPC_OPTIONS = [("grpc.max_receive_message_length", 64 * 1024 * 1024),
                ("grpc.max_send_message_length", 64 * 1024 * 1024)]


def start_server(listen: str, advertise: str | None, interceptors: list[grpc.ServerInterceptor],
                 add_services: Callable[[grpc.Server], None], workers: int, name: str) -> tuple[grpc.Server, str]:
    """Start a server on ``listen`` (port 0: any free port); the address other roles should call."""
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=workers, thread_name_prefix=f"{name}-grpc"),
                         interceptors=interceptors, options=GRPC_OPTIONS)
    add_services(server)
    port = server.add_insecure_port(listen)
    if port == 0:
        raise OSError(f"cannot listen on {listen}")
    server.start()
    host = listen.rsplit(":", 1)[0]
    return server, advertise or f"{'127.0.0.1' if host in ('0.0.0.0', '[::]', '') else host}:{port}"


def query_error_kind(e: BaseException) -> int | None:
    """The QueryError kind of an engine error, None for anything else (a bug, to be logged)."""
    from cluster.pxl.errors import PxlCompileError, PxlDeadlineError, PxlResourceError, PxlRuntimeError

    if isinstance(e, PxlDeadlineError):
        return pb.QueryError.DEADLINE
    if isinstance(e, PxlResourceError):
        return pb.QueryError.RESOURCE
    if isinstance(e, PxlCompileError):
        return pb.QueryError.COMPILE
    if isinstance(e, PxlRuntimeError):
        return pb.QueryError.RUNTIME
    return None
