"""Short-lived service JWTs for calls between Vizier roles (broker <-> PEM <-> Kelvin).

Every token is HS256 over a per-deployment key and names who issued it (iss), which role it is for
(aud) and when it stops being valid (exp, a minute by default). Verification pins the algorithm
list to HS256, so `none`, RS256 with a public key used as an HMAC secret, or any other algorithm
is refused whatever the token's header claims; the audience and expiry are required claims.
Rotating the key needs only a restart of the roles, since nothing else stores tokens.
"""

from __future__ import annotations

import os
import secrets
import time
from dataclasses import dataclass
from pathlib import Path

import jwt

ALGORITHM = "HS256"
DEFAULT_TTL_S = 60
MIN_KEY_BYTES = 32
LEEWAY_S = 5


class TokenError(PermissionError):
    """A service token that must be refused; the message says why, never the token or the key."""


@dataclass(frozen=True)
class Claims:
    subject: str
    issuer: str
    audience: str
    expires_at: int


def load_or_create_key(path: Path) -> bytes:
    """The deployment's signing key: created once (32 random bytes, mode 0600), then read."""
    try:
        key = path.read_bytes()
    except FileNotFoundError:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        key = secrets.token_bytes(MIN_KEY_BYTES)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(key)
        return key
    if len(key) < MIN_KEY_BYTES:
        raise TokenError(f"the signing key in {path} is {len(key)} bytes; at least {MIN_KEY_BYTES} are needed")
    return key


class ServiceTokens:
    """Issues and verifies the tokens of one role."""

    def __init__(self, key: bytes, issuer: str, ttl_s: int = DEFAULT_TTL_S):
        if len(key) < MIN_KEY_BYTES:
            raise TokenError(f"a service signing key needs at least {MIN_KEY_BYTES} bytes, got {len(key)}")
        self._key = key
        self.issuer = issuer
        self.ttl_s = ttl_s

    def issue(self, audience: str, subject: str | None = None, now: float | None = None) -> str:
        now = time.time() if now is None else now
        claims = {
            "iss": self.issuer,
            "sub": subject or self.issuer,
            "aud": audience,
            "iat": int(now),
            "exp": int(now) + self.ttl_s,
            "jti": secrets.token_hex(8),
        }
        return jwt.encode(claims, self._key, algorithm=ALGORITHM)

    def verify(self, token: str | None, audience: str, now: float | None = None) -> Claims:
        if not token:
            raise TokenError("no service token")
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError as e:
            raise TokenError(f"malformed service token: {e}") from None
        if header.get("alg") != ALGORITHM:
            raise TokenError(f"service token algorithm {header.get('alg')!r} refused: only {ALGORITHM} is accepted")
        options = {"require": ["exp", "aud", "iss", "sub"], "verify_exp": now is None}
        try:
            claims = jwt.decode(token, self._key, algorithms=[ALGORITHM], audience=audience,
                                options=options, leeway=LEEWAY_S)
        except jwt.ExpiredSignatureError:
            raise TokenError("service token expired") from None
        except jwt.InvalidAudienceError:
            raise TokenError(f"service token is not meant for {audience!r}") from None
        except jwt.InvalidSignatureError:
            raise TokenError("service token signature does not match this deployment's key") from None
        except jwt.PyJWTError as e:
            raise TokenError(f"service token refused: {e}") from None
        if now is not None and claims["exp"] + LEEWAY_S < now:
            raise TokenError("service token expired")
        return Claims(claims["sub"], claims["iss"], audience, int(claims["exp"]))
