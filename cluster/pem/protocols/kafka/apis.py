"""Kafka API keys: name, highest known version and the first flexible version of each.

The numbers come from Apache Kafka's message definitions (clients/src/main/resources/common/message/
*Request.json: ``validVersions`` and ``flexibleVersions``), inter-broker and KRaft APIs included, so a
connection between brokers frames as well as a client's. A flexible version (KIP-482) uses request
header v2 and response header v1 (both with tagged fields), compact strings, arrays and bytes.
ApiVersions is the exception: its response header stays v0 at every version, so that a client can
read the broker's answer before it knows which versions the broker speaks.

Versions above the known maximum are still framed (Kafka adds versions every release, and the frame
and header layout do not change) up to ``VERSION_SLACK`` above it; their bodies are not decoded.
"""

from __future__ import annotations

from typing import NamedTuple


class Api(NamedTuple):
    name: str
    max_version: int  # highest version in the message definitions this table was written from
    flexible_from: int  # first flexible version; -1 when no version is flexible


NO_FLEX = -1
VERSION_SLACK = 4

PRODUCE = 0
FETCH = 1
LIST_OFFSETS = 2
METADATA = 3
CONTROLLED_SHUTDOWN = 7
OFFSET_COMMIT = 8
OFFSET_FETCH = 9
FIND_COORDINATOR = 10
JOIN_GROUP = 11
HEARTBEAT = 12
LEAVE_GROUP = 13
SYNC_GROUP = 14
API_VERSIONS = 18

APIS: dict[int, Api] = {
    0: Api("Produce", 13, 9),
    1: Api("Fetch", 18, 12),
    2: Api("ListOffsets", 11, 6),
    3: Api("Metadata", 13, 9),
    4: Api("LeaderAndIsr", 7, 4),
    5: Api("StopReplica", 4, 2),
    6: Api("UpdateMetadata", 8, 6),
    7: Api("ControlledShutdown", 3, 3),
    8: Api("OffsetCommit", 10, 8),
    9: Api("OffsetFetch", 10, 6),
    10: Api("FindCoordinator", 6, 3),
    11: Api("JoinGroup", 9, 6),
    12: Api("Heartbeat", 4, 4),
    13: Api("LeaveGroup", 5, 4),
    14: Api("SyncGroup", 5, 4),
    15: Api("DescribeGroups", 6, 5),
    16: Api("ListGroups", 5, 3),
    17: Api("SaslHandshake", 1, NO_FLEX),
    18: Api("ApiVersions", 4, 3),
    19: Api("CreateTopics", 7, 5),
    20: Api("DeleteTopics", 6, 4),
    21: Api("DeleteRecords", 2, 2),
    22: Api("InitProducerId", 6, 2),
    23: Api("OffsetForLeaderEpoch", 4, 4),
    24: Api("AddPartitionsToTxn", 5, 3),
    25: Api("AddOffsetsToTxn", 4, 3),
    26: Api("EndTxn", 5, 3),
    27: Api("WriteTxnMarkers", 2, 1),
    28: Api("TxnOffsetCommit", 5, 3),
    29: Api("DescribeAcls", 3, 2),
    30: Api("CreateAcls", 3, 2),
    31: Api("DeleteAcls", 3, 2),
    32: Api("DescribeConfigs", 4, 4),
    33: Api("AlterConfigs", 2, 2),
    34: Api("AlterReplicaLogDirs", 2, 2),
    35: Api("DescribeLogDirs", 5, 2),
    36: Api("SaslAuthenticate", 2, 2),
    37: Api("CreatePartitions", 3, 2),
    38: Api("CreateDelegationToken", 3, 2),
    39: Api("RenewDelegationToken", 2, 2),
    40: Api("ExpireDelegationToken", 2, 2),
    41: Api("DescribeDelegationToken", 3, 2),
    42: Api("DeleteGroups", 2, 2),
    43: Api("ElectLeaders", 2, 2),
    44: Api("IncrementalAlterConfigs", 1, 1),
    45: Api("AlterPartitionReassignments", 1, 0),
    46: Api("ListPartitionReassignments", 0, 0),
    47: Api("OffsetDelete", 0, NO_FLEX),
    48: Api("DescribeClientQuotas", 1, 1),
    49: Api("AlterClientQuotas", 1, 1),
    50: Api("DescribeUserScramCredentials", 0, 0),
    51: Api("AlterUserScramCredentials", 0, 0),
    52: Api("Vote", 1, 0),
    53: Api("BeginQuorumEpoch", 1, 0),
    54: Api("EndQuorumEpoch", 1, 0),
    55: Api("DescribeQuorum", 2, 0),
    56: Api("AlterIsr", 3, 0),  # AlterPartition since Kafka 3.2; Pixie's enum keeps the old name
    57: Api("UpdateFeatures", 2, 0),
    58: Api("Envelope", 0, 0),
    59: Api("FetchSnapshot", 1, 0),
    60: Api("DescribeCluster", 2, 0),
    61: Api("DescribeProducers", 0, 0),
    62: Api("BrokerRegistration", 4, 0),
    63: Api("BrokerHeartbeat", 1, 0),
    64: Api("UnregisterBroker", 0, 0),
    65: Api("DescribeTransactions", 0, 0),
    66: Api("ListTransactions", 2, 0),
    67: Api("AllocateProducerIds", 0, 0),
    68: Api("ConsumerGroupHeartbeat", 1, 0),
    69: Api("ConsumerGroupDescribe", 1, 0),
    70: Api("ControllerRegistration", 0, 0),
    71: Api("GetTelemetrySubscriptions", 0, 0),
    72: Api("PushTelemetry", 0, 0),
    73: Api("AssignReplicasToDirs", 0, 0),
    74: Api("ListConfigResources", 1, 0),
    75: Api("DescribeTopicPartitions", 0, 0),
}
MAX_API_KEY = max(APIS)


def known(api_key: int, version: int) -> bool:
    """Is (api_key, version) something a Kafka peer sends (within the slack for newer versions)?"""
    api = APIS.get(api_key)
    return api is not None and 0 <= version <= api.max_version + VERSION_SLACK


def decodable(api_key: int, version: int) -> bool:
    """Is the body layout of this version known (not past the table's maximum)?"""
    api = APIS.get(api_key)
    return api is not None and 0 <= version <= api.max_version


def is_flexible(api_key: int, version: int) -> bool:
    api = APIS.get(api_key)
    return api is not None and api.flexible_from != NO_FLEX and version >= api.flexible_from


def response_header_flexible(api_key: int, version: int) -> bool:
    """Response header v1 (with tagged fields)? Never for ApiVersions (see the module docstring)."""
    return api_key != API_VERSIONS and is_flexible(api_key, version)
