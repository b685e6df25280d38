"""NATS client protocol: infer (is it NATS), frames (bytes -> messages), stitch (-> nats_events.beta)."""

from cluster.pem.protocols.nats.frames import NatsMessage, NatsParser
from cluster.pem.protocols.nats.infer import infer
from cluster.pem.protocols.nats.stitch import NatsStitcher

__all__ = ["NatsMessage", "NatsParser", "NatsStitcher", "infer"]
