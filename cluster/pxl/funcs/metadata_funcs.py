"""Kubernetes/process metadata UDFs (<key>_to_<attr>), the targets df.ctx[...] compiles into.

They ask the query's MetadataSource at run time, so they are never constant-folded.  Look-ups keyed
by a upid use ``upid_attr``; other keys use the optional ``entity_attr`` and give "" without it.
"""

from __future__ import annotations

from collections.abc import Sequence

import pyarrow as pa
import pyarrow.compute as pc

from cluster.pxl.funcs.arrays import broadcast, is_scalar
from cluster.pxl.funcs.registry import EvalContext, Registry, ScalarFunc, Signature, Value, fixed_semantic
from cluster.pxl.sources import UPID_ATTRS, EntityMetadataSource
from cluster.pxl.types import STRING, TIME64NS, UINT128

#: semantic type of each metadata attribute's values
ATTR_SEMANTIC = {
    "pod_name": "ST_POD_NAME",
    "service_name": "ST_SERVICE_NAME",
    "namespace": "ST_NAMESPACE_NAME",
    "node_name": "ST_NODE_NAME",
    "container_name": "ST_CONTAINER_NAME",
}

#: every attribute df.ctx can produce as a string
STRING_ATTRS = (
    "pod_name",
    "pod_id",
    "service_name",
    "service_id",
    "namespace",
    "node_name",
    "hostname",
    "container_name",
    "container_id",
    "cmdline",
    "deployment_name",
    "deployment_id",
    "replicaset_name",
    "replicaset_id",
)

#: source column kinds a look-up can start from, besides upid
ENTITY_KEYS = (
    "pod_id",
    "pod_name",
    "service_id",
    "service_name",
    "deployment_id",
    "deployment_name",
    "replicaset_id",
    "replicaset_name",
)


def _empty(n: int) -> pa.Array:
    return broadcast(pa.scalar(""), n)


def _lookup(ctx: EvalContext, key: str, attr: str, values: Value) -> Value:
    scalar = is_scalar(values)
    arr = broadcast(values, 1) if scalar else values
    md = ctx.metadata
    if md is None:
        out = _empty(len(arr))
    elif key == "upid" and attr in UPID_ATTRS:
        out = md.upid_attr(attr, arr)
    elif isinstance(md, EntityMetadataSource):
        out = md.entity_attr(key, attr, arr)
    else:
        out = _empty(len(arr))
    out = pa.array(out) if not isinstance(out, pa.Array) else out
    if out.type != pa.string():
        out = out.cast(pa.string())
    return out[0] if scalar else out


def _lookup_udf(key: str, attr: str):
    def impl(ctx: EvalContext, args: Sequence[Value], sig: Signature, n: int) -> Value:
        return _lookup(ctx, key, attr, args[0])

    return impl


def upid_lookup_encoded(ctx: EvalContext, attr: str, upids: pa.Array) -> pa.DictionaryArray:
    """``attr`` of each upid as a dictionary array whose dictionary holds each answer once.

    Why: a batch holds a few hundred processes and tens of thousands of rows, so each distinct upid
    is asked once (one hash pass over the 16-byte upids) and the rows get integer codes; no string is
    copied per row.  Answers repeat across upids (ten pods, one service), so they are encoded again
    to keep one code per distinct answer, which a group-by on the codes needs."""
    codes = pc.dictionary_encode(upids, null_encoding="encode")
    answers = _lookup(ctx, "upid", attr, codes.dictionary)
    distinct = pc.dictionary_encode(answers)
    return pa.DictionaryArray.from_arrays(distinct.indices.take(codes.indices), distinct.dictionary)


def _upid_udf(attr: str):
    """(plain impl, dictionary impl) of upid_to_<attr>; both ask about each distinct upid once."""

    def dict_impl(ctx: EvalContext, args: Sequence[Value], sig: Signature, n: int) -> Value:
        if is_scalar(args[0]):
            return _lookup(ctx, "upid", attr, args[0])
        return upid_lookup_encoded(ctx, attr, args[0])

    def impl(ctx: EvalContext, args: Sequence[Value], sig: Signature, n: int) -> Value:
        out = dict_impl(ctx, args, sig, n)
        return out.dictionary_decode() if isinstance(out, pa.DictionaryArray) else out

    return impl, dict_impl


def _ip_to_pod_id(ctx: EvalContext, args: Sequence[Value], sig: Signature, n: int) -> Value:
    at = getattr(ctx.metadata, "pod_id_for_ip_at", None)
    if len(args) == 1 or at is None:
        return _lookup(ctx, "ip", "pod_id", args[0])
    ips, times = (broadcast(a, n) for a in args)
    return at(ips, times)


def _pod_fallback(ctx: EvalContext, args: Sequence[Value], sig: Signature, n: int) -> Value:
    """Pod of the process; for short-lived processes the metadata service may have lost the upid,
    so fall back to the pod owning the local IP."""
    upid, local_addr, _time = args
    pods = _lookup(ctx, "upid", "pod_name", upid)
    if isinstance(ctx.metadata, EntityMetadataSource):
        missing = pc.equal(pods, "")
        if is_scalar(missing) and not missing.as_py():
            return pods
        if is_scalar(missing) or pc.any(missing).as_py():
            by_ip = _lookup(ctx, "pod_id", "pod_name", _lookup(ctx, "ip", "pod_id", local_addr))
            return pc.if_else(missing, by_ip, pods)
    return pods


def _namespace_of_name(ctx: EvalContext, args: Sequence[Value], sig: Signature, n: int) -> Value:
    """'<ns>/<name>' -> '<ns>'; a name without '/' has no namespace."""
    s = args[0]
    if is_scalar(s):
        text = s.as_py()
        return pa.scalar(text.split("/", 1)[0] if "/" in text else "")
    return pc.fill_null(pc.struct_field(pc.extract_regex(s, r"^(?P<ns>[^/]*)/"), [0]), "")


def _exec_hostname(ctx: EvalContext, args: Sequence[Value], sig: Signature, n: int) -> Value:
    host = ctx.metadata.hostname() if ctx.metadata is not None else ""
    return pa.scalar(host)


def metadata_udf_name(key: str, attr: str) -> str:
    return f"{key}_to_{attr}"


def register(reg: Registry) -> None:
    for attr in STRING_ATTRS:
        sem = fixed_semantic(ATTR_SEMANTIC.get(attr, "ST_NONE"))
        plain, encoded = _upid_udf(attr)
        reg.add(
            ScalarFunc(
                metadata_udf_name("upid", attr),
                (Signature((UINT128,), STRING),),
                plain,
                sem,
                foldable=False,
                doc=f"{attr} of a process",
                dict_impl=encoded,
            )
        )
        for key in ENTITY_KEYS:
            if key == attr or metadata_udf_name(key, attr) in reg:
                continue
            if key == "pod_name" and attr == "namespace":
                continue
            reg.add(
                ScalarFunc(
                    metadata_udf_name(key, attr),
                    (Signature((STRING,), STRING),),
                    _lookup_udf(key, attr),
                    sem,
                    foldable=False,
                    doc=f"{attr} of a {key}",
                )
            )
    reg.add(
        ScalarFunc(
            "pod_name_to_namespace",
            (Signature((STRING,), STRING),),
            _namespace_of_name,
            fixed_semantic("ST_NAMESPACE_NAME"),
            doc="namespace part of <ns>/<pod>",
        )
    )
    # The (ip, time) overload asks who held the IP then where the metadata keeps IP history
    # (Kubernetes); elsewhere it is the pod owning the IP now, or last.
    reg.add(
        ScalarFunc(
            "ip_to_pod_id",
            (Signature((STRING,), STRING), Signature((STRING, TIME64NS), STRING)),
            _ip_to_pod_id,
            foldable=False,
            doc="pod UID owning an IP (at a time)",
        )
    )
    reg.add(
        ScalarFunc(
            "_upid_to_podname_local_addr_fallback",
            (Signature((UINT128, STRING, TIME64NS), STRING),),
            _pod_fallback,
            fixed_semantic("ST_POD_NAME"),
            foldable=False,
            doc="pod of a process or its IP",
        )
    )
    reg.add(
        ScalarFunc(
            "_exec_hostname",
            (Signature((), STRING),),
            _exec_hostname,
            foldable=False,
            doc="hostname of the executing agent",
        )
    )
