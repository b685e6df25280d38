"""Request and response bodies -> the JSON text Pixie writes in kafka_events.beta req_body / resp.

Pixie decodes Produce, Fetch, JoinGroup and SyncGroup both ways and Metadata requests; every other
API is recorded with empty bodies, and so it is here. Field names, their order and the defaults of
fields a version lacks are Pixie's (its opcodes/*.h ``ToJSON``), for example a produce request
``{"transactional_id":"","acks":1,"timeout_ms":1500,"topics":[{"name":"foo","partitions":[{"index":0,
"message_set":{"size":74}}]}]}``; the layouts per version are Kafka's message definitions
(clients/src/main/resources/common/message/*.json), including the versions Pixie predates:

* Produce v13 and Fetch v13+ name topics by id: ``"topic_id"`` (Kafka's base64 Uuid) comes before
  ``"name"``, which is then empty, as Pixie renders Fetch topic ids.
* ``message_set.size`` is the record set's byte count (Pixie reports the compact length, one more,
  in flexible versions); the record batches themselves are not rendered (Pixie omits them too).
* Fetch v15+ moved replica_id into a tagged field: it reads as -1, a consumer's value.

A body that does not follow its layout raises :class:`~.wire.Malformed`; the caller counts it.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from cluster.pem.protocols.kafka import apis
from cluster.pem.protocols.kafka.wire import Reader

dumps = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode
Obj = dict[str, Any]


def _array(r: Reader, item: Callable[[], Any], nullable: bool = False) -> list[Any]:
    return [item() for _ in range(r.array_len(nullable))]


def _topic(r: Reader, v: int, obj: Obj, by_id_from: int = 13) -> None:
    """A topic's identity: its name, or (from ``by_id_from``) its id."""
    if v >= by_id_from:
        obj["topic_id"] = r.uuid()
        obj["name"] = ""
    else:
        obj["name"] = r.string()


# --- Produce (0) -----------------------------------------------------------------------------------


def produce_request(r: Reader, v: int) -> Obj:
    out: Obj = {"transactional_id": r.string(nullable=True) if v >= 3 else ""}
    out["acks"] = r.int16()
    out["timeout_ms"] = r.int32()

    def partition() -> Obj:
        p = {"index": r.int32(), "message_set": {"size": r.blob_size()}}
        r.tags()
        return p

    def topic() -> Obj:
        t: Obj = {}
        _topic(r, v, t)
        t["partitions"] = _array(r, partition)
        r.tags()
        return t

    out["topics"] = _array(r, topic)
    r.tags()
    return out


def produce_response(r: Reader, v: int) -> Obj:
    def record_error() -> Obj:
        e = {"batch_index": r.int32(), "error_message": r.string(nullable=True)}
        r.tags()
        return e

    def partition() -> Obj:
        p: Obj = {"index": r.int32(), "error_code": r.int16(), "base_offset": r.int64()}
        p["log_append_time_ms"] = r.int64() if v >= 2 else -1
        p["log_start_offset"] = r.int64() if v >= 5 else 0
        p["record_errors"] = _array(r, record_error) if v >= 8 else []
        p["error_message"] = r.string(nullable=True) if v >= 8 else ""
        r.tags()
        return p

    def topic() -> Obj:
        t: Obj = {}
        _topic(r, v, t)
        t["partitions"] = _array(r, partition)
        r.tags()
        return t

    out: Obj = {"topics": _array(r, topic)}
    out["throttle_time_ms"] = r.int32() if v >= 1 else 0
    r.tags()
    return out


# --- Fetch (1) -------------------------------------------------------------------------------------


def fetch_request(r: Reader, v: int) -> Obj:
    out: Obj = {"replica_id": r.int32() if v <= 14 else -1}
    r.int32()  # max_wait_ms
    r.int32()  # min_bytes
    if v >= 3:
        r.int32()  # max_bytes
    if v >= 4:
        r.int8()  # isolation_level
    out["session_id"] = r.int32() if v >= 7 else 0
    out["session_epoch"] = r.int32() if v >= 7 else -1

    def partition() -> Obj:
        p: Obj = {"index": r.int32()}
        p["current_leader_epoch"] = r.int32() if v >= 9 else -1
        p["fetch_offset"] = r.int64()
        p["last_fetched_epoch"] = r.int32() if v >= 12 else -1
        p["log_start_offset"] = r.int64() if v >= 5 else -1
        p["partition_max_bytes"] = r.int32()
        r.tags()
        return p

    def topic() -> Obj:
        t: Obj = {}
        _topic(r, v, t)
        t["partitions"] = _array(r, partition)
        r.tags()
        return t

    def forgotten() -> Obj:
        t: Obj = {}
        _topic(r, v, t)
        t["partitions_indices"] = _array(r, r.int32)  # sic: Pixie's key
        r.tags()
        return t

    out["topics"] = _array(r, topic)
    out["forgotten_topics"] = _array(r, forgotten) if v >= 7 else []
    out["rack_id"] = r.string() if v >= 11 else ""
    r.tags()
    return out


def fetch_response(r: Reader, v: int) -> Obj:
    out: Obj = {"throttle_time_ms": r.int32() if v >= 1 else 0}
    out["error_code"] = r.int16() if v >= 7 else 0
    out["session_id"] = r.int32() if v >= 7 else 0

    def aborted() -> Obj:
        a = {"producer_id": r.int64(), "first_offset": r.int64()}
        r.tags()
        return a

    def partition() -> Obj:
        p: Obj = {"index": r.int32(), "error_code": r.int16(), "high_watermark": r.int64()}
        p["last_stable_offset"] = r.int64() if v >= 4 else -1
        p["log_start_offset"] = r.int64() if v >= 5 else -1
        p["aborted_transactions"] = _array(r, aborted, nullable=True) if v >= 4 else []
        p["preferred_read_replica"] = r.int32() if v >= 11 else -1
        p["message_set"] = {"size": r.blob_size()}
        r.tags()
        return p

    def topic() -> Obj:
        t: Obj = {}
        _topic(r, v, t)
        t["partitions"] = _array(r, partition)
        r.tags()
        return t

    out["topics"] = _array(r, topic)
    r.tags()
    return out


# --- Metadata (3): requests only, as in Pixie --------------------------------------------------------


def metadata_request(r: Reader, v: int) -> Obj:
    def topic() -> Obj:
        t = {"topic_id": r.uuid() if v >= 10 else "", "name": r.string(nullable=v >= 10)}
        r.tags()
        return t

    out: Obj = {"topics": _array(r, topic, nullable=v >= 1)}
    out["allow_auto_topic_creation"] = r.boolean() if v >= 4 else False
    out["include_cluster_authorized_operations"] = r.boolean() if 8 <= v <= 10 else False
    out["include_topic_authorized_operations"] = r.boolean() if v >= 8 else False
    r.tags()
    return out


# --- JoinGroup (11) and SyncGroup (14) ---------------------------------------------------------------


def join_group_request(r: Reader, v: int) -> Obj:
    out: Obj = {"group_id": r.string(), "session_timeout_ms": r.int32()}
    out["rebalance_timeout_ms"] = r.int32() if v >= 1 else -1
    out["member_id"] = r.string()
    out["group_instance_id"] = r.string(nullable=True) if v >= 5 else ""
    out["protocol_type"] = r.string()

    def protocol() -> Obj:
        p = {"protocol": r.string()}
        r.blob_size()  # metadata
        r.tags()
        return p

    out["protocols"] = _array(r, protocol)
    if v >= 8:
        r.string(nullable=True)  # reason
    r.tags()
    return out


def join_group_response(r: Reader, v: int) -> Obj:
    out: Obj = {"throttle_time_ms": r.int32() if v >= 2 else 0, "error_code": r.int16(), "generation_id": r.int32()}
    out["protocol_type"] = r.string(nullable=True) if v >= 7 else ""
    out["protocol_name"] = r.string(nullable=v >= 7)
    out["leader"] = r.string()
    if v >= 9:
        r.boolean()  # skip_assignment
    out["member_id"] = r.string()

    def member() -> Obj:
        m = {"member_id": r.string(), "group_instance_id": r.string(nullable=True) if v >= 5 else ""}
        r.blob_size()  # metadata
        r.tags()
        return m

    out["members"] = _array(r, member)
    r.tags()
    return out


def sync_group_request(r: Reader, v: int) -> Obj:
    out: Obj = {"group_id": r.string(), "generation_id": r.int32(), "member_id": r.string()}
    out["group_instance_id"] = r.string(nullable=True) if v >= 3 else ""
    out["protocol_type"] = r.string(nullable=True) if v >= 5 else ""
    out["protocol_name"] = r.string(nullable=True) if v >= 5 else ""

    def assignment() -> Obj:
        a = {"member_id": r.string()}
        r.blob_size()  # assignment
        r.tags()
        return a

    out["assignments"] = _array(r, assignment)
    r.tags()
    return out


def sync_group_response(r: Reader, v: int) -> Obj:
    out: Obj = {"throttle_time_ms": r.int32() if v >= 1 else 0, "error_code": r.int16()}
    out["protocol_type"] = r.string(nullable=True) if v >= 5 else ""
    out["protocol_name"] = r.string(nullable=True) if v >= 5 else ""
    r.blob_size()  # assignment
    r.tags()
    return out


Decoder = Callable[[Reader, int], Obj]
REQUESTS: dict[int, Decoder] = {
    apis.PRODUCE: produce_request,
    apis.FETCH: fetch_request,
    apis.METADATA: metadata_request,
    apis.JOIN_GROUP: join_group_request,
    apis.SYNC_GROUP: sync_group_request,
}
RESPONSES: dict[int, Decoder] = {
    apis.PRODUCE: produce_response,
    apis.FETCH: fetch_response,
    apis.JOIN_GROUP: join_group_response,
    apis.SYNC_GROUP: sync_group_response,
}
