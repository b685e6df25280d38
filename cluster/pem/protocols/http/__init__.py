"""HTTP/1.x: infer (does it look like HTTP), frames (bytes -> messages), stitch (-> http_events)."""

from cluster.pem.protocols.http.frames import DEFAULT_BODY_CAP, HttpMessage, HttpParser, decode_body
from cluster.pem.protocols.http.infer import METHODS, MessageKind, infer, role_for
from cluster.pem.protocols.http.stitch import HttpStitcher, headers_json

__all__ = [
    "DEFAULT_BODY_CAP",
    "METHODS",
    "HttpMessage",
    "HttpParser",
    "HttpStitcher",
    "MessageKind",
    "decode_body",
    "headers_json",
    "infer",
    "role_for",
]
