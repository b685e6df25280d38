"""Kafka end to end: kafka-python's real producer and consumer (child processes) over real TCP ->
eBPF, both ends -> the Kafka parser -> table store -> PxL over gRPC and the bundled px/kafka_data.

No Kafka server can be installed on these machines, so the broker is tests/kafka_spec_server.py:
a one-node responder whose responses are built from the protocol specification (Apache Kafka's
message definitions, through kafka-python's generated message classes). Every byte the client
sends is the real client library's; the broker advertises the API versions of a real Kafka release,
2.1 (Produce v7 / Fetch v10: classic encodings) or 3.9 (Produce v11 / Fetch v12, the highest
kafka-python fetches with: flexible versions, request header v2, compact encodings, tagged fields),
so the client negotiates what it would with that release.
Each test finds exactly its own (marked) client ids.
"""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from collections.abc import Iterator

import pytest

from tests.conftest import ROOT, Vizier
from tests.integration.protocol_harness import poll_rows

pytestmark = pytest.mark.ebpf

CLIENT = """
import sys
from kafka import KafkaConsumer, KafkaProducer
port, m = {port}, {m!r}
boot = f"127.0.0.1:{{port}}"
p = KafkaProducer(bootstrap_servers=boot, client_id="producer-" + m, linger_ms=0)
for i in range(3):
    p.send("orders-" + m, key=b"k%d" % i, value=("order-%d-" % i + m).encode()).get(timeout=10)
p.close()
q = KafkaProducer(bootstrap_servers=boot, client_id="fireforget-" + m, acks=0, enable_idempotence=False)
q.send("orders-" + m, value=b"no-ack-" + m.encode())
q.flush()
q.close()
c = KafkaConsumer("orders-" + m, bootstrap_servers=boot, client_id="consumer-" + m, group_id="group-" + m,
                  auto_offset_reset="earliest", enable_auto_commit=False, consumer_timeout_ms=10000)
got = []
for msg in c:
    got.append(msg.value.decode())
    if len(got) == 4:
        break
c.commit()
c.close()
assert sorted(got) == sorted(["order-%d-" % i + m for i in range(3)] + ["no-ack-" + m]), got
print("ok")
"""

# API keys the run must show on both ends (Pixie's kafka_events.beta req_cmd values).
PRODUCE, FETCH, LIST_OFFSETS, METADATA, OFFSET_COMMIT, OFFSET_FETCH = 0, 1, 2, 3, 8, 9
FIND_COORDINATOR, JOIN_GROUP, SYNC_GROUP, API_VERSIONS = 10, 11, 14, 18
WANT = {PRODUCE, FETCH, LIST_OFFSETS, METADATA, OFFSET_COMMIT, OFFSET_FETCH, FIND_COORDINATOR, JOIN_GROUP, SYNC_GROUP,
        API_VERSIONS}  # fmt: skip


@pytest.fixture(params=["2.1", "3.9"])
def broker(request: pytest.FixtureRequest) -> Iterator[tuple[int, str]]:
    """The spec-built broker on a free loopback port; yields (port, broker version)."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.kafka_spec_server", "--port", "0", "--broker-version", request.param],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        line = proc.stdout.readline() if proc.stdout else ""
        if not line.startswith("LISTENING "):
            proc.kill()
            pytest.fail(f"tests.kafka_spec_server did not start: {line!r} {proc.stderr.read() if proc.stderr else ''}")
        yield int(line.split()[1]), request.param
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def query(v: Vizier, script: str, want, what: str, timeout: float = 30) -> list[dict]:
    return poll_rows(v, script, want, what, timeout)


def kafka_rows(v: Vizier, m: str) -> list[dict]:
    script = (
        "import px\n"
        "df = px.DataFrame(table='kafka_events.beta', start_time='-5m')\n"
        f"df = df[px.contains(df.client_id, '{m}')]\n"
        "px.display(df, 'found')\n"
    )

    def complete(rows: list[dict]) -> bool:
        by_role = {role: {r["req_cmd"] for r in rows if r["trace_role"] == role} for role in (1, 2)}
        fetched = [r for r in rows if r["req_cmd"] == FETCH and '"size":0' not in r["resp"] and r["resp"]]
        return by_role[1] >= WANT and by_role[2] >= WANT and len(fetched) >= 2

    return query(v, script, complete, f"kafka_events.beta rows for {m}")  # type: ignore[return-value]


def test_kafka_producer_and_consumer_group_both_ends(vizier: Vizier, broker: tuple[int, str]):
    port, _version = broker
    m = uuid.uuid4().hex[:12]
    out = subprocess.run([sys.executable, "-c", CLIENT.format(port=port, m=m)], capture_output=True, text=True,
                         timeout=120, cwd=ROOT)  # fmt: skip
    assert out.returncode == 0 and "ok" in out.stdout, out.stderr[-4000:]

    rows = kafka_rows(vizier, m)
    client = [r for r in rows if r["trace_role"] == 1]
    server = [r for r in rows if r["trace_role"] == 2]
    assert all(r["remote_port"] == port and r["latency"] >= 0 for r in client), client
    assert all(r["local_port"] == port and r["remote_port"] != port for r in server), server
    assert {r["client_id"] for r in client} >= {f"producer-{m}", f"fireforget-{m}", f"consumer-{m}"}

    produces = [r for r in client if r["req_cmd"] == PRODUCE and r["client_id"] == f"producer-{m}"]
    assert len(produces) == 3, produces
    for r in produces:
        size = json.loads(r["req_body"])["topics"][0]["partitions"][0]["message_set"]["size"]
        assert 70 <= size <= 120, r  # one v2 record batch of one record (61-byte batch header + the record)
        assert r["req_body"] == (
            f'{{"transactional_id":"","acks":-1,"timeout_ms":30000,"topics":[{{"name":"orders-{m}",'
            f'"partitions":[{{"index":0,"message_set":{{"size":{size}}}}}]}}]}}'
        )
        resp = json.loads(r["resp"])
        part = resp["topics"][0]["partitions"][0]
        assert resp["topics"][0]["name"] == f"orders-{m}" and part["error_code"] == 0, r
        assert list(part) == ["index", "error_code", "base_offset", "log_append_time_ms", "log_start_offset",
                              "record_errors", "error_message"]  # fmt: skip
        assert r["latency"] > 0
    assert sorted(json.loads(r["resp"])["topics"][0]["partitions"][0]["base_offset"] for r in produces) == [0, 1, 2]

    [no_ack] = [r for r in client if r["req_cmd"] == PRODUCE and r["client_id"] == f"fireforget-{m}"]
    assert json.loads(no_ack["req_body"])["acks"] == 0 and no_ack["resp"] == "" and no_ack["latency"] == 0

    fetches = [json.loads(r["req_body"]) for r in client if r["req_cmd"] == FETCH]
    data = [json.loads(r["resp"]) for r in client if r["req_cmd"] == FETCH]
    # kafka-python fetches with v12 at most (flexible against 3.9, classic against 2.1): topics by name.
    assert all(t["name"] == f"orders-{m}" for f in fetches for t in f["topics"]), fetches
    assert all(f["rack_id"] == "" and f["forgotten_topics"] == [] for f in fetches), fetches
    sizes = [p["message_set"]["size"] for d in data for t in d["topics"] for p in t["partitions"]]
    assert sum(sizes) >= 4 * 70, data  # the four records came back in fetch responses
    assert all(list(d) == ["throttle_time_ms", "error_code", "session_id", "topics"] for d in data)

    joins = [(json.loads(r["req_body"]), json.loads(r["resp"])) for r in client if r["req_cmd"] == JOIN_GROUP]
    assert joins, client
    jreq, jresp = joins[0]
    assert jreq["group_id"] == f"group-{m}" and jreq["protocol_type"] == "consumer" and jreq["protocols"], jreq
    assert jreq["member_id"] == "" and jresp["error_code"] == 0 and jresp["leader"] == jresp["member_id"] != ""
    assert [x["member_id"] for x in jresp["members"]] == [jresp["member_id"]]
    assert all(req["member_id"] == jresp["member_id"] for req, _ in joins[1:]), joins  # a rejoin keeps its id
    syncs = [(json.loads(r["req_body"]), json.loads(r["resp"])) for r in client if r["req_cmd"] == SYNC_GROUP]
    assert len(syncs) == len(joins), syncs
    for (sreq, sresp), (_, jr) in zip(syncs, joins, strict=True):
        assert sreq["group_id"] == f"group-{m}" and sreq["member_id"] == jr["member_id"], sreq
        assert sreq["generation_id"] == jr["generation_id"] and sreq["assignments"] == [{"member_id": jr["member_id"]}]
        assert sresp["error_code"] == 0 and sresp["throttle_time_ms"] == 0
    metadata = [json.loads(r["req_body"]) for r in client if r["req_cmd"] == METADATA]
    assert any(t["name"] == f"orders-{m}" for md in metadata for t in md["topics"]), metadata
    assert all(r["req_body"] == "" and r["resp"] == "" for r in client if r["req_cmd"] in (API_VERSIONS, OFFSET_FETCH))

    # The broker's side saw the same requests: identical request bodies for each produce.
    assert sorted(r["req_body"] for r in server if r["client_id"] == f"producer-{m}" and r["req_cmd"] == PRODUCE) == (
        sorted(r["req_body"] for r in produces)
    )

    conns = query(
        vizier,
        "import px\ndf = px.DataFrame(table='conn_stats', start_time='-5m')\n"
        f"df = df[df.remote_port == {port}]\npx.display(df, 'c')\n",
        lambda rs: any(r["protocol"] == 10 for r in rs),
        "conn_stats rows with protocol 10 (Kafka)",
    )
    assert conns

    doc = subprocess.run([sys.executable, "-m", "pxtui.cli", "run", "px/kafka_data", "-o", "json", "--",
                          f"--body_filter=orders-{m}"], cwd=ROOT, capture_output=True, text=True, env=vizier.env(),
                         timeout=60)  # fmt: skip
    assert doc.returncode == 0, doc.stderr
    shown = json.loads(doc.stdout)["tables"]["kafka_data"]["rows"]
    assert {r["api"] for r in shown} >= {"Produce", "Metadata"}, shown
    assert all(f"orders-{m}" in r["req_body"] for r in shown)
    assert {r["client_id"] for r in shown if r["api"] == "Produce"} >= {f"producer-{m}"}
