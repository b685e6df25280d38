"""MongoDB wire protocol: infer (is it MongoDB), frames (bytes -> OP_MSG messages as Extended JSON),
stitch (-> mongodb_events)."""

from cluster.pem.protocols.mongodb.frames import MongoMessage, MongoParser
from cluster.pem.protocols.mongodb.infer import infer
from cluster.pem.protocols.mongodb.stitch import MongoStitcher

__all__ = ["MongoMessage", "MongoParser", "MongoStitcher", "infer"]
