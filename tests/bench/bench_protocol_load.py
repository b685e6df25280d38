"""Agent CPU per traced request under load from each server's own benchmark tool, on loopback.

Run as root:  .venv/bin/python -m tests.bench.bench_protocol_load [--seconds 6] [--only redis,pgsql,mysql,pgsql-rate]

For each tool, in the same run:
  - baseline: the tool against the local server with no agent: throughput, and the server's CPU per
    request (Redis and MariaDB: the server process, all threads; PostgreSQL: the postmaster with its
    reaped backends, so each pgbench connection's backend counts);
  - traced: the same load (the same request count for the count-based tools, the same duration for
    pgbench) with a real embedded Vizier (tests/vizier_proc.py) tracing it.
It prints the agent's user and system CPU per request (all threads, measured until the agent has
drained the run), the agent's BPF programs' run time per request (kernel.bpf_stats_enabled=1 and the
prog fds' fdinfo, as bench_agent_cpu.py does), the throughput ratio traced/baseline, the protocol
table's rows per request (2 when both ends are traced: the tool's client side and the server side)
and, from GetStatus, events lost, parse errors and connections reset during the run.

The tools and their scratch state:
  - redis-benchmark -t set,get against 127.0.0.1:6379, keys in database 13 (must be empty; flushed after);
  - pgbench (select-only by default) against database test, its tables made by `pgbench -i` in a scratch
    schema (search_path through PGOPTIONS) that is dropped afterwards;
  - mysqlslap --auto-generate-sql (primary-key lookups by default: CPU-bound like pgbench's select-only;
    its write loads wait for InnoDB's log flush per commit) against MariaDB as root, in a scratch
    database that mysqlslap creates and drops (dropped again on the way out, in case it was interrupted).
Requests are the tool's own counts (SET + GET commands; transactions x SQL statements per transaction;
queries), so other clients of the same servers do not inflate them; mysqlslap's setup statements
(CREATE TABLE and ~100 INSERTs per run) add their rows to the table but are not counted as requests.

The three tools run flat out (closed loop), which on 2 cores outruns a Python agent: the report says how
many events were lost and how many rows each request got. pgsql-rate repeats pgbench at a fixed rate
(-R, default 2000 tx/s) that the agent keeps up with, for the cost of a request traced whole.

redis-benchmark and mysqlslap run a request count, not a duration: a 2 s calibration run sets the count
for --seconds at the baseline's rate, and the traced run repeats that count (it takes longer when the
agent slows the server down). Every child runs in its own session and is killed on the way out.
"""

from __future__ import annotations

import argparse
import os
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.bench.bench_agent_cpu import BPF_STATS, IDLE_S, TICKS, bpf_run_ns, cpu_split, other_agents
from tests.vizier_proc import cleanup_on_signals, log, running_vizier

SCRATCH = "pxtui_bench"
REDIS_DB = "13"
PG_STATEMENTS = {"select-only": 1, "simple-update": 5, "tpcb-like": 7}  # SQL statements per transaction
PG_ENV = {"PGHOST": "127.0.0.1", "PGPORT": "5432", "PGUSER": "postgres", "PGDATABASE": "test",
          "PGSSLMODE": "disable", "PGOPTIONS": f"-c search_path={SCRATCH}"}  # fmt: skip
MYSQL = ["--host=127.0.0.1", "--port=3306", "--user=root", "--protocol=tcp"]


def sh(cmd: list[str], timeout: float, env: dict[str, str] | None = None) -> str:
    """Run a tool to completion; its output, or an error that says which command failed and why."""
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL,
                         env={**os.environ, **(env or {})}, start_new_session=True)  # fmt: skip
    if out.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({out.returncode}): {(out.stderr or out.stdout)[-1500:]}")
    return out.stdout + out.stderr


def server_pid(comm: str, parent_not: str | None = None) -> int:
    """The pid of the server process named ``comm`` (the one whose parent is not also ``parent_not``:
    PostgreSQL's postmaster among its backends)."""
    found = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            stat = Path(f"/proc/{d}/stat").read_text()
        except OSError:
            continue
        name, rest = stat[stat.index("(") + 1 : stat.rindex(")")], stat.rsplit(")", 1)[1].split()
        if name != comm:
            continue
        if parent_not is not None:
            with_parent = Path(f"/proc/{rest[1]}/comm")
            if with_parent.exists() and with_parent.read_text().strip() == parent_not:
                continue
        found.append(int(d))
    if len(found) != 1:
        raise RuntimeError(f"expected one running {comm} process, found {found or 'none'}: is the server up?")
    return found[0]


def server_cpu_s(pid: int) -> float:
    """utime + stime of all threads, plus its reaped children's (PostgreSQL backends exit and are
    reaped by the postmaster, which folds their CPU into cutime/cstime)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return sum(int(f) for f in fields[11:15]) / TICKS


def server_children(pid: int) -> int:
    """How many processes ``pid`` has (PostgreSQL: one backend per connection, plus its workers)."""
    n = 0
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                n += Path(f"/proc/{d}/stat").read_text().rsplit(")", 1)[1].split()[1] == str(pid)
            except OSError:
                continue
    return n


def settle(pid: int, children: int, timeout: float = 10.0) -> None:
    """Wait until the tool's connections' server processes (PostgreSQL backends) have exited and been
    reaped, so that their CPU is in the server's cutime/cstime."""
    deadline = time.monotonic() + timeout
    while server_children(pid) > children and time.monotonic() < deadline:
        time.sleep(0.05)


def children_cpu_s() -> float:
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


class Load(ABC):
    """One server and its benchmark tool."""

    name = ""
    protocol = ""
    table = ""

    @abstractmethod
    def setup(self, seconds: int) -> None:
        """Scratch state and, for the count-based tools, the request count for ``seconds``."""

    @abstractmethod
    def run(self) -> int:
        """Run the tool once; the requests it made."""

    @abstractmethod
    def teardown(self) -> None:
        """Drop the scratch state."""

    @abstractmethod
    def server_pid(self) -> int:
        """The server process whose CPU is measured."""

    @abstractmethod
    def describe(self) -> str:
        """The tool's options, for the report."""


class RedisLoad(Load):
    name, protocol, table = "redis-benchmark", "Redis", "redis_events"
    clients = 8
    per_test = 0

    def _run(self, n: int) -> int:
        sh(["redis-benchmark", "-h", "127.0.0.1", "-p", "6379", "--dbnum", REDIS_DB, "-c", str(self.clients),
            "-n", str(n), "-t", "set,get", "-r", "10000", "-d", "100", "-q"], timeout=600)  # fmt: skip
        return 2 * n

    def setup(self, seconds: int) -> None:
        size = sh(["redis-cli", "-h", "127.0.0.1", "-n", REDIS_DB, "dbsize"], timeout=10).strip()
        if size != "0":
            raise RuntimeError(f"Redis database {REDIS_DB} holds {size} keys: the bench writes and flushes it")
        t0 = time.monotonic()
        done = self._run(20_000)
        rate = done / (time.monotonic() - t0)
        self.per_test = max(10_000, int(rate * seconds / 2))

    def run(self) -> int:
        return self._run(self.per_test)

    def teardown(self) -> None:
        sh(["redis-cli", "-h", "127.0.0.1", "-n", REDIS_DB, "flushdb"], timeout=30)

    def server_pid(self) -> int:
        return server_pid("redis-server")

    def describe(self) -> str:
        return f"-c {self.clients} -t set,get -d 100 -n {self.per_test} (x2 tests)"


@dataclass
class PgbenchLoad(Load):
    builtin: str = "select-only"
    rate: int = 0  # transactions per second (pgbench -R), 0 = as fast as it goes
    clients: int = 4
    seconds: int = 6
    name, protocol, table = "pgbench", "PostgreSQL", "pgsql_events"

    def __post_init__(self) -> None:
        if self.rate:
            self.name = f"pgbench -R {self.rate}"

    def setup(self, seconds: int) -> None:
        self.seconds = seconds
        self.teardown()
        sh(["psql", "-v", "ON_ERROR_STOP=1", "-qc", f"CREATE SCHEMA {SCRATCH}"], timeout=30, env=PG_ENV)
        sh(["pgbench", "-i", "-s", "1", "-q"], timeout=300, env=PG_ENV)

    def run(self) -> int:
        rate = ["-R", str(self.rate)] if self.rate else []
        cmd = ["pgbench", "-n", "-b", self.builtin, "-M", "simple", "-c", str(self.clients), "-j", "2", *rate]
        out = sh([*cmd, "-T", str(self.seconds)], timeout=self.seconds + 120, env=PG_ENV)
        m = re.search(r"number of transactions actually processed: (\d+)", out)
        if not m:
            raise RuntimeError(f"pgbench printed no transaction count:\n{out[-1500:]}")
        return int(m.group(1)) * PG_STATEMENTS[self.builtin]

    def teardown(self) -> None:
        sh(["psql", "-qc", f"DROP SCHEMA IF EXISTS {SCRATCH} CASCADE"], timeout=60, env=PG_ENV)

    def server_pid(self) -> int:
        return server_pid("postgres", parent_not="postgres")

    def describe(self) -> str:
        rate = f" -R {self.rate}" if self.rate else ""
        per_tx = PG_STATEMENTS[self.builtin]
        return f"-b {self.builtin} -M simple -c {self.clients} -T {self.seconds}{rate} ({per_tx} SQL/tx)"


@dataclass
class MysqlslapLoad(Load):
    load_type: str = "key"
    concurrency: int = 4
    queries: int = 0
    name, protocol, table = "mysqlslap", "MySQL", "mysql_events"

    def _run(self, n: int) -> int:
        out = sh(["mysqlslap", *MYSQL, f"--create-schema={SCRATCH}", "--auto-generate-sql",
                  "--auto-generate-sql-add-autoincrement", f"--auto-generate-sql-load-type={self.load_type}",
                  f"--concurrency={self.concurrency}",
                  f"--number-of-queries={n}", "--iterations=1"], timeout=600)  # fmt: skip
        clients = re.search(r"Number of clients running queries: (\d+)", out)
        each = re.search(r"Average number of queries per client: (\d+)", out)
        if not (clients and each):
            raise RuntimeError(f"mysqlslap printed no query count:\n{out[-1500:]}")
        return int(clients.group(1)) * int(each.group(1))

    def setup(self, seconds: int) -> None:
        self.teardown()
        t0 = time.monotonic()
        done = self._run(10_000)
        self.queries = max(4_000, int(done / (time.monotonic() - t0) * seconds))

    def run(self) -> int:
        return self._run(self.queries)

    def teardown(self) -> None:
        sh(["mysql", *MYSQL, "-e", f"DROP DATABASE IF EXISTS {SCRATCH}"], timeout=60)

    def server_pid(self) -> int:
        for comm in ("mariadbd", "mysqld"):
            try:
                return server_pid(comm)
            except RuntimeError:
                continue
        raise RuntimeError("no running mariadbd or mysqld process: is MariaDB up?")

    def describe(self) -> str:
        return (f"--auto-generate-sql-load-type={self.load_type} (autoincrement key) --concurrency={self.concurrency} "
                f"--number-of-queries={self.queries}")  # fmt: skip


LOADS = {"redis": RedisLoad, "pgsql": PgbenchLoad, "mysql": MysqlslapLoad, "pgsql-rate": PgbenchLoad}


@dataclass
class Counters:
    rows: int = 0  # rows ever written to the table: current + evicted
    lost: int = 0
    parse_errors: int = 0
    conns_reset: int = 0


def counters(client: Any, table: str) -> Counters:
    st = client.get_status()
    c = Counters()
    for a in st.agents:
        c.rows += sum(t.rows + t.rows_evicted for t in a.tables if t.name == table)
        c.lost += a.events_lost
        c.parse_errors += a.parse_errors
        c.conns_reset += a.conns_reset
    return c


def drained(client: Any, table: str, timeout: float = 30.0) -> Counters:
    """Poll until the table stops growing (3 polls, 0.6 s) so the agent's CPU includes its backlog."""
    deadline = time.monotonic() + timeout
    last = counters(client, table)
    still = 0
    while time.monotonic() < deadline and still < 3:
        time.sleep(0.2)
        cur = counters(client, table)
        still = still + 1 if cur.rows == last.rows else 0
        last = cur
    return last


@dataclass
class Phase:
    requests: int
    wall_s: float
    server_s: float
    tool_s: float
    agent_usr_s: float = 0.0
    agent_sys_s: float = 0.0
    bpf_s: float = 0.0
    delta: Counters = field(default_factory=Counters)

    @property
    def rate(self) -> float:
        return self.requests / self.wall_s

    def per_req_us(self, seconds: float) -> float:
        return seconds * 1e6 / self.requests


def measure(load: Load, agent_pid: int | None = None, client: Any = None) -> Phase:
    srv = load.server_pid()
    c0 = counters(client, load.table) if client else None
    a0 = cpu_split(agent_pid) if agent_pid else (0.0, 0.0)
    b0 = bpf_run_ns(agent_pid) if agent_pid else 0
    kids = server_children(srv)
    s0, k0, t0 = server_cpu_s(srv), children_cpu_s(), time.monotonic()
    requests = load.run()
    wall = time.monotonic() - t0
    settle(srv, kids)
    s1, k1 = server_cpu_s(srv), children_cpu_s()
    p = Phase(requests, wall, s1 - s0, k1 - k0)
    if agent_pid and client and c0:
        c1 = drained(client, load.table)
        a1, b1 = cpu_split(agent_pid), bpf_run_ns(agent_pid)
        p.agent_usr_s, p.agent_sys_s, p.bpf_s = a1[0] - a0[0], a1[1] - a0[1], (b1 - b0) / 1e9
        p.delta = Counters(c1.rows - c0.rows, c1.lost - c0.lost, c1.parse_errors - c0.parse_errors,
                           c1.conns_reset - c0.conns_reset)  # fmt: skip
    log(f"{load.name}: {'traced' if agent_pid else 'baseline'} {requests} requests in {wall:.1f} s "
        f"({p.rate:,.0f}/s)")  # fmt: skip
    return p


def report(loads: list[Load], base: dict[str, Phase], traced: dict[str, Phase], idle_ms_s: float) -> None:
    print("agent CPU per traced request under each server's own benchmark tool (loopback; 2 shared cores)")
    for load in loads:
        print(f"  {load.name} ({load.protocol} -> {load.table}): {load.describe()}")
    print(f"{'tool':<16} {'base req/s':>10} {'traced req/s':>12} {'ratio':>6} {'agent usr':>9} {'agent sys':>9} "
          f"{'bpf':>6} {'total us':>8} {'us/row':>7} {'server us base -> traced':>25}")  # fmt: skip
    for load in loads:
        b, t = base[load.name], traced[load.name]
        usr, sys_, bpf = t.per_req_us(t.agent_usr_s), t.per_req_us(t.agent_sys_s), t.per_req_us(t.bpf_s)
        per_row = (t.agent_usr_s + t.agent_sys_s + t.bpf_s) * 1e6 / t.delta.rows if t.delta.rows else float("nan")
        srv_b, srv_t = b.per_req_us(b.server_s), t.per_req_us(t.server_s)
        print(f"{load.name:<16} {b.rate:>10,.0f} {t.rate:>12,.0f} {t.rate / b.rate:>5.2f}x {usr:>9.2f} {sys_:>9.2f} "
              f"{bpf:>6.2f} {usr + sys_ + bpf:>8.2f} {per_row:>7.2f} {srv_b:>10.2f} -> {srv_t:>6.2f} "
              f"({srv_t / srv_b if srv_b else float('nan'):.2f}x)")  # fmt: skip
    print("per traced run (GetStatus deltas; the agent traces the whole host):")
    for load in loads:
        b, t = base[load.name], traced[load.name]
        d = t.delta
        print(f"{load.name:>16}: requests {t.requests}  {load.table} rows {d.rows} = {d.rows / t.requests:.2f} per "
              f"request (2 expected: client + server side)  events lost {d.lost}  parse errors {d.parse_errors}  "
              f"conns reset {d.conns_reset}  tool CPU {b.per_req_us(b.tool_s):.2f} -> {t.per_req_us(t.tool_s):.2f} "
              f"us/request")  # fmt: skip
    print(
        "usr/sys: the agent process (all threads, until it drained the run); bpf: run_time_ns of its BPF "
        "programs (kernel, charged to the traced syscalls, host-wide); us/row: usr+sys+bpf per table row written;"
    )
    print(f"server us: server CPU per request (includes the BPF time of its syscalls); agent idle {idle_ms_s:.1f} ms/s "
          "before the runs (included in usr/sys)")  # fmt: skip


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=int, default=6, help="length of each run (baseline and traced), whole seconds")
    ap.add_argument("--only", default="redis,pgsql,mysql,pgsql-rate", help=f"comma separated, of {', '.join(LOADS)}")
    ap.add_argument("--pgbench-builtin", default="select-only", choices=sorted(PG_STATEMENTS))
    ap.add_argument(
        "--pgbench-rate",
        type=int,
        default=2000,
        help="transactions/s of the pgsql-rate load: a rate the agent keeps up with, so nothing is lost",
    )
    ap.add_argument(
        "--mysqlslap-load-type",
        default="key",
        choices=["key", "read", "write", "update", "mixed"],
        help="key: primary-key lookups (CPU-bound); write/mixed commit to disk, so they measure fsync",
    )
    a = ap.parse_args()
    if os.geteuid() != 0:
        sys.exit("run as root: the agent loads eBPF")
    names = [n.strip() for n in a.only.split(",") if n.strip()]
    unknown = [n for n in names if n not in LOADS]
    if unknown:
        sys.exit(f"--only: unknown load(s) {unknown}; choose from {', '.join(LOADS)}")
    options: dict[str, dict[str, Any]] = {
        "pgsql": {"builtin": a.pgbench_builtin},
        "pgsql-rate": {"builtin": a.pgbench_builtin, "rate": a.pgbench_rate},
        "mysql": {"load_type": a.mysqlslap_load_type},
    }
    loads = [LOADS[n](**options.get(n, {})) for n in names]
    for tool in [ld.name.split()[0] for ld in loads] + ["redis-cli", "psql", "mysql"]:
        if not shutil.which(tool):
            sys.exit(f"{tool} not found: run scripts/bootstrap.sh")
    cleanup_on_signals()
    stats_before = BPF_STATS.read_text().strip()
    tmp = Path(tempfile.mkdtemp(prefix="pxtui-bench-load-"))
    t_start = time.monotonic()
    others = other_agents(None)
    ready: list[Load] = []
    try:
        for load in loads:
            load.setup(a.seconds)
            ready.append(load)
        base = {ld.name: measure(ld) for ld in loads}
        with running_vizier(tmp / "state") as v:
            viz, client = v.proc, v.client()
            BPF_STATS.write_text("1")
            time.sleep(1.0)  # let start-up work (process scan, first flushes) settle
            i0 = sum(cpu_split(viz.pid))
            time.sleep(IDLE_S)
            idle_ms_s = (sum(cpu_split(viz.pid)) - i0) * 1e3 / IDLE_S
            try:
                traced = {ld.name: measure(ld, viz.pid, client) for ld in loads}
                others = sorted(set(others) | set(other_agents(viz.pid)))
            finally:
                client.close()
    finally:
        BPF_STATS.write_text(stats_before)
        for load in ready:
            try:
                load.teardown()
            except Exception as e:  # report, and still clean the others up
                log(f"{load.name}: cleanup failed: {e}")
        shutil.rmtree(tmp, ignore_errors=True)
    report(loads, base, traced, idle_ms_s)
    print(f"whole bench {time.monotonic() - t_start:.0f} s")
    if others:
        print(f"WARNING: other embedded Viziers ran on this host during the bench (pids {others}): their probes and "
              "CPU use disturb both the baseline and the traced runs")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
