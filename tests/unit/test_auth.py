import json
import os
import stat
from concurrent.futures import ThreadPoolExecutor

import grpc
import pytest

from cluster.api import vizier_pb2 as pb
from cluster.auth.api_keys import ApiKeyStore, AuthError
from cluster.auth.e2e import (
    E2EError,
    SealedRequestError,
    decode_public_key,
    encode_public_key,
    load_or_create_vizier_key,
    new_client_key,
    open_request,
    public_bytes,
    seal,
    seal_request,
    unseal,
)


def test_keys_are_stored_hashed_and_verified(tmp_path):
    store = ApiKeyStore(tmp_path / "keys.json")
    rec, key = store.create("ci")
    raw = (tmp_path / "keys.json").read_text()
    assert key not in raw and rec.sha256 in raw
    assert stat.S_IMODE((tmp_path / "keys.json").stat().st_mode) == 0o600
    assert store.verify(key).id == rec.id
    # a second store instance (another process) sees the same keys
    assert ApiKeyStore(tmp_path / "keys.json").verify(key).name == "ci"


@pytest.mark.parametrize("bad", [None, "", "nope", "pxk_" + "A" * 43])
def test_wrong_or_missing_keys_are_refused_without_echoing_them(tmp_path, bad):
    store = ApiKeyStore(tmp_path / "keys.json")
    store.create()
    with pytest.raises(AuthError) as e:
        store.verify(bad)
    if bad:
        assert bad not in str(e.value)


def test_deleted_key_stops_working(tmp_path):
    store = ApiKeyStore(tmp_path / "keys.json")
    rec, key = store.create()
    assert store.delete(rec.id)
    with pytest.raises(AuthError):
        store.verify(key)
    assert json.loads((tmp_path / "keys.json").read_text()) == []


def test_sealed_payload_opens_only_for_its_client():
    alice, mallory = new_client_key(), new_client_key()
    sealed = seal(public_bytes(alice), b"secret body")
    assert b"secret body" not in sealed
    assert unseal(alice, sealed) == b"secret body"
    with pytest.raises(E2EError):
        unseal(mallory, sealed)
    with pytest.raises(E2EError, match="32 bytes"):
        seal(b"short", b"x")


# ---- data access modes ---------------------------------------------------------------------------
def test_keys_carry_their_mode_and_old_records_mean_full(tmp_path):
    path = tmp_path / "keys.json"
    store = ApiKeyStore(path)
    _, restricted = store.create("r", mode="restricted")
    _, pii = store.create("p", mode="pii")
    assert store.verify(restricted).mode == "restricted" and store.verify(pii).mode == "pii"
    with pytest.raises(ValueError, match="unknown data access mode 'admin'"):
        store.create("x", mode="admin")
    # a file written before modes existed
    old = ApiKeyStore(tmp_path / "old.json")
    _, key = old.create("legacy")
    doc = json.loads((tmp_path / "old.json").read_text())
    del doc[0]["mode"]
    (tmp_path / "old.json").write_text(json.dumps(doc))
    assert ApiKeyStore(tmp_path / "old.json").verify(key).mode == "full"


def test_an_unknown_mode_in_the_file_fails_closed(tmp_path):
    store = ApiKeyStore(tmp_path / "keys.json")
    _, key = store.create("k", mode="pii")
    doc = json.loads((tmp_path / "keys.json").read_text())
    doc[0]["mode"] = "superuser"
    (tmp_path / "keys.json").write_text(json.dumps(doc))
    with pytest.raises(AuthError, match="unknown data access mode 'superuser'"):
        ApiKeyStore(tmp_path / "keys.json").verify(key)


def test_a_key_written_by_another_process_moments_later_is_seen(tmp_path):
    """Two writes within one tick of the kernel's coarse clock share an mtime; the store still reloads."""
    reader = ApiKeyStore(tmp_path / "keys.json")
    writer = ApiKeyStore(tmp_path / "keys.json")
    _, first = writer.create("a")
    assert reader.verify(first)
    for _ in range(20):
        _, key = writer.create("b")
        assert reader.verify(key).name == "b"


# ---- the Vizier's key and sealed requests ---------------------------------------------------------
def test_vizier_key_is_created_once_private_and_shared(tmp_path):
    path = tmp_path / "state" / "vizier_x25519.key"
    k1 = load_or_create_vizier_key(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert bytes(load_or_create_vizier_key(path)) == bytes(k1)
    assert decode_public_key(encode_public_key(bytes(k1.public_key))) == bytes(k1.public_key)
    os.chmod(path, 0o644)
    with pytest.raises(E2EError, match="readable by others"):
        load_or_create_vizier_key(path)


def test_vizier_key_creation_races_end_with_one_key(tmp_path):
    path = tmp_path / "vizier_x25519.key"
    with ThreadPoolExecutor(8) as pool:
        keys = list(pool.map(lambda _: bytes(load_or_create_vizier_key(path)), range(16)))
    assert len(set(keys)) == 1 and list(tmp_path.iterdir()) == [path]


@pytest.mark.parametrize("text", ["", "not base64!", "AAAA"])
def test_bad_pinned_keys_are_explained(text):
    with pytest.raises(E2EError, match="PXTUI_VIZIER_KEY"):
        decode_public_key(text, "PXTUI_VIZIER_KEY")


def _request(client_key: bytes) -> pb.ExecuteScriptRequest:
    return pb.ExecuteScriptRequest(
        query_str="import px\npx.display(px.DataFrame('http_events'))",
        client_public_key=client_key,
        script_name="secret-script",
        timeout_ms=1234,
        exec_funcs=[pb.FuncToExecute(func_name="f", arg_values=[pb.ArgValue(name="a", value="secret-arg")])],
    )


def test_a_sealed_request_hides_everything_and_opens_only_at_its_vizier(tmp_path):
    vizier = load_or_create_vizier_key(tmp_path / "v.key")
    other = load_or_create_vizier_key(tmp_path / "o.key")
    client = new_client_key()
    plain = _request(public_bytes(client))
    sealed = seal_request(plain, bytes(vizier.public_key))
    wire = sealed.SerializeToString()
    for secret in (b"http_events", b"secret-script", b"secret-arg", public_bytes(client)):
        assert secret not in wire
    assert open_request(sealed, vizier) == plain
    with pytest.raises(SealedRequestError, match="sealed for Vizier key") as e:
        open_request(sealed, other)
    assert e.value.code == grpc.StatusCode.FAILED_PRECONDITION
    # without the key id (or with a forged one) it still cannot open
    anon = pb.ExecuteScriptRequest(sealed_request=sealed.sealed_request)
    with pytest.raises(SealedRequestError, match="does not open") as e:
        open_request(anon, other)
    assert e.value.code == grpc.StatusCode.INVALID_ARGUMENT


def test_unsealed_requests_pass_and_mixed_ones_are_refused(tmp_path):
    vizier = load_or_create_vizier_key(tmp_path / "v.key")
    plain = _request(public_bytes(new_client_key()))
    assert open_request(plain, vizier) is plain
    mixed = seal_request(plain, bytes(vizier.public_key))
    mixed.client_public_key = public_bytes(new_client_key())  # a relay swapping in its own result key
    with pytest.raises(SealedRequestError, match="client_public_key outside its seal"):
        open_request(mixed, vizier)
    pub = bytes(vizier.public_key)
    inner = pb.ExecuteScriptRequest(sealed_request=b"x", vizier_key_id=b"y").SerializeToString()
    nested = pb.ExecuteScriptRequest(sealed_request=seal(pub, inner))  # seal_request itself refuses this
    with pytest.raises(SealedRequestError, match="nest"):
        open_request(nested, vizier)


# ---- the CLI: keys with modes, and the Vizier key pinned where the client will look for it ---------
def test_cli_creates_keys_with_a_mode_and_prints_the_vizier_key_to_pin(tmp_path, monkeypatch):
    from click.testing import CliRunner

    from pxtui.cli import main

    monkeypatch.setenv("PXTUI_STATE_DIR", str(tmp_path / "state"))
    out = CliRunner().invoke(main, ["api-key", "create", "--name", "ops", "--mode", "restricted"])
    assert out.exit_code == 0, out.output
    key = next(line for line in out.output.splitlines() if line.startswith("pxk_"))
    assert ApiKeyStore(tmp_path / "state" / "api_keys.json").verify(key).mode == "restricted"
    pinned = out.output.split("PXTUI_VIZIER_KEY): ")[1].strip()
    vizier = load_or_create_vizier_key(tmp_path / "state" / "vizier_x25519.key")
    assert decode_public_key(pinned) == bytes(vizier.public_key)
    listed = CliRunner().invoke(main, ["api-key", "list"])
    assert "ops" in listed.output and "restricted" in listed.output
    bad = CliRunner().invoke(main, ["api-key", "create", "--mode", "admin"])
    assert bad.exit_code == 2 and "admin" in bad.output


def test_pxtui_up_pins_the_local_vizier_key_in_the_client_config(tmp_path, monkeypatch):
    from pxtui import cli
    from pxtui.client import configured_vizier_key
    from pxtui.config import load_file

    monkeypatch.setenv("PXTUI_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "cfg"))
    monkeypatch.delenv("PXTUI_API_KEY", raising=False)
    monkeypatch.delenv("PXTUI_VIZIER_KEY", raising=False)
    cli._ensure_api_key("127.0.0.1:51400")
    vizier = load_or_create_vizier_key(tmp_path / "state" / "vizier_x25519.key")
    assert load_file()["vizier_public_key"] == encode_public_key(bytes(vizier.public_key))
    assert configured_vizier_key() == bytes(vizier.public_key)
    monkeypatch.setenv("PXTUI_VIZIER_KEY", encode_public_key(public_bytes(new_client_key())))
    assert configured_vizier_key() != bytes(vizier.public_key)  # the environment wins over the file
