from __future__ import annotations

import string
from datetime import date

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given, settings
from hypothesis import strategies as st

from sync.badge_token import (
    PREFIX,
    BadgeError,
    issue_token,
    key_id_of,
    verify_token,
)

QR_ALPHANUMERIC = set(string.digits + string.ascii_uppercase + " $%*+-./:")
TOKEN_ALPHABET = string.ascii_uppercase + "234567"


def test_round_trip(issuing_key, keyring):
    token = issue_token(issuing_key, "SZ-000123", 3, date(2026, 11, 29))
    check = verify_token(token, keyring)
    assert check.valid and check.reason == "ok"
    assert (check.cadre_id, check.serial, check.issued) == ("SZ-000123", 3, date(2026, 11, 29))
    assert check.key_id == key_id_of(issuing_key.public_key())


def test_token_is_qr_alphanumeric(issuing_key):
    token = issue_token(
        issuing_key, "a.b_c-0123456789ABCDEFGHIJKLMNOPQRS"[:32], 65535, date(2099, 1, 1)
    )
    assert set(token) <= QR_ALPHANUMERIC


def test_every_single_character_change_is_refused(issuing_key, keyring):
    token = issue_token(issuing_key, "C0042", 1, date(2026, 11, 29))
    body_start = len(PREFIX) + 1
    tried = 0
    for i in range(len(token)):
        alphabet = TOKEN_ALPHABET if i >= body_start else string.ascii_uppercase + string.digits
        for ch in alphabet:
            if ch == token[i]:
                continue
            altered = token[:i] + ch + token[i + 1 :]
            check = verify_token(altered, keyring)
            assert not check.valid, f"position {i} -> {ch} accepted"
            assert check.cadre_id in (None, "C0042") or check.reason != "ok"
            tried += 1
    assert tried > 31 * (len(token) - body_start)


def test_non_canonical_base32_of_same_bytes_is_refused(issuing_key, keyring):
    # 79 raw bytes leave 3 spare bits in the last base32 character: other characters decode to
    # exactly the same bytes and must still be refused.
    token = issue_token(issuing_key, "C0042", 1, date(2026, 11, 29))
    last = TOKEN_ALPHABET.index(token[-1])
    same_bytes = [TOKEN_ALPHABET[v] for v in range(32) if v != last and (v >> 3) == (last >> 3)]
    assert same_bytes, "expected spare bits in the last character"
    for ch in same_bytes:
        assert verify_token(token[:-1] + ch, keyring).reason == "malformed"


def test_other_key_is_refused(issuing_key, keyring):
    stranger = Ed25519PrivateKey.generate()
    token = issue_token(stranger, "C0042", 1, date(2026, 11, 29))
    assert verify_token(token, keyring).reason == "unknown_key"
    # Same key id but a different key: a forger who copies the key id still fails the signature.
    forged_ring = {key_id_of(stranger.public_key()): issuing_key.public_key()}
    assert verify_token(token, forged_ring).reason == "bad_signature"


def test_revoked_through_serial(issuing_key, keyring):
    old = issue_token(issuing_key, "C0042", 1, date(2026, 1, 1))
    new = issue_token(issuing_key, "C0042", 2, date(2026, 6, 1))
    revoked = {"C0042": 1}
    assert verify_token(old, keyring, revoked).reason == "revoked"
    assert verify_token(new, keyring, revoked).valid


def test_wrong_version_and_foreign(issuing_key, keyring):
    token = issue_token(issuing_key, "C0042", 1, date(2026, 11, 29))
    assert verify_token("CB2" + token[3:], keyring).reason == "wrong_version"
    assert verify_token("https://example.org/", keyring).reason == "foreign"
    assert verify_token("", keyring).reason == "foreign"
    assert verify_token(token[:40], keyring).reason == "malformed"


@pytest.mark.parametrize("bad_id", ["", "宋昕", "a b", "x" * 33, "id\n"])
def test_issuing_refuses_bad_ids(issuing_key, bad_id):
    with pytest.raises(BadgeError):
        issue_token(issuing_key, bad_id, 1, date(2026, 11, 29))


@settings(max_examples=300, deadline=None)
@given(st.text())
def test_random_strings_get_a_reason(keyring, text):
    check = verify_token(text, keyring)
    assert not check.valid and check.message


@settings(max_examples=300, deadline=None)
@given(st.binary(min_size=0, max_size=120))
def test_random_bytes_behind_the_prefix_get_a_reason(keyring, raw):
    import base64

    check = verify_token("CB1" + base64.b32encode(raw).decode().rstrip("="), keyring)
    assert not check.valid and check.reason in {
        "malformed",
        "unknown_key",
        "bad_signature",
        "wrong_version",
    }


@settings(max_examples=200, deadline=None)
@given(
    name=st.text(min_size=1, max_size=12),
    cadre_id=st.from_regex(r"[A-Za-z0-9._-]{1,32}", fullmatch=True),
)
def test_no_name_in_payload(issuing_key, name, cadre_id):
    token = issue_token(issuing_key, cadre_id, 1, date(2026, 11, 29))
    assert set(token) <= QR_ALPHANUMERIC
    if len(name) > 2 and not set(name) <= QR_ALPHANUMERIC:
        assert name not in token
