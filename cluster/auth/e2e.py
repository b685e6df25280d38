"""End-to-end encryption between the client and the Vizier, in both directions.

Results: the client sends a fresh X25519 public key with every request; the broker seals every Arrow
IPC payload with libsodium's sealed box for it.

Requests: the Vizier has its own X25519 keypair in its state directory (0600). A client that knows
the public half (pinned in its config by `pxtui up`, or given as PXTUI_VIZIER_KEY from the output of
`pxtui api-key create`) seals the whole ExecuteScriptRequest for it: the script, its arguments and the
client's own result key. So anything between the two (a relay, a proxy, a log) sees only ciphertext,
and cannot swap in its own result key without replacing the request wholesale. The key is pinned out
of band rather than fetched over the connection, because the connection may run through the very
relay the seal protects against.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hashlib
import os
import stat
import threading
from pathlib import Path

import grpc
from google.protobuf.message import DecodeError
from nacl.exceptions import CryptoError
from nacl.public import PrivateKey, PublicKey, SealedBox

from cluster import paths
from cluster.api import vizier_pb2 as pb

KEY_BYTES = 32
KEY_ID_BYTES = 8


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


# ---- the Vizier's keypair --------------------------------------------------------------------------
def key_id(public_key: bytes) -> bytes:
    """A short, public name for a key: lets the Vizier tell "sealed for another key" from "corrupt"."""
    return hashlib.sha256(public_key).digest()[:KEY_ID_BYTES]


def fingerprint(public_key: bytes) -> str:
    return key_id(public_key).hex()


def encode_public_key(public_key: bytes) -> str:
    """The text form users copy into PXTUI_VIZIER_KEY or the config file (URL-safe base64)."""
    return base64.urlsafe_b64encode(public_key).decode()


def decode_public_key(text: str, where: str = "the Vizier key") -> bytes:
    try:
        raw = base64.urlsafe_b64decode(text.strip().encode())
    except (binascii.Error, ValueError) as e:
        raise E2EError(
            f"{where} is not base64 text ({e}); expected the 44 characters `pxtui api-key create` prints"
        ) from e
    if len(raw) != KEY_BYTES:
        raise E2EError(f"{where} decodes to {len(raw)} bytes; an X25519 public key is {KEY_BYTES}")
    return raw


def load_or_create_vizier_key(path: Path) -> PrivateKey:
    """The Vizier's private key, created on first use. Whoever comes first (`pxtui up`, `pxtui api-key
    create`, or the Vizier) creates it; the complete file is linked into place, so a concurrent reader
    never sees it half-written and every process agrees on one key."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    if not path.exists():
        key = PrivateKey.generate()
        tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(base64.b64encode(bytes(key)).decode() + "\n")
        try:
            os.link(tmp, path)
        except FileExistsError:
            pass  # another process won the race: use its key
        finally:
            tmp.unlink()
    return _read_vizier_key(path)


def _read_vizier_key(path: Path) -> PrivateKey:
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        raise E2EError(
            f"{path} holds the Vizier's private key but is readable by others "
            f"(mode {mode:o}); fix it with `chmod 600 {path}`"
        )
    text = path.read_text().strip()
    try:
        raw = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as e:
        raise E2EError(f"{path} is not a Vizier key (not base64: {e})") from e
    if len(raw) != KEY_BYTES:
        raise E2EError(f"{path} is not a Vizier key ({len(raw)} bytes, not {KEY_BYTES})")
    return PrivateKey(raw)


# ---- sealed requests -------------------------------------------------------------------------------
_PLAIN_FIELDS = ("query_str", "exec_funcs", "client_public_key", "script_name", "timeout_ms")


class SealedRequestError(E2EError):
    """A sealed request the Vizier cannot use; code is the gRPC status to answer with."""

    def __init__(self, code: grpc.StatusCode, message: str):
        super().__init__(message)
        self.code = code


def seal_request(request: pb.ExecuteScriptRequest, vizier_public_key: bytes) -> pb.ExecuteScriptRequest:
    """The request as it travels: only the seal and the name of the key it was sealed for."""
    if request.sealed_request:
        raise E2EError("the request is already sealed")
    body = request.SerializeToString()
    return pb.ExecuteScriptRequest(
        sealed_request=seal(vizier_public_key, body), vizier_key_id=key_id(vizier_public_key)
    )


def open_request(request: pb.ExecuteScriptRequest, vizier_key: PrivateKey) -> pb.ExecuteScriptRequest:
    """The plaintext request inside a sealed one; a request that is not sealed is returned as it is."""
    if not request.sealed_request:
        return request
    mine = bytes(vizier_key.public_key)
    mixed = [f for f in _PLAIN_FIELDS if _has(request, f)]
    if mixed:
        raise SealedRequestError(
            grpc.StatusCode.INVALID_ARGUMENT,
            f"a sealed request carries {', '.join(mixed)} outside its seal; everything but the seal must be empty",
        )
    if request.vizier_key_id and request.vizier_key_id != key_id(mine):
        raise SealedRequestError(
            grpc.StatusCode.FAILED_PRECONDITION,
            f"the request was sealed for Vizier key {request.vizier_key_id.hex()}, but this Vizier's key is "
            f"{fingerprint(mine)}: the key pinned in the client is stale or belongs to another Vizier; "
            "re-pin it (`pxtui up` on the Vizier's host, or PXTUI_VIZIER_KEY from `pxtui api-key create`)",
        )
    try:
        body = SealedBox(vizier_key).decrypt(request.sealed_request)
    except CryptoError as e:
        raise SealedRequestError(
            grpc.StatusCode.INVALID_ARGUMENT,
            f"the sealed request does not open with this Vizier's key {fingerprint(mine)}",
        ) from e
    inner = pb.ExecuteScriptRequest()
    try:
        inner.ParseFromString(body)
    except DecodeError as e:
        raise SealedRequestError(
            grpc.StatusCode.INVALID_ARGUMENT, "the sealed request is not an ExecuteScriptRequest"
        ) from e
    if inner.sealed_request or inner.vizier_key_id:
        raise SealedRequestError(grpc.StatusCode.INVALID_ARGUMENT, "a sealed request may not nest another seal")
    return inner


def _has(msg: pb.ExecuteScriptRequest, field: str) -> bool:
    value = getattr(msg, field)
    return bool(len(value)) if field == "exec_funcs" else bool(value)


_keys_lock = threading.Lock()
_keys: dict[Path, tuple[int, PrivateKey]] = {}


def vizier_key(path: Path) -> PrivateKey:
    """The Vizier's key from its state directory, read once per change of the file."""
    with _keys_lock:
        with contextlib.suppress(FileNotFoundError):
            mtime = path.stat().st_mtime_ns
            cached = _keys.get(path)
            if cached and cached[0] == mtime:
                return cached[1]
        key = load_or_create_vizier_key(path)
        _keys[path] = (path.stat().st_mtime_ns, key)
        return key


def open_request_or_abort(request: pb.ExecuteScriptRequest, context: grpc.ServicerContext) -> pb.ExecuteScriptRequest:
    """For the broker: the plaintext request, or the call ends with a status that says what is wrong."""
    if not request.sealed_request:
        return request
    try:
        return open_request(request, vizier_key(paths.vizier_box_key_file()))
    except SealedRequestError as e:
        context.abort(e.code, str(e))
    except E2EError as e:  # the Vizier's own key file is unusable: the operator's problem, said plainly
        context.abort(grpc.StatusCode.INTERNAL, str(e))
    raise AssertionError("unreachable: context.abort raises")


def local_vizier_public_key_text() -> str:
    """This host's Vizier public key as users pin it (created if the Vizier has not started yet)."""
    return encode_public_key(bytes(load_or_create_vizier_key(paths.vizier_box_key_file()).public_key))
