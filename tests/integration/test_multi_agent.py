"""The Vizier at cluster size: several agents over real gRPC, partial failure, limits and service auth.

In-process clusters (tests/cluster_harness.py: a real broker server, real agent servers, real
channels and tokens) check results and limits quickly; real agent processes check what only a
process can show: kill -9 mid-query, a stalled agent, and a restart that rejoins.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import grpc
import jwt
import pytest
from click.testing import CliRunner

from cluster.api import agent_pb2 as apb
from cluster.api import agent_pb2_grpc as apb_grpc
from cluster.api import vizier_pb2 as pb
from cluster.auth.service_auth import BROKER_AUDIENCE, KELVIN_AUDIENCE, PEM_AUDIENCE, SERVICE_TOKEN_HEADER
from cluster.auth.service_tokens import ServiceTokens
from pxtui.cli import main
from pxtui.runner import ScriptError
from pxtui.scripts import find
from tests import datagen
from tests.cluster_harness import Cluster, StoreBackend, running_cluster, split_rows
from tests.util import as_rows
from tests.vizier_proc import ROOT, free_port, stop_group, wait_until

WINDOW = {"start_time": "-10m"}
SCRIPTS = {
    "px/http_data": {**WINDOW, "max_num_records": "100000"},
    "px/service_stats": {**WINDOW, "service": "shop/frontend"},
    "px/service": {**WINDOW, "service": "shop/catalog"},
    "px/namespace": {**WINDOW, "namespace": "shop"},
    "px/http_request_stats": WINDOW,
    "px/net_flow_graph": WINDOW,
    "px/pgsql_stats": WINDOW,
    "px/redis_data": WINDOW,
    "px/perf_flamegraph": WINDOW,
    "px/services": WINDOW,
}


def canonical(table) -> list[str]:  # type: ignore[no-untyped-def]
    """Rows as sorted JSON lines, floats to 9 significant digits (sums add up in another order)."""
    from tests.util import as_rows

    def norm(v: object) -> object:
        if isinstance(v, float):
            return float(f"{v:.9g}")
        if isinstance(v, bytes):
            return v.hex()
        return v

    return sorted(json.dumps({k: norm(v) for k, v in r.items()}, sort_keys=True, default=str) for r in as_rows(table))


@pytest.fixture(scope="module")
def generated() -> datagen.Generated:
    return datagen.generate(seed=11, end_time_ns=time.time_ns(), rows=3000)


def _backends(gen: datagen.Generated, n: int) -> list[StoreBackend]:
    parts = split_rows(gen.tables, n)
    return [StoreBackend(part, gen.metadata, f"node-{i}", asid=i + 1) for i, part in enumerate(parts)]


def test_three_agents_give_what_one_agent_gives(generated: datagen.Generated, tmp_path: Path) -> None:
    with running_cluster(tmp_path / "one", _backends(generated, 1)) as one, \
            running_cluster(tmp_path / "three", _backends(generated, 3)) as three:
        c1, c3 = one.client(), three.client()
        try:
            for script, args in SCRIPTS.items():
                r1, r3 = c1.run(find(script), args), c3.run(find(script), args)
                assert r3.warnings == [] and r1.warnings == []
                assert [n for n, _ in r1.tables] == [n for n, _ in r3.tables]
                for (name, t1), (_, t3) in zip(r1.tables, r3.tables, strict=True):
                    assert t1.num_rows > 0 or script == "px/perf_flamegraph", (script, name)
                    assert canonical(t1) == canonical(t3), f"{script}: {name} differs between 1 and 3 agents"
        finally:
            c1.close()
            c3.close()


def test_kelvins_share_the_merges_and_a_lost_kelvin_falls_back_to_the_broker(generated: datagen.Generated,
                                                                             tmp_path: Path) -> None:
    with running_cluster(tmp_path / "one", _backends(generated, 1)) as one, \
            running_cluster(tmp_path / "three", _backends(generated, 3)) as three:
        k1, k2 = three.add_kelvin("kelvin-a"), three.add_kelvin("kelvin-b")
        c1, c3 = one.client(), three.client()
        try:
            for script, args in SCRIPTS.items():
                r1, r3 = c1.run(find(script), args), c3.run(find(script), args)
                assert r3.warnings == []
                for (name, t1), (_, t3) in zip(r1.tables, r3.tables, strict=True):
                    assert canonical(t1) == canonical(t3), f"{script}: {name} differs when Kelvins merge"
            assert k1.service.queries >= 3 and k2.service.queries >= 3  # spread in turn
            [(_, status)] = c3.run(find("px/agent_status"), {}).tables
            kelvins = [r for r in as_rows(status) if r["hostname"].startswith("kelvin-")]
            assert len(kelvins) == 2 and not any(r["kernel_headers_installed"] for r in kelvins)
            # a Kelvin that goes away: the broker merges instead, and says so
            k1.server.stop(grace=None)
            seen: list[str] = []
            for _ in range(2):  # the Kelvins take turns, so one of two queries picks the lost one
                res = c3.run(find("px/http_data"), SCRIPTS["px/http_data"])
                assert res.tables[0][1].num_rows == generated.tables["http_events"].num_rows
                seen += res.warnings
            assert len(seen) == 1 and "kelvin-a" in seen[0] and "merged on the broker instead" in seen[0], seen
        finally:
            c1.close()
            c3.close()


def test_agent_status_lists_every_agent_and_the_kelvin(generated: datagen.Generated, tmp_path: Path) -> None:
    with running_cluster(tmp_path, _backends(generated, 3)) as cluster:
        client = cluster.client()
        try:
            [(_, table)] = client.run(find("px/agent_status"), {}).tables
            rows = as_rows(table)
            st = client.get_status()
        finally:
            client.close()
    assert sorted(r["hostname"] for r in rows if r["asid"]) == ["node-0", "node-1", "node-2"]
    assert all(r["agent_state"] == "AGENT_STATE_HEALTHY" for r in rows)
    assert len([r for r in rows if not r["kernel_headers_installed"] and r["asid"] == 0]) == 1  # the Kelvin
    assert sorted(a.hostname for a in st.agents) == ["node-0", "node-1", "node-2"]
    assert all(any(t.name == "http_events" and t.rows > 0 for t in a.tables) for a in st.agents)


def test_a_stopped_agent_is_named_and_the_others_still_answer(generated: datagen.Generated, tmp_path: Path) -> None:
    with running_cluster(tmp_path, _backends(generated, 3)) as cluster:
        gone = cluster.agents[1]
        gone.server.stop(grace=None)  # the process is alive, its service is not
        client = cluster.client()
        try:
            res = client.run(find("px/http_data"), SCRIPTS["px/http_data"])
        finally:
            client.close()
        cli = CliRunner().invoke(main, ["run", "px/http_data", "-o", "json", "--vizier", cluster.addr,
                                        "--api-key", cluster.api_key, "--", "--start_time", "-10m"])
    assert cli.exit_code == 0, cli.output
    doc = json.loads(cli.stdout)
    assert len(doc["warnings"]) == 1 and gone.backend.hostname in doc["warnings"][0]
    assert doc["tables"]["http_data"]["rows"]
    [warning] = res.warnings
    assert gone.backend.hostname in warning and gone.address in warning and "missing" in warning
    rows = res.tables[0][1].num_rows
    total = generated.tables["http_events"].num_rows
    assert total * 0.6 < rows < total * 0.7  # two of three thirds


class SlowBackend(StoreBackend):
    """An agent whose table scan stalls, as a PEM stuck in a long GC or swapped out would."""

    def __init__(self, *args, stall_s: float, **kwargs) -> None:  # type: ignore[no-untyped-def]
        super().__init__(*args, **kwargs)
        store, stall = self.store, stall_s

        class Stalling:
            def __getattr__(self, name: str):  # type: ignore[no-untyped-def]
                return getattr(store, name)

            def scan(self, table: str, start_ns, end_ns):  # type: ignore[no-untyped-def]
                time.sleep(stall)
                return store.scan(table, start_ns, end_ns)

        self.store = Stalling()  # type: ignore[assignment]


def test_a_stalled_agent_is_cut_off_at_the_deadline(generated: datagen.Generated, tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    parts = split_rows(generated.tables, 2)
    fast = StoreBackend(parts[0], generated.metadata, "fast-node", asid=1)
    slow = SlowBackend(parts[1], generated.metadata, "slow-node", asid=2, stall_s=8)
    with running_cluster(tmp_path, [fast, slow], timeout_s=30) as cluster:
        client = cluster.client()
        try:
            t0 = time.monotonic()
            res = client.execute(find("px/http_data").pxl, find("px/http_data").funcs_to_execute(
                SCRIPTS["px/http_data"]), "px/http_data", timeout_ms=2000)
            took = time.monotonic() - t0
        finally:
            client.close()
        # the same deadline from the command line: --timeout, as a user asks for it
        monkeypatch.setenv("PXTUI_TIMEOUT", "30")  # restored after the test; --timeout outranks it
        t0 = time.monotonic()
        cli = CliRunner().invoke(main, ["run", "px/http_data", "-o", "json", "--timeout", "2", "--vizier", cluster.addr,
                                        "--api-key", cluster.api_key, "--", "--start_time", "-10m"])
        cli_took = time.monotonic() - t0
    assert cli.exit_code == 0, cli.output
    assert cli_took < 4.5 and "slow-node" in json.loads(cli.stdout)["warnings"][0]
    assert took < 3.5, f"the query took {took:.1f} s for a 2 s deadline"
    [warning] = res.warnings
    assert "slow-node" in warning and "deadline" in warning
    assert res.tables[0][1].num_rows == parts[0]["http_events"].num_rows


def test_a_query_over_its_memory_budget_ends_clearly_and_others_run_on(generated: datagen.Generated,
                                                                      tmp_path: Path) -> None:
    with running_cluster(tmp_path, _backends(generated, 2), memory_budget=256 * 1024) as cluster:
        results: dict[str, object] = {}

        def run(name: str, script: str, args: dict[str, str]) -> None:
            client = cluster.client()
            try:
                results[name] = client.run(find(script), args)
            except ScriptError as e:
                results[name] = e
            finally:
                client.close()

        threads = [threading.Thread(target=run, args=("big", "px/http_data", SCRIPTS["px/http_data"]))]
        threads += [threading.Thread(target=run, args=(f"small{i}", "px/agent_status", {})) for i in range(3)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        assert isinstance(results["big"], ScriptError), results["big"]
        message = str(results["big"])
        assert "memory budget of 0.2 MiB" in message and ("agent node-" in message or "Kelvin" in message)
        for i in range(3):  # concurrent queries are isolated: each small one still answers
            assert not isinstance(results[f"small{i}"], ScriptError), results[f"small{i}"]
        # and the broker is still up for the next query
        run("after", "px/agent_status", {})
        assert not isinstance(results["after"], ScriptError)


# ---- service tokens on the wire ----------------------------------------------------------------
def _forged_tokens(key: bytes, audience: str) -> dict[str, str | None]:
    now = int(time.time())
    claims = {"iss": "attacker", "sub": "attacker", "aud": audience, "iat": now, "exp": now + 60}
    enc = jwt.utils.base64url_encode

    def signing_input(alg: str) -> bytes:
        return enc(json.dumps({"alg": alg, "typ": "JWT"}).encode()) + b"." + enc(json.dumps(claims).encode())

    def unsigned(alg: str, signature: bytes) -> str:
        return (signing_input(alg) + b"." + (enc(signature) if signature else b"")).decode()

    def hs256(secret: bytes) -> str:  # by hand: PyJWT itself refuses a PEM as an HMAC secret
        return unsigned("HS256", hmac.new(secret, signing_input("HS256"), hashlib.sha256).digest())

    # what an attacker holding the deployment's public material (or none) can make
    public_pem = b"-----BEGIN PUBLIC KEY-----\nMIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEA\n-----END PUBLIC KEY-----\n"
    return {
        "missing": None,
        "alg none": unsigned("none", b""),
        "alg None": unsigned("None", b""),
        "HS512 with the right key": jwt.encode(claims, key, algorithm="HS512"),
        "RS256 with a 2048-bit signature": unsigned("RS256", os.urandom(256)),
        "HS256 keyed with a public key (alg confusion)": hs256(public_pem),
        "another deployment's key": jwt.encode(claims, b"x" * 32, algorithm="HS256"),
        "expired": jwt.encode({**claims, "iat": now - 600, "exp": now - 300}, key, algorithm="HS256"),
        "another audience": jwt.encode({**claims, "aud": "someone-else"}, key, algorithm="HS256"),
        "no expiry": jwt.encode({k: v for k, v in claims.items() if k != "exp"}, key, algorithm="HS256"),
    }


def test_every_forged_service_token_is_refused(generated: datagen.Generated, tmp_path: Path) -> None:
    with running_cluster(tmp_path, _backends(generated, 1)) as cluster:
        agent = cluster.agents[0]
        kelvin = cluster.add_kelvin("kelvin-a")
        broker_ch, agent_ch = grpc.insecure_channel(cluster.addr), grpc.insecure_channel(agent.address)
        kelvin_ch = grpc.insecure_channel(kelvin.address)
        registry, pem = apb_grpc.AgentRegistryStub(broker_ch), apb_grpc.AgentServiceStub(agent_ch)
        kelvin_stub = apb_grpc.KelvinServiceStub(kelvin_ch)
        calls = {
            KELVIN_AUDIENCE: lambda md: list(kelvin_stub.ExecuteQuery(apb.KelvinRequest(), metadata=md, timeout=5)),
            BROKER_AUDIENCE: lambda md: registry.Register(
                apb.RegisterRequest(agent_id="evil", address="127.0.0.1:1", hostname="evil"), metadata=md, timeout=5),
            PEM_AUDIENCE: lambda md: pem.GetAgentStatus(pb.StatusRequest(), metadata=md, timeout=5),
        }
        try:
            for audience, call in calls.items():
                for what, token in _forged_tokens(cluster.signing_key, audience).items():
                    md = [] if token is None else [(SERVICE_TOKEN_HEADER, token)]
                    with pytest.raises(grpc.RpcError) as err:
                        call(md)
                    assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED, (audience, what)
                # a token for another role is refused too; the right one passes
                other = PEM_AUDIENCE if audience != PEM_AUDIENCE else BROKER_AUDIENCE
                tokens = ServiceTokens(cluster.signing_key, issuer="test")
                with pytest.raises(grpc.RpcError) as err:
                    call([(SERVICE_TOKEN_HEADER, tokens.issue(other))])
                assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED
            assert pem.GetAgentStatus(pb.StatusRequest(), timeout=5, metadata=[
                (SERVICE_TOKEN_HEADER, ServiceTokens(cluster.signing_key, issuer="t").issue(PEM_AUDIENCE))]).hostname
            assert sorted(a.hostname for a, _ in cluster.registry.snapshot()) == ["kelvin-a", "node-0"]  # not "evil"
            assert kelvin.service.queries == 0
        finally:
            broker_ch.close()
            agent_ch.close()
            kelvin_ch.close()


# ---- real agent processes ------------------------------------------------------------------------
def _agent_proc(cluster: Cluster, recording: Path, port: int, key_file: Path, log: Path) -> subprocess.Popen:
    env = {**os.environ, "PXTUI_SIGNING_KEY_FILE": str(key_file)}
    with open(log, "ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "cluster.pem.agent_main", "--broker", cluster.addr, "--replay", str(recording),
             "--listen", f"127.0.0.1:{port}", "--hostname", recording.name],
            cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)


def _healthy(cluster: Cluster) -> list[str]:
    return sorted(a.hostname for a, st in cluster.registry.snapshot() if st == "AGENT_STATE_HEALTHY")


ROWS = 20_000


@pytest.mark.timeout(240)
def test_kill_9_mid_query_then_the_agent_rejoins(tmp_path: Path) -> None:
    end = time.time_ns()
    recordings = []
    for i in range(3):
        path = tmp_path / f"node-{i}"
        datagen.write(path, seed=20 + i, end_time_ns=end, rows=ROWS)
        manifest = json.loads((path / "manifest.json").read_text())
        for a in manifest["agents"]:
            a["asid"] = 10 + i  # each node its own asid, as the broker requires
        (path / "manifest.json").write_text(json.dumps(manifest))
        recordings.append(path)
    with running_cluster(tmp_path / "vizier", timeout_s=60) as cluster:
        key_file = tmp_path / "signing.key"
        key_file.write_bytes(cluster.signing_key)
        key_file.chmod(0o600)
        ports = [free_port() for _ in recordings]
        procs = [_agent_proc(cluster, r, p, key_file, tmp_path / f"{r.name}.log") for r, p in zip(recordings, ports,
                                                                                                   strict=True)]
        try:
            wait_until(lambda: len(_healthy(cluster)) == 3, 60, "three agents healthy")
            client = cluster.client()
            pxl = ("import px\ndf = px.DataFrame('http_events', start_time='-10m')\n"
                   "df = df.groupby(['req_method']).agg(n=('latency', px.count))\npx.display(df, 'counts')\n")

            def counted(res) -> int:  # type: ignore[no-untyped-def]
                return sum(res.tables[0][1].column("n").to_pylist())

            assert counted(client.execute(pxl, None, "count", timeout_ms=20000)) == 3 * ROWS
            # a stalled agent (SIGSTOP) is cut off at the query's deadline, the others answer
            procs[2].send_signal(signal.SIGSTOP)
            t0 = time.monotonic()
            res = client.execute(pxl, None, "count", timeout_ms=3000)
            assert time.monotonic() - t0 < 4.0
            [warning] = res.warnings
            assert "node-2" in warning and "deadline" in warning and counted(res) == 2 * ROWS
            procs[2].send_signal(signal.SIGCONT)
            wait_until(lambda: len(_healthy(cluster)) == 3, 20, "node-2 heartbeating again")
            # kill -9 mid-query: the agent holds the request (stopped), then dies; the query does not
            # wait for its 30 s deadline but ends when the connection drops, with the others' rows
            procs[1].send_signal(signal.SIGSTOP)
            box: dict[str, object] = {}
            t = threading.Thread(target=lambda: box.update(res=client.execute(pxl, None, "count", timeout_ms=30000)))
            t0 = time.monotonic()
            t.start()
            time.sleep(0.5)
            procs[1].send_signal(signal.SIGKILL)
            t.join(40)
            assert time.monotonic() - t0 < 10, "the query waited for a dead agent"
            res = box["res"]
            [warning] = res.warnings  # type: ignore[attr-defined]
            assert "node-1" in warning and "missing" in warning and "node-2" not in warning
            assert counted(res) == 2 * ROWS  # exactly the two surviving agents' rows
            # the killed agent is reported unresponsive once its heartbeats stop
            wait_until(lambda: any(a.hostname == "node-1" and st == "AGENT_STATE_UNRESPONSIVE"
                                   for a, st in cluster.registry.snapshot()), 20, "node-1 unresponsive")
            # restart it on the same address: it rejoins, nothing else restarts
            t_restart = time.monotonic()
            procs[1] = _agent_proc(cluster, recordings[1], ports[1], key_file, tmp_path / "node-1.log")
            wait_until(lambda: len(_healthy(cluster)) == 3 and len(cluster.registry.snapshot()) == 3, 60,
                       "node-1 back")
            rejoin_s = time.monotonic() - t_restart
            res = client.execute(pxl, None, "count", timeout_ms=20000)
            assert res.warnings == [] and counted(res) == 3 * ROWS
            print(f"rejoin after restart: {rejoin_s:.2f} s")
            client.close()
        finally:
            for p in procs:
                stop_group(p, grace=5)
