"""End-to-end encryption of query results: each batch is sealed for the requesting client.

The client sends a fresh X25519 public key with every request; the broker seals every Arrow IPC
payload with libsodium's sealed box for it, so anything between the two (a relay, a proxy, a log)
sees only ciphertext. Sealed boxes are anonymous: the broker needs no key of its own.
"""

from __future__ import annotations

from nacl.exceptions import CryptoError
from nacl.public import PrivateKey, PublicKey, SealedBox

KEY_BYTES = 32


class E2EError(ValueError):
    pass


def new_client_key() -> PrivateKey:
    return PrivateKey.generate()


def public_bytes(key: PrivateKey) -> bytes:
    return bytes(key.public_key)


def seal(client_public_key: bytes, payload: bytes) -> bytes:
    if len(client_public_key) != KEY_BYTES:
        raise E2EError(
            f"the request's client public key must be {KEY_BYTES} bytes of X25519, got {len(client_public_key)}"
        )
    return SealedBox(PublicKey(client_public_key)).encrypt(payload)


def unseal(key: PrivateKey, sealed: bytes) -> bytes:
    try:
        return SealedBox(key).decrypt(sealed)
    except CryptoError as e:
        raise E2EError("a result batch failed to decrypt: it was not sealed for this client") from e
