"""Client API keys: created by `pxtui up`, stored only as hashes, checked on every call.

A key is 32 random bytes (URL-safe base64), so a plain SHA-256 is enough to store it: there is
nothing to brute-force the way there is with a password. Comparison is constant-time.

Each key carries a data access mode, Pixie's three: `full` (everything), `restricted` (bodies,
headers and other payload columns replaced at query time) and `pii` (best-effort masking of PII
inside every string). A record written before modes existed has none and means `full`.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
import time
from dataclasses import asdict, dataclass
from pathlib import Path

KEY_PREFIX = "pxk_"
MODES = ("full", "restricted", "pii")  # cluster/auth/redaction.py applies them
API_KEY_HEADER = "pxtui-api-key"  # the gRPC metadata key a client sends its API key in


class AuthError(PermissionError):
    """A missing, malformed or unknown API key. The message never contains the key itself."""


@dataclass(frozen=True)
class StoredKey:
    id: str
    name: str
    sha256: str
    created_ns: int
    mode: str = "full"


def check_mode(mode: str) -> str:
    if mode not in MODES:
        raise ValueError(f"unknown data access mode {mode!r}: choose one of {', '.join(MODES)}")
    return mode


def _digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def _write_private(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = path.with_suffix(path.suffix + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.replace(tmp, path)


class ApiKeyStore:
    """Hashed keys in <state dir>/api_keys.json (mode 0600)."""

    def __init__(self, path: Path):
        self.path = path
        self._keys: list[StoredKey] = []
        self._sig: tuple[int, int, int] | None = None
        self._load()

    def _load(self, force: bool = False) -> None:
        """Re-read the file when it changed. The signature includes the inode and size, not only the
        mtime: the kernel's coarse clock gives two writes a few milliseconds apart the same mtime."""
        try:
            st = self.path.stat()
        except FileNotFoundError:
            self._keys, self._sig = [], None
            return
        sig = (st.st_mtime_ns, st.st_ino, st.st_size)
        if sig == self._sig and not force:
            return
        doc = json.loads(self.path.read_text() or "[]")
        keys = [StoredKey(**k) for k in doc]
        for k in keys:  # fail closed: a mode this version does not know must not fall back to full access
            if k.mode not in MODES:
                raise AuthError(f"API key {k.id} in {self.path} has unknown data access mode {k.mode!r}")
        self._keys = keys
        self._sig = sig

    def _save(self) -> None:
        _write_private(self.path, json.dumps([asdict(k) for k in self._keys], indent=1))
        self._load(force=True)

    def create(self, name: str = "default", mode: str = "full") -> tuple[StoredKey, str]:
        """A new key: returns its record and the key text, which is shown once and never stored."""
        check_mode(mode)
        self._load()
        key = KEY_PREFIX + secrets.token_urlsafe(32)
        rec = StoredKey(id=secrets.token_hex(4), name=name, sha256=_digest(key), created_ns=time.time_ns(), mode=mode)
        self._keys.append(rec)
        self._save()
        return rec, key

    def list(self) -> list[StoredKey]:
        self._load()
        return list(self._keys)

    def delete(self, key_id: str) -> bool:
        self._load()
        before = len(self._keys)
        self._keys = [k for k in self._keys if k.id != key_id]
        if len(self._keys) != before:
            self._save()
            return True
        return False

    def verify(self, key: str | None) -> StoredKey:
        if not key:
            raise AuthError("no API key given: pass --api-key, set PXTUI_API_KEY, or run `pxtui up`")
        if not key.startswith(KEY_PREFIX):
            raise AuthError("malformed API key")
        digest = _digest(key)
        for force in (False, True):  # a miss re-reads the file once: the key may be seconds old
            self._load(force)
            for k in self._keys:
                if hmac.compare_digest(k.sha256, digest):
                    return k
        raise AuthError("unknown API key")
