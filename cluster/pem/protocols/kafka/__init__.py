"""Kafka: infer (is it Kafka), frames (bytes -> frames, bodies -> JSON), stitch (-> kafka_events.beta)."""

from cluster.pem.protocols.kafka.frames import KafkaFrame, KafkaParser
from cluster.pem.protocols.kafka.infer import infer
from cluster.pem.protocols.kafka.stitch import KafkaStitcher

__all__ = ["KafkaFrame", "KafkaParser", "KafkaStitcher", "infer"]
