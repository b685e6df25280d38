"""MQTT 3.1/3.1.1/5.0: infer (is it MQTT), frames (bytes -> packets), stitch (-> mqtt_events)."""

from cluster.pem.protocols.mqtt.frames import MqttPacket, MqttParser
from cluster.pem.protocols.mqtt.infer import infer
from cluster.pem.protocols.mqtt.stitch import MqttStitcher

__all__ = ["MqttPacket", "MqttParser", "MqttStitcher", "infer"]
