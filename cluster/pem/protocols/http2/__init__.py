"""HTTP/2 and gRPC from the syscall stream: infer (preface, first SETTINGS, mid-stream HEADERS),
frames (framing + HPACK per direction), stitch (streams by id -> http_events, major_version 2),
grpc (length-prefixed protobuf messages as text)."""

from cluster.pem.protocols.http2.frames import H2Parser
from cluster.pem.protocols.http2.infer import PREFACE, infer
from cluster.pem.protocols.http2.stitch import UNDECODED_KEY, Http2Stitcher

__all__ = ["PREFACE", "UNDECODED_KEY", "H2Parser", "Http2Stitcher", "infer"]
