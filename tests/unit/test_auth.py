import json
import stat

import pytest

from cluster.auth.api_keys import ApiKeyStore, AuthError
from cluster.auth.e2e import E2EError, new_client_key, public_bytes, seal, unseal


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
