"""Metadata UDFs beyond plain names: pod start times, pod/container status JSON, pod IPs and the
services behind an IP.  All go through the MetadataSource's optional ``entity_attr``; an entity it
does not know gives "" (or time 0), as in Pixie."""

from __future__ import annotations

from collections.abc import Sequence

import pyarrow as pa
import pyarrow.compute as pc

from cluster.pxl.funcs.metadata_funcs import _lookup
from cluster.pxl.funcs.registry import EvalContext, Registry, ScalarFunc, Signature, Value, fixed_semantic
from cluster.pxl.types import ARROW_TYPES, STRING, TIME64NS


def _string_lookup(key: str, attr: str):
    def impl(ctx: EvalContext, args: Sequence[Value], sig: Signature, n: int) -> Value:
        return _lookup(ctx, key, attr, args[0])

    return impl


def _start_time(ctx: EvalContext, args: Sequence[Value], sig: Signature, n: int) -> Value:
    """start_time comes back as decimal ns text; unknown ("") or malformed text gives time 0."""
    text = _lookup(ctx, "pod_name", "start_time", args[0])
    ok = pc.match_substring_regex(text, r"^-?[0-9]{1,19}$")
    ns = pc.if_else(ok, text, "0").cast(pa.int64())
    return ns.cast(ARROW_TYPES[TIME64NS])


def register(reg: Registry) -> None:
    s_to_s = (Signature((STRING,), STRING),)
    reg.add(ScalarFunc("pod_name_to_start_time", (Signature((STRING,), TIME64NS),), _start_time,
                       foldable=False, doc="creation time of a pod, 0 if unknown"))
    reg.add(ScalarFunc("pod_name_to_status", s_to_s, _string_lookup("pod_name", "status"),
                       fixed_semantic("ST_POD_STATUS"), foldable=False,
                       doc='JSON {"phase","message","reason","ready"} of a pod'))
    reg.add(ScalarFunc("pod_name_to_pod_ip", s_to_s, _string_lookup("pod_name", "pod_ip"),
                       fixed_semantic("ST_IP_ADDRESS"), foldable=False, doc="IP of a pod"))
    reg.add(ScalarFunc("container_id_to_status", s_to_s, _string_lookup("container_id", "status"),
                       fixed_semantic("ST_CONTAINER_STATUS"), foldable=False,
                       doc='JSON {"state","message","reason"} of a container'))
    reg.add(ScalarFunc("ip_to_service_id", s_to_s, _string_lookup("ip", "service_id"), foldable=False,
                       doc="service UID of a cluster IP, or of the pod owning the IP"))
