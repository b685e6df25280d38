"""Service JWTs: HS256 only, the right key, audience and lifetime; every forgery is refused."""

import base64
import json
import stat
import time

import jwt
import pytest

from cluster.auth.service_tokens import ServiceTokens, TokenError, load_or_create_key

KEY = b"k" * 32
OTHER = b"o" * 32


def b64(d: dict) -> str:
    return base64.urlsafe_b64encode(json.dumps(d).encode()).rstrip(b"=").decode()


def claims(**over):
    now = int(time.time())
    c = {"iss": "broker", "sub": "broker", "aud": "pem", "iat": now, "exp": now + 60}
    c.update(over)
    return c


def test_round_trip():
    t = ServiceTokens(KEY, "broker")
    c = t.verify(t.issue("pem"), "pem")
    assert (c.issuer, c.audience, c.subject) == ("broker", "pem", "broker")


# Built when each test runs, not at collection: a token made at import would expire during a long run.
FORGERIES = {
    "none": (lambda: b64({"alg": "none", "typ": "JWT"}) + "." + b64(claims()) + ".", "algorithm 'none'"),
    "hs512": (lambda: jwt.encode(claims(), KEY * 2, algorithm="HS512"), "algorithm 'HS512'"),
    "wrong-key": (lambda: jwt.encode(claims(), OTHER, algorithm="HS256"), "signature"),
    "expired": (lambda: jwt.encode(claims(exp=int(time.time()) - 3600), KEY, algorithm="HS256"), "expired"),
    "audience": (lambda: jwt.encode(claims(aud="kelvin"), KEY, algorithm="HS256"), "not meant for 'pem'"),
    "no-exp": (lambda: jwt.encode({k: v for k, v in claims().items() if k != "exp"}, KEY, algorithm="HS256"),
               "exp"),
    "garbage": (lambda: "not-a-token", "malformed"),
    "empty": (lambda: "", "no service token"),
}


@pytest.mark.parametrize("case", list(FORGERIES))
def test_forged_tokens_are_refused(case):
    make, why = FORGERIES[case]
    with pytest.raises(TokenError, match=why) as e:
        ServiceTokens(KEY, "pem").verify(make(), "pem")
    assert KEY.decode() not in str(e.value)


def test_rsa_public_key_as_hmac_secret_is_refused():
    # the classic confusion attack: a token 'signed' with HS256 using a public key, or alg RS256
    token = b64({"alg": "RS256", "typ": "JWT"}) + "." + b64(claims()) + ".c2ln"
    with pytest.raises(TokenError, match="RS256"):
        ServiceTokens(KEY, "pem").verify(token, "pem")


def test_expiry_is_checked_against_the_given_clock():
    t = ServiceTokens(KEY, "broker", ttl_s=60)
    token = t.issue("pem", now=1_000_000)
    assert t.verify(token, "pem", now=1_000_030).expires_at == 1_000_060
    with pytest.raises(TokenError, match="expired"):
        t.verify(token, "pem", now=1_000_100)


def test_short_keys_are_refused_and_the_key_file_is_private(tmp_path):
    with pytest.raises(TokenError, match="at least 32"):
        ServiceTokens(b"short", "x")
    path = tmp_path / "state" / "signing.key"
    key = load_or_create_key(path)
    assert len(key) == 32 and load_or_create_key(path) == key
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
