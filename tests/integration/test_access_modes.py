"""Data access modes end to end, all real: a traced HTTP exchange carrying PII -> eBPF -> the Vizier's
broker -> results redacted for the mode of the API key that asked, sealed for that client.

Then many clients at once, with different keys and modes, through a relay: each gets its own result,
redacted for its own mode, and no client can open another's."""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import grpc
import pytest

from cluster.api import vizier_pb2 as pb
from cluster.api import vizier_pb2_grpc as pb_grpc
from cluster.auth.api_keys import API_KEY_HEADER, ApiKeyStore
from cluster.auth.e2e import E2EError, new_client_key, public_bytes, seal_request, unseal
from pxtui.client import VizierClient
from tests.conftest import Vizier
from tests.integration.test_relay import (
    found_rows,
    http_peer_server,
    poll_rows,
    relay_to,
    script_for,
    traced_post,
    vizier_public_key,
)

pytestmark = pytest.mark.ebpf

EMAIL, CARD, IP = "alice.doe@example.com", "4111 1111 1111 1111", "10.20.30.40"


@pytest.fixture(scope="module")
def http_server() -> Iterator[int]:
    with http_peer_server() as port:
        yield port


@pytest.fixture(scope="module")
def traced(vizier: Vizier, http_server: int) -> tuple[str, str]:
    """One POST whose body holds PII and a marker, traced and queryable (waited for with a full key)."""
    path_marker, row_marker = f"pm{uuid.uuid4().hex}", f"rm{uuid.uuid4().hex}"
    body = json.dumps({"email": EMAIL, "card": CARD, "ip": IP, "m": row_marker})
    traced_post(http_server, f"/modes/{path_marker}", body)
    client = VizierClient(vizier.addr, vizier.api_key, vizier_key=vizier_public_key(vizier))
    try:
        poll_rows(lambda: found_rows(client, path_marker), lambda rows: len(rows) >= 4, "the traced POST and GET")
    finally:
        client.close()
    return path_marker, row_marker


def key_for(v: Vizier, mode: str) -> str:
    return ApiKeyStore(v.state_dir / "api_keys.json").create(f"test-{mode}", mode)[1]


def post_row(rows: list[dict]) -> dict:
    return next(r for r in rows if r["req_method"] == "POST" and r["trace_role"] == 2)


def check(mode: str, rows: list[dict], path_marker: str, row_marker: str) -> None:
    """What a key of `mode` may see of the traced POST."""
    post = post_row(rows)
    assert post["req_path"] == f"/modes/{path_marker}"  # not a payload column: intact in every mode
    if mode == "full":
        assert all(x in post["req_body"] for x in (EMAIL, CARD, IP, row_marker))
        assert EMAIL in post["resp_body"] and "Content-Type" in post["req_headers"]
        assert post["remote_addr"] == "127.0.0.1"
    elif mode == "restricted":
        for col in ("req_body", "resp_body", "req_headers"):
            assert all(r[col] == "REDACTED" for r in rows), col
        assert post["remote_addr"] == "127.0.0.1"
    else:
        body = post["req_body"]
        assert row_marker in body and "<REDACTED_EMAIL>" in body
        assert "<REDACTED_CC_NUMBER>" in body and "<REDACTED_IPV4>" in body
        assert EMAIL not in post["resp_body"] and "Content-Type" in post["req_headers"]
        assert post["remote_addr"] == "<REDACTED_IPV4>"
    for r in rows:
        if mode != "full":
            assert all(EMAIL not in str(v) and CARD not in str(v) for v in r.values()), r


@pytest.mark.parametrize("mode", ["full", "restricted", "pii"])
def test_each_mode_sees_what_it_may(vizier: Vizier, traced: tuple[str, str], mode: str):
    path_marker, row_marker = traced
    client = VizierClient(vizier.addr, key_for(vizier, mode), vizier_key=vizier_public_key(vizier))
    try:
        rows = found_rows(client, path_marker)
    finally:
        client.close()
    check(mode, rows, path_marker, row_marker)


def test_a_key_without_a_mode_in_an_old_file_still_sees_everything(vizier: Vizier, traced: tuple[str, str]):
    """The Vizier's real key file, rewritten as a version before modes would have written it."""
    path = vizier.state_dir / "api_keys.json"
    key = key_for(vizier, "full")
    doc = json.loads(path.read_text())
    for k in doc:
        k.pop("mode", None)
    path.write_text(json.dumps(doc))
    client = VizierClient(vizier.addr, key)
    try:
        check("full", found_rows(client, traced[0]), *traced)
    finally:
        client.close()


def test_many_clients_at_once_each_get_their_own_redacted_results(vizier: Vizier, traced: tuple[str, str]):
    path_marker, row_marker = traced
    modes = ["full", "restricted", "pii"] * 3
    keys = [key_for(vizier, m) for m in modes]
    pinned = vizier_public_key(vizier)
    start = threading.Barrier(len(modes))
    with relay_to(vizier.addr) as relay:

        def one(i: int) -> list[tuple[str, list[dict]]]:
            client = VizierClient(f"127.0.0.1:{relay.port}", keys[i], vizier_key=pinned)
            try:
                start.wait(timeout=30)
                return [(modes[i], found_rows(client, path_marker)) for _ in range(3)]
            finally:
                client.close()

        with ThreadPoolExecutor(len(modes)) as pool:
            results = list(pool.map(one, range(len(modes))))
    for runs in results:
        for mode, rows in runs:
            check(mode, rows, path_marker, row_marker)


def test_no_client_can_open_another_clients_results(vizier: Vizier, traced: tuple[str, str]):
    """Raw calls at the API: three clients, concurrently, each with its own result key sealed inside its
    request; every batch opens with its own client's key and with no one else's."""
    path_marker, _ = traced
    pinned = vizier_public_key(vizier)
    modes = ["full", "restricted", "pii"]
    client_keys = [new_client_key() for _ in modes]
    api_keys = [key_for(vizier, m) for m in modes]
    with relay_to(vizier.addr) as relay, grpc.insecure_channel(f"127.0.0.1:{relay.port}") as ch:
        stub = pb_grpc.VizierServiceStub(ch)

        def call(i: int) -> list[bytes]:
            req = pb.ExecuteScriptRequest(
                query_str=script_for(path_marker), client_public_key=public_bytes(client_keys[i])
            )
            responses = stub.ExecuteScript(
                seal_request(req, pinned), metadata=[(API_KEY_HEADER, api_keys[i])], timeout=30
            )
            return [r.batch.sealed_ipc for r in responses if r.WhichOneof("result") == "batch"]

        with ThreadPoolExecutor(len(modes)) as pool:
            sealed = list(pool.map(call, range(len(modes))))
    for i, batches in enumerate(sealed):
        assert batches, f"client {i} got no batch"
        for payload in batches:
            assert unseal(client_keys[i], payload)
            for j, other in enumerate(client_keys):
                if j != i:
                    with pytest.raises(E2EError):
                        unseal(other, payload)
