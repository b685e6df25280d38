"""End to end, all real: pika and paho-mqtt (and mosquitto_pub) in child processes -> the real
RabbitMQ (127.0.0.1:5672, guest/guest) and Mosquitto (127.0.0.1:1883) -> eBPF -> the AMQP and MQTT
parsers -> table store -> PxL over gRPC, and the bundled px/amqp_data and px/mqtt_data scripts
through the CLI. Each test finds its own (marked) traffic, client side (trace_role 1).

The brokers must run: a missing one fails the test with the command that starts it.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import uuid

import pytest

from tests.conftest import ROOT, Vizier
from tests.integration.protocol_harness import child, poll_rows, table_script

pytestmark = pytest.mark.ebpf

SERVERS = {
    "RabbitMQ": (5672, "rabbitmq-server -detached"),
    "Mosquitto": (1883, "mosquitto -d -p 1883"),
}


def require(server: str) -> None:
    port, start = SERVERS[server]
    try:
        socket.create_connection(("127.0.0.1", port), timeout=2).close()
    except OSError:
        pytest.fail(f"{server} is not listening on 127.0.0.1:{port}; start it with: {start}")


def query(v: Vizier, table: str, where: str, want: int, what: str) -> list[dict]:
    """Rows of ``table`` matching the PxL filter ``where`` (on df), client side, waiting for ``want``."""
    return poll_rows(v, table_script(table, [where], role=1), want, f"{want} {table} rows for {what}")


def run_script(v: Vizier, script: str, *args: str) -> dict:
    out = subprocess.run([sys.executable, "-m", "pxtui.cli", "run", script, "-o", "json", "--", *args], cwd=ROOT,
                         capture_output=True, text=True, env=v.env(), timeout=60)  # fmt: skip
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def method(r: dict) -> tuple[int, int, int, int, int]:
    return r["frame_type"], r["req_class_id"], r["req_method_id"], r["resp_class_id"], r["resp_method_id"]


def test_amqp_pika_session(vizier: Vizier):
    require("RabbitMQ")
    m = uuid.uuid4().hex
    child(
        "import pika\n"
        "params = pika.ConnectionParameters('127.0.0.1', 5672, credentials=pika.PlainCredentials('guest', 'guest'))\n"
        "c = pika.BlockingConnection(params)\n"
        "ch = c.channel()\n"
        f"ch.queue_declare(queue='pxtui-{m}', auto_delete=True)\n"
        f"ch.basic_publish(exchange='', routing_key='pxtui-{m}', body=b'body-{m}',\n"
        "                 properties=pika.BasicProperties(content_type='text/plain', delivery_mode=1))\n"
        f"method, props, body = ch.basic_get(queue='pxtui-{m}', auto_ack=True)\n"
        f"while method is None:\n"
        f"    method, props, body = ch.basic_get(queue='pxtui-{m}', auto_ack=True)\n"
        f"assert body == b'body-{m}', body\n"
        "try:\n"
        f"    ch.queue_declare(queue='missing-{m}', passive=True)\n"
        "except pika.exceptions.ChannelClosedByBroker as e:\n"
        "    assert e.reply_code == 404\n"
        "c.close()\n"
    )
    where = f"px.contains(df.req_msg, '{m}') or px.contains(df.resp_msg, '{m}')"
    found = query(vizier, "amqp_events", where, 6, m)
    by_method = {method(r): r for r in found}
    declare = by_method[(1, 50, 10, 50, 11)]  # queue.declare / declare-ok
    assert json.loads(declare["req_msg"])["queue"] == f"pxtui-{m}"
    assert json.loads(declare["resp_msg"])["queue"] == f"pxtui-{m}" and declare["latency"] > 0
    assert json.loads(by_method[(1, 60, 40, 0, 0)]["req_msg"])["routing_key"] == f"pxtui-{m}"  # basic.publish
    bodies = {(r["req_msg"] != "", json.loads(r["req_msg"] or r["resp_msg"])["body"]) for r in found
              if r["frame_type"] == 3}  # fmt: skip
    assert bodies == {(True, f"body-{m}"), (False, f"body-{m}")}  # published, then fetched by basic.get
    assert (1, 60, 70, 60, 71) in by_method  # basic.get / get-ok
    failed = by_method[(1, 50, 10, 20, 40)]  # passive declare answered by channel.close
    assert json.loads(failed["resp_msg"])["reply_code"] == 404
    assert all(r["remote_port"] == 5672 and r["channel"] == 1 for r in found)

    # The whole connection: the handshake pairs as Pixie pairs it, heartbeat-free, no credentials.
    port = declare["local_port"]
    conn = query(vizier, "amqp_events", f"df.local_port == {port}", 10, f"local port {port}")
    kinds = {method(r) for r in conn}
    assert {(1, 10, 11, 10, 10), (1, 10, 31, 10, 30), (1, 10, 40, 10, 41), (1, 20, 10, 20, 11)} <= kinds
    assert (1, 10, 50, 10, 51) in kinds  # connection.close / close-ok
    assert not any("guest\\u0000guest" in r["req_msg"] or "\\u0000guest" in r["req_msg"] for r in conn)

    doc = run_script(vizier, "px/amqp_data", f"--body_filter={m}", "--source_filter=")
    rows = doc["tables"]["amqp_data"]["rows"]
    assert {r["req_method"] for r in rows} >= {"QueueDeclare", "BasicPublish"}, rows


def _paho_session(m: str, version: str) -> str:
    return (
        "import threading, paho.mqtt.client as mqtt\n"
        f"c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id='pxtui-{version}-{m}', protocol=mqtt.{version})\n"
        "got, done = [], threading.Event()\n"
        "def on_message(client, userdata, msg):\n"
        "    got.append(msg.payload)\n"
        "    if len(got) == 3: done.set()\n"
        "c.on_message = on_message\n"
        "c.connect('127.0.0.1', 1883, keepalive=1)\n"
        "c.loop_start()\n"
        f"c.subscribe('pxtui/{m}/#', qos=2)[1]\n"
        "import time; time.sleep(0.3)\n"
        "for qos in (0, 1, 2):\n"
        f"    c.publish(f'pxtui/{m}/q{{qos}}', f'msg-{m}-q{{qos}}'.encode(), qos=qos).wait_for_publish(5)\n"
        "assert done.wait(5), got\n"
        "time.sleep(2.2)  # idle past the keepalive: PINGREQ/PINGRESP\n"
        f"c.unsubscribe('pxtui/{m}/#')\n"
        "time.sleep(0.3)\n"
        "c.disconnect(); c.loop_stop()\n"
    )


@pytest.mark.parametrize("version", ["MQTTv311", "MQTTv5"])
def test_mqtt_paho_session(vizier: Vizier, version: str):
    require("Mosquitto")
    m = uuid.uuid4().hex
    child(_paho_session(m, version))
    [connect] = query(vizier, "mqtt_events", f"px.contains(df.req_payload, 'pxtui-{version}-{m}')", 1, "CONNECT")
    assert (connect["req_control_packet_type"], connect["resp_control_packet_type"]) == ("CONNECT", "CONNACK")
    level = 5 if version == "MQTTv5" else 4
    assert json.loads(connect["req_header_fields"])["protocol_level"] == level
    assert json.loads(connect["resp_header_fields"])["reason_code"] == 0 and connect["latency"] > 0
    port = connect["local_port"]
    last = f"df.local_port == {port} and df.req_control_packet_type == 'DISCONNECT'"
    query(vizier, "mqtt_events", last, 1, f"the DISCONNECT on local port {port}")  # the session's last packet
    found = query(vizier, "mqtt_events", f"df.local_port == {port}", 13, f"local port {port}")
    pairs = [(r["req_control_packet_type"], r["resp_control_packet_type"]) for r in found]
    for want in [("CONNECT", "CONNACK"), ("SUBSCRIBE", "SUBACK"), ("PUBLISH", ""), ("PUBLISH", "PUBACK"),
                 ("PUBLISH", "PUBREC"), ("PUBREL", "PUBCOMP"), ("PINGREQ", "PINGRESP"),
                 ("UNSUBSCRIBE", "UNSUBACK"), ("DISCONNECT", "")]:  # fmt: skip
        assert want in pairs, (want, pairs)
    published = {}
    for r in found:
        if r["req_control_packet_type"] == "PUBLISH":
            payload = json.loads(r["req_payload"])
            qos = json.loads(r["req_header_fields"])["qos"]
            published.setdefault(payload["publish_message"], set()).add((qos, r["resp_control_packet_type"]))
    # Each message goes out (client -> broker) and comes back (broker -> client), both acked per QoS.
    assert published[f"msg-{m}-q0"] == {(0, "")}
    assert published[f"msg-{m}-q1"] == {(1, "PUBACK")}
    assert published[f"msg-{m}-q2"] == {(2, "PUBREC")}
    assert sum(p == ("PUBLISH", "PUBREC") for p in pairs) == 2 and sum(p == ("PUBREL", "PUBCOMP") for p in pairs) == 2
    sub = next(r for r in found if r["req_control_packet_type"] == "SUBSCRIBE")
    assert json.loads(sub["req_payload"])["topic_filter"] == f"pxtui/{m}/#"
    assert json.loads(sub["resp_payload"])["reason_code"] == "2"
    assert all(r["remote_port"] == 1883 for r in found)

    doc = run_script(vizier, "px/mqtt_data", f"--body_filter={m}", "--source_filter=")
    rows = doc["tables"]["mqtt_data"]["rows"]
    assert {r["req_type"] for r in rows} >= {"CONNECT", "SUBSCRIBE", "PUBLISH", "UNSUBSCRIBE"}, rows


def test_mosquitto_pub_cli_v5(vizier: Vizier):
    require("Mosquitto")
    m = uuid.uuid4().hex
    out = subprocess.run(["mosquitto_pub", "-h", "127.0.0.1", "-p", "1883", "-V", "mqttv5", "-i", f"cli-{m}",
                          "-q", "1", "-t", f"pxtui/cli/{m}", "-m", f"cli-msg-{m}", "-D", "publish", "content-type",
                          "text/plain"], capture_output=True, text=True, timeout=30)  # fmt: skip
    assert out.returncode == 0, out.stderr
    found = query(vizier, "mqtt_events", f"px.contains(df.req_payload, '{m}')", 2, m)
    by_type = {r["req_control_packet_type"]: r for r in found}
    assert json.loads(by_type["CONNECT"]["req_payload"])["client_id"] == f"cli-{m}"
    pub = by_type["PUBLISH"]
    assert pub["resp_control_packet_type"] == "PUBACK"
    assert json.loads(pub["req_payload"]) == {"publish_message": f"cli-msg-{m}", "topic_name": f"pxtui/cli/{m}"}
    assert json.loads(pub["req_properties"]) == {"content_type": "text/plain"}
