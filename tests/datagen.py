"""SYNTHETIC TEST DATA: recordings of an imaginary two-node cluster, for engine and script tests only.

Nothing here was traced. Every table of cluster/schemas.py gets rows shaped like a real agent's
(Pixie's column names, types, enum values and JSON payload formats, counters that only grow,
request tables in ascending time), built column by column with pyarrow from a seed, so a test
gets the same recording every run. The manifest says so too: its Vizier version is
``SYNTHETIC_VERSION`` and its hosts are called synthetic-node-*.

    rec = generate(seed=1, end_time_ns=...)          # tables + metadata snapshot in memory
    path = write(tmp_path / "rec", seed=1)           # the same, as a recording directory
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc

from cluster.pem.process_info import make_upid
from cluster.schemas import TABLES, TIME64NS, UINT128
from cluster.store.recording import METADATA_SCHEMA, AgentInfo, Manifest, write_recording

SYNTHETIC_VERSION = "synthetic (tests/datagen.py)"
NS = 1_000_000_000


@dataclass(frozen=True)
class Proc:
    """One process of the imaginary cluster (one per pod)."""

    asid: int
    pid: int
    namespace: str
    service: str
    pod: str
    node: str
    ip: str
    cmdline: str

    @property
    def upid(self) -> bytes:
        return make_upid(self.asid, self.pid, 1000 + self.pid)

    @property
    def pod_id(self) -> str:
        return _uid("pod", self.namespace, self.pod)

    @property
    def service_id(self) -> str:
        return _uid("svc", self.namespace, self.service)


def _uid(*parts: str) -> str:
    h = hashlib.sha1("/".join(parts).encode()).hexdigest()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:32]}"


NODES = ("synthetic-node-1", "synthetic-node-2")

# namespace, service, command line, role in the traffic
_SERVICES = (
    ("shop", "frontend", "/app/frontend --port 8080", "http"),
    ("shop", "catalog", "python -m catalog", "http"),
    ("shop", "checkout", "/usr/bin/java -jar checkout.jar", "http"),
    ("shop", "loadgen", "/app/loadgen --rate 20", "client"),
    ("data", "mysql", "mysqld --user=mysql", "mysql"),
    ("data", "postgres", "postgres -D /var/lib/postgresql/data", "pgsql"),
    ("data", "redis", "redis-server *:6379", "redis"),
    ("data", "cassandra", "/usr/bin/java -cp cassandra.jar CassandraDaemon", "cql"),
    ("data", "mongodb", "mongod --bind_ip_all", "mongodb"),
    ("msg", "kafka", "/usr/bin/java -cp kafka.jar kafka.Kafka", "kafka"),
    ("msg", "nats", "nats-server -js", "nats"),
    ("msg", "rabbitmq", "beam.smp -- -root /usr/lib/erlang", "amqp"),
    ("kube-system", "kube-dns", "/coredns -conf /etc/coredns/Corefile", "dns"),
)


def cluster_processes() -> list[Proc]:
    procs = []
    for i, (ns, svc, cmd, _) in enumerate(_SERVICES):
        for replica in range(2 if svc in ("frontend", "catalog") else 1):
            node_i = (i + replica) % len(NODES)
            pid = 4000 + 17 * i + replica
            procs.append(Proc(asid=node_i + 1, pid=pid, namespace=ns, service=svc,
                              pod=f"{svc}-{_uid(svc, str(replica))[:5]}", node=NODES[node_i],
                              ip=f"10.{node_i + 1}.0.{10 + i * 2 + replica}", cmdline=cmd))
    return procs


class Rng:
    """Seeded uniform draws from pyarrow (pc.random), one fresh stream per draw."""

    def __init__(self, seed: int):
        self.seed = seed
        self._k = 0

    def uniform(self, n: int) -> pa.Array:
        self._k += 1
        return pc.random(n, initializer=self.seed * 100_003 + self._k)

    def ints(self, n: int, lo: int, hi: int) -> pa.Array:
        """Integers in [lo, hi)."""
        return pc.add(pc.floor(pc.multiply(self.uniform(n), hi - lo)).cast(pa.int64()), lo)

    def choice(self, n: int, values: list, typ: pa.DataType | None = None) -> pa.Array:
        return pa.array(values, typ).take(self.ints(n, 0, len(values)))

    def log_uniform(self, n: int, lo: float, hi: float) -> pa.Array:
        """Values spread evenly in log space: latencies and sizes look like this."""
        import math

        exp = pc.add(pc.multiply(self.uniform(n), math.log10(hi / lo)), math.log10(lo))
        return pc.floor(pc.power(10.0, exp)).cast(pa.int64())

    def times(self, n: int, start_ns: int, end_ns: int) -> pa.Array:
        """n sorted timestamps in [start, end]: agents append in time order."""
        t = pc.add(pc.floor(pc.multiply(self.uniform(n), end_ns - start_ns)).cast(pa.int64()), start_ns)
        return pc.take(t, pc.sort_indices(t)).cast(TIME64NS)


def _table(name: str, cols: dict[str, pa.Array]) -> pa.Table:
    schema = TABLES[name].schema
    missing = [f.name for f in schema if f.name not in cols]
    assert not missing, f"datagen {name}: no values for {missing}"
    return pa.Table.from_arrays([cols[f.name].cast(f.type) for f in schema], schema=schema)


def _const(n: int, value, typ: pa.DataType) -> pa.Array:
    return pa.array([value] * n, typ)


def _json(values: list[dict]) -> list[str]:
    return [json.dumps(v, sort_keys=True) for v in values]


class _Gen:
    def __init__(self, seed: int, start_ns: int, end_ns: int, rows: int):
        self.rng = Rng(seed)
        self.start, self.end, self.rows = start_ns, end_ns, rows
        self.procs = cluster_processes()

    def by_role(self, role: str) -> list[Proc]:
        roles = {svc: r for _, svc, _, r in _SERVICES}
        return [p for p in self.procs if roles[p.service] == role]

    def conn(self, n: int, servers: list[Proc], port: int, clients: list[Proc] | None = None) -> dict[str, pa.Array]:
        """The shared prefix of a protocol table: each row is one side of a client->server call."""
        r = self.rng
        clients = clients or self.by_role("http") + self.by_role("client")
        role = pc.add(r.ints(n, 0, 2), 1)  # 1 client side, 2 server side
        srv = r.ints(n, 0, len(servers))
        cli = r.ints(n, 0, len(clients))
        s_upid = pa.array([p.upid for p in servers], UINT128).take(srv)
        c_upid = pa.array([p.upid for p in clients], UINT128).take(cli)
        s_ip = pa.array([p.ip for p in servers]).take(srv)
        c_ip = pa.array([p.ip for p in clients]).take(cli)
        eph = r.ints(n, 32768, 61000)
        is_server = pc.equal(role, 2)
        return {
            "time_": r.times(n, self.start, self.end),
            "upid": pc.if_else(is_server, s_upid, c_upid),
            "remote_addr": pc.if_else(is_server, c_ip, s_ip),
            "remote_port": pc.if_else(is_server, eph, pa.scalar(port)),
            "local_addr": pc.if_else(is_server, s_ip, c_ip),
            "local_port": pc.if_else(is_server, pa.scalar(port), eph),
            "trace_role": role,
            "encrypted": _const(n, False, pa.bool_()),
            "latency": r.log_uniform(n, 80_000, 400_000_000),
        }

    # ---- protocol tables -------------------------------------------------------------------------
    def http_events(self) -> pa.Table:
        n, r = self.rows, self.rng
        c = self.conn(n, self.by_role("http"), 8080)
        paths = ["/", "/healthz", "/api/products", "/api/products/42", "/api/cart", "/api/checkout",
                 "/static/app.js", "/api/search?q=lamp"]
        status = r.choice(n, [200] * 14 + [201, 304, 404, 500, 503], pa.int64())
        body = r.choice(n, ['{"ok":true}', '{"items":[{"id":42,"name":"lamp"}]}', "", "<html>ok</html>"])
        c.update(
            major_version=_const(n, 1, pa.int64()),
            minor_version=_const(n, 1, pa.int64()),
            content_type=r.choice(n, [0, 1], pa.int64()),
            req_headers=r.choice(n, _json([{"Host": "frontend:8080", "User-Agent": "loadgen/1.0"},
                                           {"Accept": "*/*", "Host": "catalog", "traceparent": "00-ab-cd-01"}])),
            req_method=r.choice(n, ["GET", "GET", "GET", "POST", "PUT", "DELETE"]),
            req_path=r.choice(n, paths),
            req_body=r.choice(n, ["", "", '{"sku":42,"qty":1}']),
            req_body_size=r.ints(n, 0, 400),
            resp_headers=r.choice(n, _json([{"Content-Type": "application/json"},
                                            {"Content-Length": "15", "Content-Type": "text/html"}])),
            resp_status=status,
            resp_message=pc.if_else(pc.less(status, 400), pa.scalar("OK"), pa.scalar("Internal Server Error")),
            resp_body=body,
            resp_body_size=pc.add(pc.utf8_length(body).cast(pa.int64()), r.ints(n, 0, 2000)),
        )
        return _table("http_events", c)

    def mysql_events(self) -> pa.Table:
        n, r = self.rows, self.rng
        c = self.conn(n, self.by_role("mysql"), 3306)
        c.update(
            req_cmd=r.choice(n, [3, 3, 3, 22, 23, 14], pa.int64()),
            req_body=r.choice(n, ["SELECT * FROM products WHERE id = 42", "SELECT name FROM users WHERE id=7",
                                  "INSERT INTO orders (sku, qty) VALUES (42, 1)", "UPDATE stock SET n = n - 1"]),
            resp_status=r.choice(n, [2, 2, 2, 2, 3], pa.int64()),
            resp_body=r.choice(n, ["Resultset rows = 1", "Affected rows = 1", "Error: Duplicate entry"]),
        )
        return _table("mysql_events", c)

    def pgsql_events(self) -> pa.Table:
        n, r = self.rows, self.rng
        c = self.conn(n, self.by_role("pgsql"), 5432)
        c.update(
            req_cmd=r.choice(n, ["Query", "Query", "Execute", "Parse", "Bind"]),
            req=r.choice(n, ["SELECT id, total FROM orders WHERE user_id = 7", "BEGIN", "COMMIT",
                             "INSERT INTO audit(msg) VALUES ('checkout')"]),
            resp=r.choice(n, ["SELECT 1", "BEGIN", "COMMIT", "INSERT 0 1"]),
        )
        return _table("pgsql_events", c)

    def cql_events(self) -> pa.Table:
        n, r = self.rows, self.rng
        c = self.conn(n, self.by_role("cql"), 9042)
        c.update(
            req_op=r.choice(n, [7, 7, 9, 10, 1], pa.int64()),
            req_body=r.choice(n, ["SELECT * FROM shop.sessions WHERE id = ?", "INSERT INTO shop.events JSON ?"]),
            resp_op=r.choice(n, [8, 8, 8, 0], pa.int64()),
            resp_body=r.choice(n, ["Response type = ROWS", "Response type = VOID", "Error: Unavailable"]),
        )
        return _table("cql_events", c)

    def dns_events(self) -> pa.Table:
        n, r = self.rows, self.rng
        c = self.conn(n, self.by_role("dns"), 53)
        names = ["catalog.shop.svc.cluster.local", "mysql.data.svc.cluster.local", "api.example.com"]
        hdr = {"txid": 1, "qr": 0, "opcode": 0, "aa": 0, "tc": 0, "rd": 1, "ra": 0, "ad": 0, "cd": 0,
               "rcode": 0, "num_queries": 1, "num_answers": 0, "num_auth": 0, "num_addl": 0}
        c.update(
            req_header=_const(n, json.dumps(hdr), pa.string()),
            req_body=r.choice(n, _json([{"queries": [{"name": x, "type": "A"}]} for x in names])),
            resp_header=r.choice(n, _json([{**hdr, "qr": 1, "ra": 1, "num_answers": 1},
                                           {**hdr, "qr": 1, "ra": 1, "rcode": 3}])),
            resp_body=r.choice(n, _json([{"answers": [{"name": x, "type": "A", "addr": "10.1.0.12"}]}
                                         for x in names])),
        )
        return _table("dns_events", c)

    def redis_events(self) -> pa.Table:
        n, r = self.rows, self.rng
        c = self.conn(n, self.by_role("redis"), 6379)
        c.update(
            req_cmd=r.choice(n, ["GET", "GET", "SET", "HMSET", "EXPIRE", "PING"]),
            req_args=r.choice(n, _json([{"key": "cart:7"}, {"key": "session:9", "value": "x"}])),
            resp=r.choice(n, ["OK", "(nil)", '"lamp"', "1"]),
        )
        return _table("redis_events", c)

    def kafka_events(self) -> pa.Table:
        n, r = self.rows, self.rng
        c = self.conn(n, self.by_role("kafka"), 9092)
        produce = {"topics": [{"name": "orders", "partitions": [{"index": 0, "message_set": {"size": 120}}]}]}
        c.update(
            req_cmd=r.choice(n, [0, 0, 1, 1, 3, 11, 14, 18], pa.int64()),
            client_id=r.choice(n, ["checkout-producer", "billing-consumer"]),
            req_body=r.choice(n, _json([produce, {"topics": []}])),
            resp=r.choice(n, _json([produce, {"throttle_time_ms": 0}])),
        )
        return _table("kafka_events.beta", c)

    def nats_events(self) -> pa.Table:
        n, r = self.rows, self.rng
        c = self.conn(n, self.by_role("nats"), 4222)
        del c["latency"]
        c.update(
            cmd=r.choice(n, ["PUB", "PUB", "MSG", "SUB", "PING", "CONNECT"]),
            body=r.choice(n, _json([{"subject": "orders.created", "payload": '{"id":1}'}, {"subject": "stock"}])),
            resp=r.choice(n, ["OK", "", "ERR"]),
        )
        return _table("nats_events.beta", c)

    def mongodb_events(self) -> pa.Table:
        n, r = self.rows, self.rng
        c = self.conn(n, self.by_role("mongodb"), 27017)
        c.update(
            req_cmd=r.choice(n, ["find", "find", "insert", "update", "delete", "hello"]),
            req_body=r.choice(n, _json([{"find": "reviews", "filter": {"sku": 42}}, {"insert": "reviews"}])),
            resp_status=r.choice(n, ["ok: 1", "ok: 1", "ok: 0"]),
            resp_body=r.choice(n, _json([{"cursor": {"firstBatch": []}, "ok": 1}, {"n": 1, "ok": 1}])),
        )
        return _table("mongodb_events", c)

    def mux_events(self) -> pa.Table:
        n, r = self.rows, self.rng
        c = self.conn(n, self.by_role("http"), 9990)
        c.update(req_type=r.choice(n, [2, 2, 1, 65, 68], pa.int64()))
        return _table("mux_events", c)

    def amqp_events(self) -> pa.Table:
        n, r = self.rows, self.rng
        c = self.conn(n, self.by_role("amqp"), 5672)
        c.update(
            frame_type=r.choice(n, [1, 1, 2, 3, 8], pa.int64()),
            channel=r.ints(n, 0, 4),
            req_class_id=r.choice(n, [60, 60, 50, 20, 10], pa.int64()),
            req_method_id=r.choice(n, [40, 20, 10, 80], pa.int64()),
            resp_class_id=r.choice(n, [60, 50, 20, 0], pa.int64()),
            resp_method_id=r.choice(n, [21, 11, 60, 0], pa.int64()),
            req_msg=r.choice(n, _json([{"exchange": "orders", "routing_key": "created"}, {"queue": "billing"}])),
            resp_msg=r.choice(n, _json([{"consumer_tag": "ctag-1"}, {}])),
        )
        return _table("amqp_events", c)

    def mqtt_events(self) -> pa.Table:
        n, r = self.rows, self.rng
        c = self.conn(n, self.by_role("amqp"), 1883)  # RabbitMQ's MQTT plugin listens on 1883
        c.update(
            req_control_packet_type=r.choice(n, ["PUBLISH", "PUBLISH", "SUBSCRIBE", "CONNECT", "PINGREQ"]),
            req_header_fields=r.choice(n, _json([{"qos": 1, "packet_identifier": 7}, {"keep_alive": 60}])),
            req_properties=r.choice(n, _json([{}, {"content_type": "application/json"}])),
            req_payload=r.choice(n, _json([{"topic_name": "sensors/t1", "publish_message": "21.5"},
                                           {"client_id": "sensor-1"}])),
            resp_control_packet_type=r.choice(n, ["PUBACK", "", "SUBACK", "CONNACK", "PINGRESP"]),
            resp_header_fields=r.choice(n, _json([{"packet_identifier": 7}, {"reason_code": 0}])),
            resp_properties=r.choice(n, _json([{}])),
            resp_payload=r.choice(n, _json([{}, {"reason_code": "1"}])),
        )
        return _table("mqtt_events", c)

    def tls_events(self) -> pa.Table:
        n, r = self.rows, self.rng
        c = self.conn(n, self.by_role("http"), 443)
        del c["encrypted"]
        c.update(
            req_type=r.choice(n, [22, 23, 23, 21], pa.int64()),
            req_body=r.choice(n, _json([{"extensions": {"server_name": ["frontend"]}, "version": 771}])),
            resp_body=r.choice(n, _json([{"version": 771}])),
        )
        return _table("tls_events", c)

    # ---- periodic counters -----------------------------------------------------------------------
    def samples(self, entities: int, period_s: int) -> tuple[pa.Array, pa.Array, pa.Array]:
        """(time_, entity index, seconds since start) for every entity at every period."""
        steps = max(1, (self.end - self.start) // (period_s * NS))
        n = steps * entities
        i = pa.array(range(n), pa.int64())
        step = pc.divide(i, entities)
        ent = pc.subtract(i, pc.multiply(step, entities))
        secs = pc.multiply(pc.add(step, 1), period_s)
        t = pc.add(pc.multiply(secs, NS), self.end - steps * period_s * NS).cast(TIME64NS)
        return t, ent, secs

    def _counter(self, secs: pa.Array, ent: pa.Array, n_ent: int, rate_lo: int, rate_hi: int) -> pa.Array:
        """A cumulative counter: a per-entity base plus a per-entity rate times elapsed seconds."""
        rates = self.rng.ints(n_ent, rate_lo, rate_hi).take(ent)
        base = self.rng.ints(n_ent, 0, rate_hi * 100 + 1).take(ent)
        return pc.add(base, pc.multiply(rates, secs))

    def process_stats(self) -> pa.Table:
        procs = self.procs
        t, ent, secs = self.samples(len(procs), 1)
        k = len(procs)
        cols = {"time_": t, "upid": pa.array([p.upid for p in procs], UINT128).take(ent)}
        for name, lo, hi in (("major_faults", 0, 3), ("minor_faults", 10, 500),
                             ("cpu_utime_ns", 5_000_000, 400_000_000), ("cpu_ktime_ns", 1_000_000, 80_000_000),
                             ("rchar_bytes", 1000, 5_000_000),
                             ("wchar_bytes", 1000, 2_000_000), ("read_bytes", 0, 400_000),
                             ("write_bytes", 0, 800_000)):
            cols[name] = self._counter(secs, ent, k, lo, hi)
        cols["num_threads"] = self.rng.ints(k, 1, 60).take(ent)
        cols["vsize_bytes"] = self.rng.log_uniform(k, 50_000_000, 4_000_000_000).take(ent)
        cols["rss_bytes"] = pc.add(self.rng.log_uniform(k, 10_000_000, 900_000_000).take(ent),
                                   pc.multiply(secs, 1024))
        return _table("process_stats", cols)

    def network_stats(self) -> pa.Table:
        procs = self.procs
        t, ent, secs = self.samples(len(procs), 1)
        k = len(procs)
        cols = {"time_": t, "pod_id": pa.array([p.pod_id for p in procs]).take(ent)}
        for name, lo, hi in (("rx_bytes", 1000, 2_000_000), ("rx_packets", 10, 2000), ("rx_errors", 0, 2),
                             ("rx_drops", 0, 2), ("tx_bytes", 1000, 2_000_000), ("tx_packets", 10, 2000),
                             ("tx_errors", 0, 2), ("tx_drops", 0, 2)):
            cols[name] = self._counter(secs, ent, k, lo, hi)
        return _table("network_stats", cols)

    def conn_stats(self) -> pa.Table:
        pairs = [(p, q) for p in self.by_role("http") + self.by_role("client") for q in self.procs
                 if q.service != p.service][:24]
        t, ent, secs = self.samples(len(pairs), 10)
        k = len(pairs)
        cols = {
            "time_": t,
            "upid": pa.array([p.upid for p, _ in pairs], UINT128).take(ent),
            "remote_addr": pa.array([q.ip for _, q in pairs]).take(ent),
            "remote_port": self.rng.choice(k, [8080, 3306, 5432, 6379, 9092]).take(ent),
            "trace_role": self.rng.choice(k, [1, 2], pa.int64()).take(ent),
            "addr_family": _const(len(t), 1, pa.int64()),
            "protocol": self.rng.choice(k, [1, 1, 3, 5, 7, 10], pa.int64()).take(ent),
            "ssl": _const(len(t), False, pa.bool_()),
            "conn_open": self._counter(secs, ent, k, 1, 5),
            "conn_active": self.rng.ints(k, 0, 8).take(ent),
            "bytes_sent": self._counter(secs, ent, k, 100, 200_000),
            "bytes_recv": self._counter(secs, ent, k, 100, 400_000),
        }
        cols["conn_close"] = pc.max_element_wise(pc.subtract(cols["conn_open"], cols["conn_active"]), 0)
        return _table("conn_stats", cols)

    def jvm_stats(self) -> pa.Table:
        jvms = [p for p in self.procs if "java" in p.cmdline]
        t, ent, secs = self.samples(len(jvms), 1)
        k = len(jvms)
        heap_max = self.rng.choice(k, [512 << 20, 1 << 30, 2 << 30], pa.int64()).take(ent)
        used = pc.multiply(pc.add(pc.multiply(self.rng.uniform(len(t)), 0.5), 0.2), heap_max)
        cols = {
            "time_": t,
            "upid": pa.array([p.upid for p in jvms], UINT128).take(ent),
            "young_gc_time": self._counter(secs, ent, k, 100_000, 20_000_000),
            "full_gc_time": self._counter(secs, ent, k, 0, 5_000_000),
            "used_heap_size": pc.floor(used).cast(pa.int64()),
            "total_heap_size": pc.floor(pc.multiply(heap_max, 0.8)).cast(pa.int64()),
            "max_heap_size": heap_max,
        }
        return _table("jvm_stats", cols)

    def tcp_stats_events(self) -> pa.Table:
        procs = self.by_role("http")
        t, ent, secs = self.samples(len(procs), 5)
        k = len(procs)
        cols = {
            "time_": t,
            "upid": pa.array([p.upid for p in procs], UINT128).take(ent),
            "local_addr": pa.array([p.ip for p in procs]).take(ent),
            "local_port": _const(len(t), 8080, pa.int64()),
            "remote_addr": self.rng.choice(k, [p.ip for p in self.procs]).take(ent),
            "remote_port": self.rng.ints(k, 32768, 61000).take(ent),
            "tx": self._counter(secs, ent, k, 100, 100_000),
            "rx": self._counter(secs, ent, k, 100, 100_000),
            "retransmits": self._counter(secs, ent, k, 0, 2),
        }
        return _table("tcp_stats_events", cols)

    # ---- profiler and agent self-reports ---------------------------------------------------------
    def stack_traces(self) -> pa.Table:
        stacks = [
            "__libc_start_main;main;http_serve;handle_request;json_encode",
            "__libc_start_main;main;http_serve;handle_request;db_query;[k] __sys_sendto",
            "__libc_start_main;main;http_serve;[k] do_epoll_wait",
            "start_thread;java_start;[j] Interpreter [3x];com.shop.Checkout.run",
            "_start;__libc_start_main;main;gc_collect;mark_objects",
        ]
        procs = self.procs
        periods, k = 10, len(procs) * len(stacks)
        n = periods * k
        i = pa.array(range(n), pa.int64())
        step = pc.divide(i, k)
        within = pc.subtract(i, pc.multiply(step, k))
        proc_i = pc.divide(within, len(stacks))
        stack_i = pc.subtract(within, pc.multiply(proc_i, len(stacks)))
        span = (self.end - self.start) // periods
        cols = {
            "time_": pc.add(pc.multiply(pc.add(step, 1), span), self.start).cast(TIME64NS),
            "upid": pa.array([p.upid for p in procs], UINT128).take(proc_i),
            "stack_trace_id": pc.add(stack_i, 1),
            "stack_trace": pa.array(stacks).take(stack_i),
            "count": self.rng.ints(n, 1, 300),
        }
        return _table("stack_traces.beta", cols)

    def proc_exit_events(self) -> pa.Table:
        n, r = 20, self.rng
        cols = {
            "time_": r.times(n, self.start, self.end),
            "upid": r.choice(n, [p.upid for p in self.procs], UINT128),
            "exit_code": r.choice(n, [1, 2, 137], pa.int64()),
            "signal": r.choice(n, [0, 9, 11], pa.int64()),
            "comm": r.choice(n, ["python", "java", "sh"]),
        }
        return _table("proc_exit_events", cols)

    def stirling_error(self) -> pa.Table:
        n, r = 6, self.rng
        pem = make_upid(1, 99, 1099)
        cols = {
            "time_": r.times(n, self.start, self.end),
            "upid": _const(n, pem, UINT128),
            "source_connector": r.choice(n, ["socket_tracer", "perf_profiler", "jvm_stats"]),
            "status": r.choice(n, [0, 0, 9], pa.int64()),
            "error": r.choice(n, ["", "could not attach uprobe to libssl"]),
            "context": r.choice(n, ["Init", "TransferData"]),
        }
        return _table("stirling_error", cols)

    def probe_status(self) -> pa.Table:
        n, r = 8, self.rng
        pem = make_upid(1, 99, 1099)
        cols = {
            "time_": r.times(n, self.start, self.end),
            "upid": _const(n, pem, UINT128),
            "source_connector": _const(n, "socket_tracer", pa.string()),
            "tracepoint": r.choice(n, ["syscalls:sys_enter_connect", "syscalls:sys_exit_read", "uprobe:SSL_write"]),
            "status": r.choice(n, [0, 0, 0, 5], pa.int64()),
            "error": r.choice(n, ["", "", "symbol not found"]),
            "info": _const(n, "{}", pa.string()),
        }
        return _table("probe_status", cols)

    def metadata(self) -> pa.Table:
        procs = self.procs
        pem = make_upid(1, 99, 1099)
        rows = [[p.upid for p in procs] + [pem]]
        for attr in METADATA_SCHEMA.names[1:]:
            vals = {
                "pod_name": [f"{p.namespace}/{p.pod}" for p in procs],
                "pod_id": [p.pod_id for p in procs],
                "service_name": [f"{p.namespace}/{p.service}" for p in procs],
                "service_id": [p.service_id for p in procs],
                "namespace": [p.namespace for p in procs],
                "node_name": [p.node for p in procs],
                "hostname": [p.node for p in procs],
                "container_name": [p.service for p in procs],
                "container_id": [_uid("ctr", p.pod) for p in procs],
                "cmdline": [p.cmdline for p in procs],
            }[attr]
            # the agent itself (stirling_error / probe_status rows): on a node, in no pod
            pem_value = {"cmdline": "pxtui-vizier", "node_name": NODES[0], "hostname": NODES[0]}.get(attr, "")
            rows.append([*vals, pem_value])
        return pa.Table.from_arrays([pa.array(c, f.type) for c, f in zip(rows, METADATA_SCHEMA, strict=True)],
                                    schema=METADATA_SCHEMA)


@dataclass
class Generated:
    tables: dict[str, pa.Table]
    metadata: pa.Table
    end_time_ns: int
    agents: list[AgentInfo]


def generate(seed: int = 0, end_time_ns: int | None = None, duration_s: int = 300, rows: int = 2000) -> Generated:
    """Every table of cluster/schemas.py, ``rows`` rows per request table, over the last
    ``duration_s`` seconds before ``end_time_ns`` (default: now)."""
    end = end_time_ns if end_time_ns is not None else time.time_ns()
    g = _Gen(seed, end - duration_s * NS, end, rows)
    makers = {
        "http_events": g.http_events, "conn_stats": g.conn_stats, "mysql_events": g.mysql_events,
        "pgsql_events": g.pgsql_events, "cql_events": g.cql_events, "dns_events": g.dns_events,
        "redis_events": g.redis_events, "kafka_events.beta": g.kafka_events, "nats_events.beta": g.nats_events,
        "mongodb_events": g.mongodb_events, "mux_events": g.mux_events, "amqp_events": g.amqp_events,
        "tls_events": g.tls_events, "process_stats": g.process_stats, "network_stats": g.network_stats,
        "jvm_stats": g.jvm_stats, "stack_traces.beta": g.stack_traces, "proc_exit_events": g.proc_exit_events,
        "stirling_error": g.stirling_error, "probe_status": g.probe_status, "tcp_stats_events": g.tcp_stats_events,
        "mqtt_events": g.mqtt_events,  # last: the tables before it keep their random streams
    }
    assert set(makers) == set(TABLES), f"datagen does not cover {set(TABLES) ^ set(makers)}"
    agents = [AgentInfo(f"synthetic-agent-{i + 1}", i + 1, node, "AGENT_STATE_HEALTHY")
              for i, node in enumerate(NODES)]
    return Generated({name: make() for name, make in makers.items()}, g.metadata(), end, agents)


def write(directory: str | Path, seed: int = 0, end_time_ns: int | None = None, duration_s: int = 300,
          rows: int = 2000) -> Manifest:
    """A synthetic recording directory that `pxtui run --data DIR` and load_recording read."""
    gen = generate(seed, end_time_ns, duration_s, rows)
    return write_recording(directory, gen.tables, gen.metadata, gen.end_time_ns, gen.agents, SYNTHETIC_VERSION)
