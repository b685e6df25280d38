"""KubernetesMetadata against a real HTTP API server (tests/k8s_apiserver.py) through the real client.

The server plays tests/fixtures/k8s/small_cluster.json: lists of every resource, then a Job pod
that is added, runs, succeeds and is deleted, its IP given to another pod, a service deleted, and
pod changes made while the pod watch is broken, ended by ERROR 410 Expired. Each test releases
events one label at a time and waits (with a deadline) for the state to show them.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import pyarrow as pa
import pytest

from cluster import schemas
from cluster.metadata.k8s import KubernetesMetadata
from cluster.pxl import compile_pxl, execute
from cluster.pxl.funcs.upid import make_upid
from cluster.store.table_store import TableStore
from tests.fixtures.k8s.transcript import T0, container_id_of, load
from tests.k8s_apiserver import FakeApiServer
from tests.vizier_proc import wait_until

SEC = 1_000_000_000
T0_NS = int(T0.timestamp()) * SEC
TRANSCRIPT = load()


class FakeClock:
    """The state's clock, moved by the test so deletion times and retention are exact."""

    def __init__(self, now_ns: int) -> None:
        self.now_ns = now_ns

    def __call__(self) -> int:
        return self.now_ns


def uid(name: str, resource: str = "pods") -> str:
    """The uid of the ``resource`` called ``name`` in the transcript (its lists or its events)."""
    objs = list(TRANSCRIPT["lists"][resource]["items"])
    objs += [s["event"]["object"] for s in TRANSCRIPT["events"] if s["resource"] == resource]
    for o in objs:
        if o["metadata"].get("name") == name and "uid" in o["metadata"]:
            return o["metadata"]["uid"]
    raise KeyError(name)


CAT = "catalog-5f8d7b6c4d-m4ztp"
FE1 = "frontend-7d4b9c8f6-x2x9k"
FE2 = "frontend-7d4b9c8f6-b8vqd"
FE3 = "frontend-7d4b9c8f6-n2k4l"
JOB = "report-28571234-abcde"
REUSE = "report-28571240-fghij"
CID = {
    "catalog": container_id_of("shop", CAT, "catalog"),
    "envoy": container_id_of("shop", CAT, "envoy"),
    "fe1": container_id_of("shop", FE1, "app"),
    "job": container_id_of("shop", JOB, "report"),
    "dns": container_id_of("kube-system", "coredns-5d78c9869d-q7wkr", "coredns"),
}
#: pid -> container id: what the PEM's cgroup reader would say for each process
PIDS = {10: CID["catalog"], 11: CID["fe1"], 12: CID["job"], 14: CID["envoy"]}


def upid(pid: int) -> bytes:
    return make_upid(3, pid, 777)


def resolver(u: bytes) -> str | None:
    return PIDS.get(int.from_bytes(u[4:8], "big"))


@pytest.fixture
def server() -> Iterator[FakeApiServer]:
    s = FakeApiServer(TRANSCRIPT).start()
    yield s
    s.stop()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(T0_NS + 3600 * SEC)


@pytest.fixture
def md(server: FakeApiServer, clock: FakeClock) -> Iterator[KubernetesMetadata]:
    m = KubernetesMetadata(
        server.api_client(),
        resolver,
        hostname="node-1",
        clock=clock,
        page_size=2,
        cmdline=lambda u: f"/bin/app --pid {int.from_bytes(u[4:8], 'big')}",
        service_cidrs=["10.96.0.0/12"],
        retention_ns=600 * SEC,
    )
    m.start()
    assert m.wait_synced(10), m.status()
    yield m
    m.stop()


def ask(md: KubernetesMetadata, key: str, attr: str, *values: str) -> list[str]:
    return md.entity_attr(key, attr, pa.array(list(values), pa.string())).to_pylist()


def pod_phase(md: KubernetesMetadata, name: str) -> str:
    status = ask(md, "pod_name", "status", f"shop/{name}")[0]
    return json.loads(status)["phase"] if status else ""


def play(server: FakeApiServer, md: KubernetesMetadata, label: str, until: object) -> None:
    """Release events up to ``label`` and wait until the state shows ``until()``."""
    server.play(until=label)
    assert md.state.wait_for(until, 10), f"state never showed {label}: {md.status()}"


def test_list_fills_every_resource_through_paginated_authenticated_requests(
    server: FakeApiServer, md: KubernetesMetadata
) -> None:
    counts = md.status()["objects"]
    assert {
        k: counts[k] for k in ("namespaces", "nodes", "deployments", "replicasets", "services", "endpoints", "pods")
    } == {"namespaces": 3, "nodes": 2, "deployments": 3, "replicasets": 3, "services": 5, "endpoints": 5, "pods": 5}
    pod_lists = [q for path, q in server.requests if path == "/api/v1/pods" and "watch" not in q]
    assert len(pod_lists) == 3 and pod_lists[0] == {"limit": "2"} and "continue" in pod_lists[1]
    watches = wait_until(
        lambda: [q for path, q in server.requests if path == "/api/v1/pods" and q.get("watch") == "true"],
        5,
        "the pod watch",
    )
    assert watches[0]["resourceVersion"] == TRANSCRIPT["resourceVersion"]
    assert watches[0]["allowWatchBookmarks"] == "true"
    # A process in the catalog pod: both of the pod's services, its workload, its node.
    ups = pa.array([upid(10), upid(14), upid(99), None], schemas.UINT128)
    got = {
        a: md.upid_attr(a, ups).to_pylist()
        for a in ("pod_name", "container_name", "service_name", "namespace", "node_name", "hostname", "cmdline")
    }
    assert got["pod_name"] == [f"shop/{CAT}", f"shop/{CAT}", "", ""]
    assert got["container_name"] == ["catalog", "envoy", "", ""]
    assert got["service_name"][0] == '["shop/catalog","shop/catalog-internal"]'
    assert got["namespace"][:3] == ["shop", "shop", ""] and got["node_name"][0] == "node-1"
    assert got["hostname"][0] == "node-1" and got["cmdline"][2] == "/bin/app --pid 99"
    # The kube-proxy pod is on the host network: the node's IP is not the pod's.
    assert ask(md, "ip", "pod_id", "10.244.1.5", "172.18.0.2", "10.96.12.4") == [uid(FE1), "", ""]
    assert md.cidrs() == ["10.244.1.0/24", "10.244.2.0/24", "10.96.0.0/12"]


def test_watch_add_modify_delete_keeps_history_of_a_short_lived_pod(
    server: FakeApiServer, md: KubernetesMetadata, clock: FakeClock
) -> None:
    clock.now_ns = T0_NS + 600 * SEC
    play(server, md, "job-added", lambda: pod_phase(md, JOB) == "Pending")
    assert ask(md, "pod_name", "pod_ip", f"shop/{JOB}") == [""]  # no IP before it runs
    play(server, md, "job-running", lambda: pod_phase(md, JOB) == "Running")
    assert ask(md, "ip", "pod_id", "10.244.2.15") == [uid(JOB)]
    assert md.upid_attr("pod_name", pa.array([upid(12)], schemas.UINT128)).to_pylist() == [f"shop/{JOB}"]
    assert ask(md, "container_id", "status", CID["job"]) == ['{"state":"Running","message":"","reason":""}']

    clock.now_ns = T0_NS + 640 * SEC
    play(server, md, "job-succeeded", lambda: pod_phase(md, JOB) == "Succeeded")
    assert json.loads(ask(md, "container_id", "status", CID["job"])[0])["reason"] == "Completed"
    clock.now_ns = T0_NS + 700 * SEC
    play(server, md, "job-deleted", lambda: pod_phase(md, JOB) == "Terminated")
    # Deleted, yet its process and its IP still resolve: its traffic is queried after the fact.
    assert md.upid_attr("pod_name", pa.array([upid(12)], schemas.UINT128)).to_pylist() == [f"shop/{JOB}"]
    assert ask(md, "ip", "pod_id", "10.244.2.15") == [uid(JOB)]

    clock.now_ns = T0_NS + 760 * SEC
    play(server, md, "ip-reused", lambda: pod_phase(md, REUSE) == "Running")
    assert ask(md, "ip", "pod_id", "10.244.2.15") == [uid(REUSE)]
    at = md.pod_id_for_ip_at(
        pa.array(["10.244.2.15"] * 3), pa.array([T0_NS + 620 * SEC, T0_NS + 645 * SEC, T0_NS + 780 * SEC], pa.int64())
    )
    # Running at 620 s; the IP was released when it succeeded (640 s); the new pod from 721 s.
    assert at.to_pylist() == [uid(JOB), "", uid(REUSE)]
    # and the same through PxL: px.ip_to_pod_id(ip, time) names the pod that held the IP then
    store = TableStore()
    store.create("http_events", schemas.HTTP_EVENTS)
    store.append("http_events", _table(schemas.HTTP_EVENTS, [
        {"time_": T0_NS + s * SEC, "upid": upid(11), "remote_addr": "10.244.2.15"} for s in (620, 780)]))
    query = compile_pxl("import px\ndf = px.DataFrame('http_events', start_time='-20m')\n"
                        "df.then = px.ip_to_pod_id(df.remote_addr, df.time_)\n"
                        "df.now = px.ip_to_pod_id(df.remote_addr)\npx.display(df[['then', 'now']], 'ips')\n",
                        now_ns=T0_NS + 800 * SEC, schemas=store.schemas())
    [(_, ips)] = execute(query, store, md)
    assert ips.to_pylist() == [{"then": uid(JOB), "now": uid(REUSE)}, {"then": uid(REUSE), "now": uid(REUSE)}]


def test_deleted_pods_are_forgotten_after_the_retention(
    server: FakeApiServer, md: KubernetesMetadata, clock: FakeClock
) -> None:
    clock.now_ns = T0_NS + 700 * SEC
    play(server, md, "job-deleted", lambda: pod_phase(md, JOB) == "Terminated")
    clock.now_ns += 600 * SEC  # the retention: the next event purges it
    play(server, md, "ip-reused", lambda: pod_phase(md, REUSE) == "Running")
    assert pod_phase(md, JOB) == ""
    assert md.upid_attr("pod_id", pa.array([upid(12)], schemas.UINT128)).to_pylist() == [""]
    assert md.pod_id_for_ip_at(pa.array(["10.244.2.15"]), pa.array([T0_NS + 620 * SEC])).to_pylist() == [""]
    assert md.status()["objects"]["deleted_retained"] == 0


def test_bookmark_advances_the_resource_version(server: FakeApiServer, md: KubernetesMetadata) -> None:
    stats = md.reflectors["pods"].stats
    play(server, md, "pods-bookmark", lambda: stats.bookmarks == 1)
    bookmark = server.events[server.label_index("pods-bookmark")]["event"]["object"]
    assert stats.resource_version == bookmark["metadata"]["resourceVersion"]


def test_endpoints_link_pods_to_services_and_deleted_services_stop_counting(
    server: FakeApiServer, md: KubernetesMetadata
) -> None:
    cat2 = "shop/catalog-5f8d7b6c4d-zz9pn"
    play(server, md, "catalog-endpoints", lambda: ask(md, "pod_name", "service_name", cat2) == ["shop/catalog"])
    internal = md.state.services[uid("catalog-internal", "services")]
    # Services and endpoints come down two watches: wait for both.
    play(
        server,
        md,
        "service-endpoints-deleted",
        lambda: internal.stop_ns != 0 and "shop/catalog-internal" not in md.state.endpoints,
    )
    assert ask(md, "pod_name", "service_name", f"shop/{CAT}") == ["shop/catalog"]
    assert ask(md, "ip", "service_id", "10.96.33.9", "10.96.33.8") == ["", uid("catalog", "services")]
    assert ask(md, "service_name", "service_id", "shop/catalog-internal") == [
        uid("catalog-internal", "services")
    ]  # retained


def test_410_expired_forces_a_relist_that_finds_what_changed_unseen(
    server: FakeApiServer, md: KubernetesMetadata, clock: FakeClock
) -> None:
    stats = md.reflectors["pods"].stats
    play(server, md, "service-endpoints-deleted", lambda: "shop/catalog-internal" not in md.state.endpoints)
    clock.now_ns = T0_NS + 900 * SEC
    play(server, md, "pods-expired", lambda: stats.relists_after_gone == 1 and stats.lists == 2)
    # Never told that fe2 was deleted nor that fe3 was added: the re-list showed both.
    assert pod_phase(md, FE2) == "Terminated" and pod_phase(md, FE3) == "Pending"
    assert md.state.pods[uid(FE2)].stop_ns == clock.now_ns
    # The watch resumed from the re-list's resourceVersion and keeps going.
    play(
        server,
        md,
        "frontend-endpoints",
        lambda: (
            pod_phase(md, FE3) == "Running" and ask(md, "pod_name", "service_name", f"shop/{FE3}") == ["shop/frontend"]
        ),
    )
    assert stats.errors == 0 and md.reflectors["services"].stats.relists_after_gone == 0


def _table(schema: pa.Schema, rows: list[dict]) -> pa.Table:
    arrays = []
    for f in schema:
        values = [r.get(f.name) for r in rows]
        if f.name == "time_":
            arrays.append(pa.array(values, pa.int64()).cast(f.type))
        else:
            default = "" if pa.types.is_string(f.type) else (False if pa.types.is_boolean(f.type) else 0)
            arrays.append(pa.array([default if v is None else v for v in values], f.type))
    return pa.Table.from_arrays(arrays, schema=schema)


PXL = """
import px
df = px.DataFrame('process_stats', start_time='-10m')
df.pod = df.ctx['pod']
df.pod_id = df.ctx['pod_id']
df.service = df.ctx['service']
df.service_id = df.ctx['service_id']
df.namespace = df.ctx['namespace']
df.node = df.ctx['node']
df.host = df.ctx['hostname']
df.container = df.ctx['container']
df.container_id = df.ctx['container_id']
df.cmd = df.ctx['cmdline']
df.deployment = df.ctx['deployment']
df.deployment_id = df.ctx['deployment_id']
df.replicaset = df.ctx['replicaset']
df.replicaset_id = df.ctx['replicaset_id']
df.pid = df.ctx['pid']
df.status = px.pod_name_to_status(df.pod)
df.start = px.pod_name_to_start_time(df.pod)
df.pod_ip = px.pod_name_to_pod_ip(df.pod)
df.cstatus = px.container_id_to_status(df.container_id)
df.is_catalog = px.has_service_name(df.service, 'shop/catalog')
df.by_pod_id = px.pod_id_to_pod_name(df.pod_id) + '|' + px.pod_id_to_namespace(df.pod_id)
df.by_pod_id = df.by_pod_id + '|' + px.pod_id_to_node_name(df.pod_id) + '|' + px.pod_id_to_service_name(df.pod_id)
df.exec_host = px._exec_hostname()
df.cidrs = px.get_cidrs()
px.display(df, 'procs')

g = df.groupby(['pod', 'service']).agg(n=('pid', px.count))
g.pod_name = g.pod
g.service_name = g.service
g.ns = g.ctx['namespace']
g.pod_id = g.ctx['pod_id']
g.service_id = g.ctx['service_id']
g.deployment = g.ctx['deployment']
g.svc_by_id = px.service_id_to_service_name(g.service_id)
px.display(g[['pod_name', 'ns', 'pod_id', 'service_id', 'svc_by_id', 'deployment']], 'by_name')

h = px.DataFrame('http_events', start_time='-10m')
h.pod = h.ctx['pod']
h.remote_pod_id = px.ip_to_pod_id(h.remote_addr)
h.remote_pod = px.pod_id_to_pod_name(px.ip_to_pod_id(h.remote_addr))
h.remote_pod_then = px.pod_id_to_pod_name(px.ip_to_pod_id(h.remote_addr, h.time_))
h.remote_svc = px.service_id_to_service_name(px.ip_to_service_id(h.remote_addr))
h.in_cluster = px.cidrs_contain_ip(px.get_cidrs(), h.remote_addr)
h = h[['pod', 'remote_addr', 'remote_pod_id', 'remote_pod', 'remote_pod_then', 'remote_svc', 'in_cluster']]
px.display(h, 'http')

n = px.DataFrame('network_stats', start_time='-10m')
n.pod = n.ctx['pod']
n.service = n.ctx['service']
n.namespace = n.ctx['namespace']
n.node = n.ctx['node']
n.deployment = n.ctx['deployment']
n.replicaset = n.ctx['replicaset']
px.display(n[['pod', 'service', 'namespace', 'node', 'deployment', 'replicaset']], 'net')
"""


def test_every_metadata_udf_through_pxl(md: KubernetesMetadata) -> None:
    now = T0_NS + 3600 * SEC
    t = now - 60 * SEC
    store = TableStore()
    for name, schema, rows in (
        ("process_stats", schemas.PROCESS_STATS, [{"time_": t, "upid": upid(p)} for p in (10, 11, 14, 13)]),
        (
            "http_events",
            schemas.HTTP_EVENTS,
            [
                {"time_": t, "upid": upid(11), "local_addr": "10.244.1.5", "remote_addr": "10.244.1.9"},
                # a process the node no longer knows, serving on the frontend pod's IP: the IP fallback
                {"time_": t, "upid": upid(55), "local_addr": "10.244.1.5", "remote_addr": "10.96.33.8"},
                {"time_": t, "upid": upid(11), "local_addr": "10.244.1.5", "remote_addr": "8.8.8.8"},
            ],
        ),
        ("network_stats", schemas.NETWORK_STATS, [{"time_": t, "pod_id": uid(CAT)}, {"time_": t, "pod_id": "nope"}]),
    ):
        store.create(name, schema)
        store.append(name, _table(schema, rows))
    query = compile_pxl(PXL, now_ns=now, schemas=store.schemas())
    tables = dict(execute(query, store, md))
    starts = tables["procs"].column("start").cast(pa.int64()).to_pylist()
    out = {name: table.to_pylist() for name, table in tables.items()}

    cat, fe1, envoy, unknown = out["procs"]
    assert (cat["pod"], cat["pod_id"], cat["namespace"], cat["node"], cat["host"]) == (
        f"shop/{CAT}",
        uid(CAT),
        "shop",
        "node-1",
        "node-1",
    )
    assert cat["service"] == '["shop/catalog","shop/catalog-internal"]' and cat["is_catalog"] is True
    assert cat["service_id"] == json.dumps(
        [uid("catalog", "services"), uid("catalog-internal", "services")], separators=(",", ":")
    )
    assert (cat["container"], cat["container_id"], envoy["container"]) == ("catalog", CID["catalog"], "envoy")
    assert (cat["deployment"], cat["deployment_id"]) == ("shop/catalog", uid("catalog", "deployments"))
    assert (cat["replicaset"], cat["replicaset_id"]) == (
        "shop/catalog-5f8d7b6c4d",
        uid("catalog-5f8d7b6c4d", "replicasets"),
    )
    assert cat["pid"] == 10 and cat["cmd"] == "/bin/app --pid 10"
    assert json.loads(cat["status"]) == {"phase": "Running", "message": "", "reason": "", "ready": True}
    assert starts[0] == T0_NS + 1 * SEC and cat["pod_ip"] == "10.244.1.9"
    assert json.loads(cat["cstatus"])["state"] == "Running"
    assert cat["by_pod_id"] == f"shop/{CAT}|shop|node-1|" + cat["service"]
    assert (fe1["service"], fe1["is_catalog"], fe1["deployment"]) == ("shop/frontend", False, "shop/frontend")
    assert (cat["exec_host"], json.loads(cat["cidrs"])) == (
        "node-1",
        ["10.244.1.0/24", "10.244.2.0/24", "10.96.0.0/12"],
    )
    # A process in no known container: every k8s attribute is "", the node's own facts still answer.
    assert [unknown[k] for k in ("pod", "pod_id", "service", "namespace", "container", "deployment")] == [""] * 6
    assert (unknown["status"], starts[3], unknown["cstatus"]) == ("", 0, "")
    assert unknown["cmd"] == "/bin/app --pid 13" and unknown["exec_host"] == "node-1"

    by_name = {r["pod_name"]: r for r in out["by_name"]}
    assert by_name[f"shop/{FE1}"] == {
        "pod_name": f"shop/{FE1}",
        "ns": "shop",
        "pod_id": uid(FE1),
        "service_id": uid("frontend", "services"),
        "svc_by_id": "shop/frontend",
        "deployment": "shop/frontend",
    }

    direct, fallback, outside = out["http"]
    assert (direct["pod"], direct["remote_pod_id"], direct["remote_pod"]) == (f"shop/{FE1}", uid(CAT), f"shop/{CAT}")
    assert direct["remote_pod_then"] == f"shop/{CAT}"
    assert direct["remote_svc"] == ""  # two services: their ids come as a JSON array, which names no service (Pixie)
    assert (fallback["pod"], fallback["remote_pod_id"], fallback["remote_svc"]) == (f"shop/{FE1}", "", "shop/catalog")
    assert (fallback["in_cluster"], outside["in_cluster"], outside["remote_pod"]) == (True, False, "")

    net_cat, net_nope = out["net"]
    assert net_cat == {
        "pod": f"shop/{CAT}",
        "service": '["shop/catalog","shop/catalog-internal"]',
        "namespace": "shop",
        "node": "node-1",
        "deployment": "shop/catalog",
        "replicaset": "shop/catalog-5f8d7b6c4d",
    }
    assert set(net_nope.values()) == {""}
