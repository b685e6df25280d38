"""Data access modes over Arrow: restricted replaces payload columns, pii masks PII inside strings.

The checksummed patterns (cards, IBANs) are checked as columns; hypothesis compares them with a plain
per-string reference so the vectorised arithmetic cannot drift from the definition."""

from __future__ import annotations

import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cluster.auth.redaction import REDACTED, redact_outputs, redact_pii, redact_table, redacting_batches


def pii(*values: str | None) -> list[str | None]:
    return redact_pii(pa.array(list(values), pa.string())).to_pylist()


def http_table() -> pa.Table:
    schema = pa.schema(
        [
            pa.field("time_", pa.timestamp("ns")),
            pa.field("req_path", pa.string()),
            pa.field("req_headers", pa.string()),
            pa.field("req_body", pa.string(), metadata={b"semantic_type": b"ST_NONE"}),
            pa.field("resp_body", pa.large_string()),
            pa.field("resp_status", pa.int64()),
            pa.field("resp", pa.dictionary(pa.int32(), pa.string())),
        ],
        metadata={b"table": b"http_events"},
    )
    return pa.table(
        {
            "time_": pa.array([1, 2, 3], pa.timestamp("ns")),
            "req_path": ["/a?mail=bob@example.org", "/b", None],
            "req_headers": ['{"Authorization": "Bearer abcdefghijk123"}', "{}", None],
            "req_body": ["card 4111 1111 1111 1111", None, "x"],
            "resp_body": pa.array(["from 10.0.0.7", "", "ok"], pa.large_string()),
            "resp_status": [200, 404, 500],
            "resp": pa.array(["alice@example.com", "alice@example.com", "fine"])
            .dictionary_encode()
            .cast(pa.dictionary(pa.int32(), pa.string())),
        },
        schema=schema,
    )


# ---- restricted --------------------------------------------------------------------------------
def test_restricted_replaces_every_payload_column_and_keeps_the_rest():
    t = http_table()
    out = redact_table(t, "restricted")
    assert out.schema.equals(t.schema, check_metadata=True)
    assert out.column("req_body").to_pylist() == [REDACTED] * 3  # nulls too: nothing of it is kept
    assert out.column("req_headers").to_pylist() == [REDACTED] * 3
    assert out.column("resp_body").to_pylist() == [REDACTED] * 3
    assert out.column("resp").to_pylist() == [REDACTED] * 3
    for kept in ("time_", "req_path", "resp_status"):
        assert out.column(kept).equals(t.column(kept))


def test_restricted_clears_a_payload_column_of_another_type():
    t = pa.table({"req_body": pa.array([b"\x00secret"], pa.binary()), "n": [1]})
    out = redact_table(t, "restricted")
    assert out.column("req_body").to_pylist() == [None] and out.column("n").to_pylist() == [1]


def test_full_is_untouched_and_unknown_modes_are_refused():
    t = http_table()
    assert redact_table(t, "full") is t
    with pytest.raises(ValueError, match="unknown data access mode 'admin'"):
        redact_table(t, "admin")


def test_redact_outputs_keeps_names_and_order():
    t = http_table()
    outs = redact_outputs([("b", t), ("a", t)], "restricted")
    assert [n for n, _ in outs] == ["b", "a"]
    assert outs[1][1].column("req_body").to_pylist() == [REDACTED] * 3


# ---- pii ----------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("write to alice.smith+x@mail.example.co.uk now", "write to <REDACTED_EMAIL> now"),
        ("url-encoded bob%40example.com", "url-encoded <REDACTED_EMAIL>"),
        ("from 192.168.10.254:8080", "from <REDACTED_IPV4>:8080"),
        ("v1.2.3.4 is a version, 300.1.1.1 no address", "v1.2.3.4 is a version, 300.1.1.1 no address"),
        ("peer fe80::1ff:fe23:4567:890a ok", "peer <REDACTED_IPV6> ok"),
        ("lo ::1", "lo <REDACTED_IPV6>"),
        ("mapped ::ffff:10.1.2.3.", "mapped <REDACTED_IPV6>."),
        ("full 2001:0db8:85a3:0000:0000:8a2e:0370:7334", "full <REDACTED_IPV6>"),
        ("at 12:30:45 and std::vector", "at 12:30:45 and std::vector"),
        ("mac 00:1A:2b:3c:4D:5e", "mac <REDACTED_MAC_ADDR>"),
        ("visa 4111-1111-1111-1111.", "visa <REDACTED_CC_NUMBER>."),
        ("amex 378282246310005 mc 5555555555554444", "amex <REDACTED_CC_NUMBER> mc <REDACTED_CC_NUMBER>"),
        ("typo 4111 1111 1111 1112", "typo 4111 1111 1111 1112"),  # fails Luhn
        ("ts 1712345678901234567 id 9999999999999995", "ts 1712345678901234567 id 9999999999999995"),
        ("iban DE89 3704 0044 0532 0130 00", "iban <REDACTED_IBAN>"),
        ("iban GB82WEST12345698765432;", "iban <REDACTED_IBAN>;"),
        ("not iban DE89370400440532013001", "not iban DE89370400440532013001"),  # fails mod 97
        ("ssn 078-05-1120", "ssn <REDACTED_SSN>"),
        ("call (555) 123-4567 or +1 555.123.4567", "call <REDACTED_PHONE> or <REDACTED_PHONE>"),
        ("e164 +4915112345678", "e164 <REDACTED_PHONE>"),
        ("date 2024-01-15 port 5432", "date 2024-01-15 port 5432"),
        (
            "jwt eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhbGljZSJ9.c2lnbmF0dXJl end",
            "jwt <REDACTED_JWT> end",
        ),
        ("Authorization: Bearer abc.DEF_123-456", "Authorization: Bearer <REDACTED_TOKEN>"),
        ("authorization: basic dXNlcjpwYXNzd29yZA==", "authorization: basic <REDACTED_TOKEN>"),
        ("key pxk_AbCdEfGhIjKlMnOpQrStUvWx", "key <REDACTED_API_KEY>"),
        ("", ""),
    ],
)
def test_pii_patterns(text: str, expected: str):
    assert pii(text) == [expected]


def test_several_cards_in_one_string_are_checked_one_by_one():
    s = "a 4111111111111111 b 4111111111111112 c 6011111111111117 d"
    assert pii(s) == ["a <REDACTED_CC_NUMBER> b 4111111111111112 c <REDACTED_CC_NUMBER> d"]


def test_nulls_rows_without_pii_and_marker_characters_survive():
    out = pii(None, "nothing here", "odd \x1e\x1f bytes 4111111111111111", "\x1f4111111111111112\x1e")
    assert out[0] is None and out[1] == "nothing here"
    assert out[2] == "odd \ufffd\ufffd bytes <REDACTED_CC_NUMBER>"
    assert out[3] == "\ufffd4111111111111112\ufffd"  # a forged marker cannot make a bad number pass


def test_pii_mode_covers_every_string_column_of_every_width_and_encoding():
    t = http_table()
    out = redact_table(t, "pii")
    assert out.schema.equals(t.schema, check_metadata=True)
    assert out.column("req_path").to_pylist() == ["/a?mail=<REDACTED_EMAIL>", "/b", None]
    assert out.column("req_headers").to_pylist()[0] == '{"Authorization": "Bearer <REDACTED_TOKEN>"}'
    assert out.column("req_body").to_pylist() == ["card <REDACTED_CC_NUMBER>", None, "x"]
    assert out.column("resp_body").to_pylist() == ["from <REDACTED_IPV4>", "", "ok"]
    assert out.column("resp").to_pylist() == ["<REDACTED_EMAIL>", "<REDACTED_EMAIL>", "fine"]
    assert out.column("resp_status").equals(t.column("resp_status"))


def test_chunked_columns_keep_their_chunks():
    col = pa.chunked_array([["mail a@b.co"], [], ["4111111111111111", None]])
    out = redact_pii(col)
    assert isinstance(out, pa.ChunkedArray) and out.num_chunks == 3
    assert out.to_pylist() == ["mail <REDACTED_EMAIL>", "<REDACTED_CC_NUMBER>", None]


def test_source_level_batches_are_redacted_before_any_operator():
    t = http_table()
    (b,) = redacting_batches(t.to_batches(), "restricted")
    assert b.schema.equals(t.schema) and b.column(3).to_pylist() == [REDACTED] * 3
    batches = t.to_batches()
    assert next(redacting_batches(batches, "full")) is batches[0]


# ---- the checksums agree with their definitions ---------------------------------------------------
def luhn_ok(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch)
        if i % 2 == 1:
            d = d * 2 - 9 if d * 2 > 9 else d * 2
        total += d
    return total % 10 == 0


def iban_ok(iban: str) -> bool:
    moved = iban[4:] + iban[:4]
    return int("".join(str(int(c, 36)) for c in moved)) % 97 == 1


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet="0123456789", min_size=12, max_size=18), st.sampled_from("23456"))
def test_card_detection_matches_luhn(rest: str, first: str):
    number = first + rest
    expected = "<REDACTED_CC_NUMBER>" if luhn_ok(number) else number
    assert pii(f"n={number};") == [f"n={expected};"]


@settings(max_examples=300, deadline=None)
@given(
    st.sampled_from(["DE", "GB", "FR", "NL"]),
    st.text(alphabet="0123456789", min_size=2, max_size=2),
    st.text(alphabet="0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ", min_size=11, max_size=30),
)
def test_iban_detection_matches_mod_97(country: str, check: str, bban: str):
    iban = country + check + bban
    got = pii(f"pay {iban} now")[0]
    if iban_ok(iban):
        assert got == "pay <REDACTED_IBAN> now"
    else:  # not an IBAN; its digits may still be other PII, but the IBAN tag is never used
        assert "<REDACTED_IBAN>" not in got


def test_repetitive_columns_are_redacted_once_per_value_with_nulls_in_place():
    values = ["10.0.0.1", None, "ok", "mail a@b.co"] * 50
    out = redact_pii(pa.array(values, pa.large_string()))
    assert out.type == pa.large_string()
    assert out.to_pylist() == ["<REDACTED_IPV4>", None, "ok", "mail <REDACTED_EMAIL>"] * 50
