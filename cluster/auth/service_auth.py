"""Service JWTs on the wire: every call between Vizier roles carries one, every role checks it.

The broker's AgentRegistry accepts only tokens meant for "pxtui-broker"; a PEM's AgentService only
tokens meant for "pxtui-pem"; a Kelvin's KelvinService only those meant for "pxtui-kelvin". A server
interceptor refuses anything else with UNAUTHENTICATED before a handler runs, so no method can
forget the check. Tokens are cached by the caller for a fraction of
their lifetime: signing is cheap, but a query fans out to every agent.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

import grpc

from cluster.auth.service_tokens import ServiceTokens, TokenError

log = logging.getLogger(__name__)

SERVICE_TOKEN_HEADER = "x-pxtui-service-token"
BROKER_AUDIENCE = "pxtui-broker"
PEM_AUDIENCE = "pxtui-pem"
KELVIN_AUDIENCE = "pxtui-kelvin"

#: gRPC method prefix -> the audience its tokens must name
PROTECTED: dict[str, str] = {
    "/pxtui.agent.AgentRegistry/": BROKER_AUDIENCE,
    "/pxtui.agent.AgentService/": PEM_AUDIENCE,
    "/pxtui.agent.KelvinService/": KELVIN_AUDIENCE,
}


class ServiceAuthInterceptor(grpc.ServerInterceptor):
    """Refuses calls to the inter-role services without a valid token for this role."""

    def __init__(self, tokens: ServiceTokens) -> None:
        self.tokens = tokens

    def intercept_service(self, continuation: Callable[[Any], Any], details: Any) -> Any:
        method: str = details.method
        audience = next((aud for prefix, aud in PROTECTED.items() if method.startswith(prefix)), None)
        if audience is None:
            return continuation(details)
        token = dict(details.invocation_metadata or ()).get(SERVICE_TOKEN_HEADER)
        handler = continuation(details)
        try:
            self.tokens.verify(token, audience)
        except TokenError as e:
            log.warning("refused %s: %s", method, e)  # the reason only; never the token
            return _refusal(handler, f"{method}: {e}")
        return handler


def _refusal(handler: grpc.RpcMethodHandler | None, message: str) -> grpc.RpcMethodHandler | None:
    """A handler of the same kind as the real one that answers UNAUTHENTICATED before any work."""
    if handler is None:
        return None

    def abort(_request: Any, context: grpc.ServicerContext) -> Any:
        context.abort(grpc.StatusCode.UNAUTHENTICATED, message)

    make = grpc.unary_stream_rpc_method_handler if handler.response_streaming else grpc.unary_unary_rpc_method_handler
    return make(abort, request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer)


class TokenSource:
    """Tokens for calls to one audience, re-issued when half their lifetime has passed."""

    def __init__(self, tokens: ServiceTokens, audience: str) -> None:
        self.tokens = tokens
        self.audience = audience
        self._lock = threading.Lock()
        self._token = ""
        self._renew_at = 0.0

    def metadata(self) -> tuple[tuple[str, str], ...]:
        now = time.monotonic()
        with self._lock:
            if now >= self._renew_at:
                self._token = self.tokens.issue(self.audience)
                self._renew_at = now + self.tokens.ttl_s / 2
            return ((SERVICE_TOKEN_HEADER, self._token),)
