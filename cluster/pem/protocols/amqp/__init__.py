"""AMQP 0-9-1: infer (is it AMQP), frames (bytes -> frames), stitch (-> amqp_events)."""

from cluster.pem.protocols.amqp.frames import AmqpFrame, AmqpParser
from cluster.pem.protocols.amqp.infer import infer
from cluster.pem.protocols.amqp.stitch import AmqpStitcher

__all__ = ["AmqpFrame", "AmqpParser", "AmqpStitcher", "infer"]
