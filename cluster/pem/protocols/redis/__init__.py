"""Redis (RESP2/RESP3): infer (is it a Redis request), frames (bytes -> messages), stitch (-> redis_events)."""

from cluster.pem.protocols.redis.frames import RedisMessage, RespParser, format_args
from cluster.pem.protocols.redis.infer import infer
from cluster.pem.protocols.redis.stitch import PUSH_PUB, RedisStitcher

__all__ = ["PUSH_PUB", "RedisMessage", "RedisStitcher", "RespParser", "format_args", "infer"]
