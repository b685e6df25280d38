"""A gRPC relay that forwards every call to a Vizier without decoding a single message.

Pixie Cloud sits between its CLI and each Vizier as a passthrough proxy; this is that hop. Every
method is served by one generic handler over raw bytes (no serializer on either side), so the relay
needs no .proto and cannot read what it carries: results are sealed for the client's key, and a
client that pinned the Vizier's key seals its request for the Vizier (cluster/auth/e2e.py).

Per call it forwards the client's metadata (the API key header among it), the remaining deadline,
the Vizier's initial and trailing metadata, its status and details, and a client's cancellation.
Streams of any shape pass through message by message, so a long result never sits in the relay.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator, Sequence
from concurrent import futures

import grpc

log = logging.getLogger(__name__)

# tap(direction, method, message): every raw message the relay forwards, "request" or "response".
Tap = Callable[[str, str, bytes], None]
Metadata = Sequence[tuple[str, str | bytes]]

MAX_MESSAGE_BYTES = 256 * 1024 * 1024  # a passthrough: the endpoints enforce their own limits
_HOP_BY_HOP = {"user-agent", "te", "content-type", "host", "content-length", "connection"}
_NO_DEADLINE_S = 1e8  # grpc reports "no deadline" as a huge remaining time


class RelayError(RuntimeError):
    """The relay cannot start (the listen address is taken or invalid)."""


def _forwardable(md: Metadata | None) -> list[tuple[str, str | bytes]]:
    """End-to-end metadata only: pseudo-headers, grpc-* and hop-by-hop headers belong to each hop."""
    return [(k, v) for k, v in md or () if not k.startswith((":", "grpc-")) and k not in _HOP_BY_HOP]


class _Forward(grpc.GenericRpcHandler):
    def __init__(self, channel: grpc.Channel, upstream: str, tap: Tap | None):
        self._channel = channel
        self._upstream = upstream
        self._tap = tap

    def service(self, handler_call_details: grpc.HandlerCallDetails) -> grpc.RpcMethodHandler:
        method = handler_call_details.method
        # stream-stream fits every cardinality on the wire: a unary call is a stream of one message.
        return grpc.stream_stream_rpc_method_handler(
            lambda requests, context: self._call(method, requests, context),
            request_deserializer=None,
            response_serializer=None,
        )

    def _tapped(self, direction: str, method: str, messages: Iterator[bytes]) -> Iterator[bytes]:
        for m in messages:
            if self._tap is not None:
                self._tap(direction, method, m)
            yield m

    def _call(self, method: str, requests: Iterator[bytes], context: grpc.ServicerContext) -> Iterator[bytes]:
        remaining = context.time_remaining()
        timeout = remaining if remaining is not None and remaining < _NO_DEADLINE_S else None
        call = self._channel.stream_stream(method, request_serializer=None, response_deserializer=None)(
            self._tapped("request", method, requests),
            metadata=_forwardable(context.invocation_metadata()),
            timeout=timeout,
        )
        context.add_callback(call.cancel)  # the client went away or its deadline passed: stop upstream too
        try:
            context.send_initial_metadata(_forwardable(call.initial_metadata()))
            yield from self._tapped("response", method, call)
            context.set_trailing_metadata(_forwardable(call.trailing_metadata()))
        except grpc.RpcError as e:
            code, details = e.code(), e.details() or ""
            context.set_trailing_metadata(_forwardable(e.trailing_metadata()))
            if code == grpc.StatusCode.UNAVAILABLE:
                details = f"the relay cannot reach the Vizier at {self._upstream}: {details}"
            context.abort(code, details)


class Relay:
    """Listen on `listen`, forward to the Vizier at `upstream`. start() returns the bound port."""

    def __init__(self, listen: str, upstream: str, tap: Tap | None = None, max_workers: int = 32):
        self.listen = listen
        self.upstream = upstream
        opts = [
            ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
            ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
        ]
        self._channel = grpc.insecure_channel(upstream, options=opts)
        # no SO_REUSEPORT: a second relay on a taken address must fail, not share (and split) its traffic
        self._server = grpc.server(
            futures.ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="relay"),
            options=[*opts, ("grpc.so_reuseport", 0)],
        )
        self._server.add_generic_rpc_handlers((_Forward(self._channel, upstream, tap),))
        self._stopped = threading.Event()
        self.port = 0

    def start(self) -> int:
        try:
            self.port = self._server.add_insecure_port(self.listen)
        except RuntimeError as e:
            raise RelayError(f"cannot listen on {self.listen}: {e}") from e
        if not self.port:
            raise RelayError(f"cannot listen on {self.listen}: the address is in use or invalid")
        self._server.start()
        log.info("relaying %s -> %s", self.listen, self.upstream)
        return self.port

    def upstream_ready(self, timeout: float) -> bool:
        """Whether the Vizier answers at the transport level within `timeout` (the relay works either way)."""
        try:
            grpc.channel_ready_future(self._channel).result(timeout=timeout)
            return True
        except grpc.FutureTimeoutError:
            return False

    def stop(self, grace: float = 2.0) -> None:
        if self._stopped.is_set():
            return
        self._stopped.set()
        self._server.stop(grace).wait()
        self._channel.close()

    def __enter__(self) -> Relay:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
