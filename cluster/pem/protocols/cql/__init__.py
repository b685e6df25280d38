"""Cassandra CQL (native protocol v3-v5): infer, frames (bytes -> frames, v5 segments), body (Pixie's
renderings), stitch (-> cql_events)."""

from cluster.pem.protocols.cql.frames import CqlFrame, CqlParser
from cluster.pem.protocols.cql.infer import infer
from cluster.pem.protocols.cql.stitch import CqlStitcher

__all__ = ["CqlFrame", "CqlParser", "CqlStitcher", "infer"]
