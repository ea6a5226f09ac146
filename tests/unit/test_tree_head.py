"""Signed tree heads (``ledger.tree_head``): the exact signed bytes, the round trip, and
every way a head can be wrong — each must give False, never an exception.

The signed message and the key id are written out here from the public contract with
``json`` and ``hashlib``; the signatures are checked with ``cryptography`` directly, and
the key file loader against RFC 8032's first Ed25519 test vector.
"""

import base64
import hashlib
import json
import os
import stat
from datetime import UTC, datetime, timedelta, timezone

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)

from ledger.tree_head import (
    head_message,
    is_timestamp,
    key_id,
    load_or_create_private_key,
    public_key_raw,
    sign_head,
    utc_timestamp,
    verify_head,
)

H = bytes.fromhex
ROOT = hashlib.sha256(b"a root").digest()
STAMP = "2026-12-04T20:15:00Z"
# RFC 8032 §7.1, TEST 1: the secret key, its public key, and the signature of "".
RFC8032_SECRET = H("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60")
RFC8032_PUBLIC = H("d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a")
RFC8032_SIGNATURE = H(
    "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b"
)


@pytest.fixture(scope="module")
def key() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.generate()


@pytest.fixture(scope="module")
def public(key) -> bytes:
    return public_key_raw(key)


@pytest.fixture
def head(key) -> dict:
    return sign_head(key, 57, ROOT, STAMP)


def test_the_signed_message_is_the_sorted_compact_json_of_size_root_and_time():
    expected = json.dumps(
        {"tree_size": 57, "timestamp": STAMP, "root_hash": ROOT.hex()},
        sort_keys=True,
        separators=(",", ":"),
    ).encode("utf-8")
    assert head_message(57, ROOT, STAMP) == expected
    assert expected == (
        b'{"root_hash":"' + ROOT.hex().encode() + b'","timestamp":"2026-12-04T20:15:00Z",'
        b'"tree_size":57}'
    )


def test_a_signed_head_is_what_the_contract_serves(key, public, head):
    assert set(head) == {"tree_size", "root_hash", "timestamp", "key_id", "signature"}
    assert head["tree_size"] == 57
    assert head["root_hash"] == ROOT.hex()
    assert head["timestamp"] == STAMP
    assert head["key_id"] == hashlib.sha256(public).hexdigest() == key_id(public)
    signature = base64.b64decode(head["signature"], validate=True)
    # Checked by cryptography itself, over the message built from the contract.
    Ed25519PublicKey.from_public_bytes(public).verify(signature, head_message(57, ROOT, STAMP))
    assert verify_head(head, public)
    assert verify_head(json.loads(json.dumps(head)), public)  # as it travels


def test_the_empty_tree_and_fractional_seconds_round_trip(key, public):
    empty = sign_head(key, 0, hashlib.sha256(b"").digest(), "2026-01-01T00:00:00.123456Z")
    assert verify_head(empty, public)


def test_fields_beyond_the_five_are_ignored(head, public):
    assert verify_head({**head, "note": "unsigned, ignored"}, public)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("tree_size", 58),
        ("tree_size", 56),
        ("root_hash", hashlib.sha256(b"another root").hexdigest()),
        ("timestamp", "2026-12-04T20:15:01Z"),
        ("timestamp", "2026-12-04T20:15:00.0Z"),  # a different string is a different message
        ("key_id", hashlib.sha256(b"another key").hexdigest()),
    ],
)
def test_a_tampered_field_fails(head, public, field, value):
    assert not verify_head({**head, field: value}, public)


def test_a_tampered_signature_fails(head, public):
    signature = bytearray(base64.b64decode(head["signature"]))
    for position in (0, 31, 32, 63):
        flipped = bytearray(signature)
        flipped[position] ^= 0x01
        forged = {**head, "signature": base64.b64encode(bytes(flipped)).decode()}
        assert not verify_head(forged, public)


def test_another_keys_signature_fails_even_under_its_own_key_id(head, public):
    other = Ed25519PrivateKey.generate()
    theirs = sign_head(other, 57, ROOT, STAMP)
    assert verify_head(theirs, public_key_raw(other))
    assert not verify_head(theirs, public)  # the key id names the other key
    # Their signature under our key id: the key id matches, the signature does not.
    assert not verify_head({**theirs, "key_id": head["key_id"]}, public)
    # Our head checked against their key: wrong key id.
    assert not verify_head(head, public_key_raw(other))


def _without(head, field):
    return {k: v for k, v in head.items() if k != field}


MALFORMED = [
    ("not a dict", lambda h: [h]),
    ("none", lambda h: None),
    ("a JSON string", lambda h: json.dumps(h)),
    ("no tree_size", lambda h: _without(h, "tree_size")),
    ("no root_hash", lambda h: _without(h, "root_hash")),
    ("no timestamp", lambda h: _without(h, "timestamp")),
    ("no key_id", lambda h: _without(h, "key_id")),
    ("no signature", lambda h: _without(h, "signature")),
    ("size a string", lambda h: {**h, "tree_size": "57"}),
    ("size a float", lambda h: {**h, "tree_size": 57.0}),
    ("size a bool", lambda h: {**h, "tree_size": True}),
    ("size negative", lambda h: {**h, "tree_size": -57}),
    ("size null", lambda h: {**h, "tree_size": None}),
    ("root uppercase", lambda h: {**h, "root_hash": h["root_hash"].upper()}),
    ("root short", lambda h: {**h, "root_hash": h["root_hash"][:-2]}),
    ("root long", lambda h: {**h, "root_hash": h["root_hash"] + "00"}),
    ("root not hex", lambda h: {**h, "root_hash": "zz" + h["root_hash"][2:]}),
    ("root with newline", lambda h: {**h, "root_hash": h["root_hash"] + "\n"}),
    ("root bytes", lambda h: {**h, "root_hash": bytes.fromhex(h["root_hash"])}),
    ("root a list", lambda h: {**h, "root_hash": [h["root_hash"]]}),
    ("time without Z", lambda h: {**h, "timestamp": "2026-12-04T20:15:00"}),
    ("time with offset", lambda h: {**h, "timestamp": "2026-12-04T20:15:00+00:00"}),
    ("time no date", lambda h: {**h, "timestamp": "20:15:00Z"}),
    ("time impossible", lambda h: {**h, "timestamp": "2026-02-30T20:15:00Z"}),
    ("time unicode digits", lambda h: {**h, "timestamp": "٢٠٢٦-12-04T20:15:00Z"}),
    ("time a number", lambda h: {**h, "timestamp": 1796415300}),
    ("key_id uppercase", lambda h: {**h, "key_id": h["key_id"].upper()}),
    ("key_id null", lambda h: {**h, "key_id": None}),
    ("signature not base64", lambda h: {**h, "signature": "!" + h["signature"][1:]}),
    ("signature unpadded", lambda h: {**h, "signature": h["signature"].rstrip("=")}),
    ("signature urlsafe alphabet", lambda h: {**h, "signature": "_-" + h["signature"][2:]}),
    ("signature short", lambda h: {**h, "signature": base64.b64encode(b"\0" * 63).decode()}),
    ("signature long", lambda h: {**h, "signature": base64.b64encode(b"\0" * 65).decode()}),
    ("signature empty", lambda h: {**h, "signature": ""}),
    ("signature non-ascii", lambda h: {**h, "signature": "é" + h["signature"][1:]}),
    ("signature bytes", lambda h: {**h, "signature": base64.b64decode(h["signature"])}),
    ("signature with space", lambda h: {**h, "signature": " " + h["signature"]}),
]


@pytest.mark.parametrize("damage", [d for _name, d in MALFORMED], ids=[n for n, _d in MALFORMED])
def test_a_malformed_head_is_false_not_an_exception(head, public, damage):
    assert verify_head(damage(head), public) is False


@pytest.mark.parametrize(
    "bad_key", [b"", b"\0" * 31, b"\0" * 33, "ab" * 32, None, 42, bytearray(32)]
)
def test_a_malformed_public_key_is_false_not_an_exception(head, bad_key):
    assert verify_head(head, bad_key) is False


def test_a_signature_with_the_last_bit_set_in_its_padding_is_refused(head, public):
    # base64 of 64 bytes ends "==" after a character carrying 4 unused bits: another
    # spelling of the same bytes, refused so that a head has one form.
    text = head["signature"]
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
    last = alphabet.index(text[-3])
    respelled = text[:-3] + alphabet[last ^ 1] + "=="
    assert base64.b64decode(respelled) == base64.b64decode(text)
    assert not verify_head({**head, "signature": respelled}, public)


@pytest.mark.parametrize(
    ("size", "root", "stamp"),
    [
        (-1, ROOT, STAMP),
        (True, ROOT, STAMP),
        ("1", ROOT, STAMP),
        (1, ROOT[:31], STAMP),
        (1, ROOT.hex(), STAMP),
        (1, ROOT, "2026-12-04 20:15:00Z"),
        (1, ROOT, "2026-12-04T20:15:00+08:00"),
    ],
)
def test_nothing_signs_a_head_that_would_not_verify(key, size, root, stamp):
    with pytest.raises(ValueError):
        head_message(size, root, stamp)
    with pytest.raises(ValueError):
        sign_head(key, size, root, stamp)


def test_key_id_is_the_sha256_of_the_raw_key_and_refuses_other_lengths():
    assert key_id(RFC8032_PUBLIC) == hashlib.sha256(RFC8032_PUBLIC).hexdigest()
    for bad in (b"", b"\0" * 31, RFC8032_PUBLIC.hex()):
        with pytest.raises(ValueError):
            key_id(bad)


def test_utc_timestamp():
    beijing = timezone(timedelta(hours=8))
    assert utc_timestamp(datetime(2026, 12, 5, 4, 15, 0, 999999, tzinfo=beijing)) == STAMP
    assert utc_timestamp(datetime(2026, 12, 4, 20, 15, tzinfo=UTC)) == STAMP
    assert is_timestamp(utc_timestamp(datetime.now(UTC)))
    with pytest.raises(ValueError):
        utc_timestamp(datetime(2026, 12, 4, 20, 15))  # naive


# --- The key file -----------------------------------------------------------------------


def test_a_missing_key_file_is_created_0600_and_then_reused(tmp_path):
    path = tmp_path / "tree-head.key"
    key = load_or_create_private_key(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert path.read_bytes().startswith(b"-----BEGIN PRIVATE KEY-----")
    content = path.read_bytes()
    again = load_or_create_private_key(str(path))
    assert public_key_raw(again) == public_key_raw(key)
    assert path.read_bytes() == content
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tree-head.key"]  # no temporaries


def test_a_raw_32_byte_key_file_is_loaded_rfc8032(tmp_path):
    path = tmp_path / "raw.key"
    path.write_bytes(RFC8032_SECRET)
    key = load_or_create_private_key(path)
    assert public_key_raw(key) == RFC8032_PUBLIC
    assert key.sign(b"") == RFC8032_SIGNATURE
    assert path.read_bytes() == RFC8032_SECRET


def test_a_pem_pkcs8_key_file_is_loaded(tmp_path):
    key = Ed25519PrivateKey.from_private_bytes(RFC8032_SECRET)
    path = tmp_path / "pem.key"
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    assert public_key_raw(load_or_create_private_key(path)) == RFC8032_PUBLIC


@pytest.mark.parametrize(
    "content",
    [
        b"",
        b"\0" * 31,
        b"\0" * 33,
        b"not a key at all",
        b"-----BEGIN PRIVATE KEY-----\nbm9wZQ==\n-----END PRIVATE KEY-----\n",
        ec.generate_private_key(ec.SECP256R1()).private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ),
        Ed25519PrivateKey.from_private_bytes(RFC8032_SECRET).private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(b"a passphrase"),
        ),
    ],
    ids=["empty", "31 bytes", "33 bytes", "text", "bad PEM", "EC key", "encrypted"],
)
def test_a_key_file_holding_something_else_is_refused_and_left_alone(tmp_path, content):
    path = tmp_path / "odd.key"
    path.write_bytes(content)
    with pytest.raises(ValueError):
        load_or_create_private_key(path)
    assert path.read_bytes() == content


def test_a_key_file_that_appears_meanwhile_wins(tmp_path, monkeypatch):
    """Two processes starting at once: the one that links second loads the first's key
    instead of replacing it."""
    path = tmp_path / "race.key"
    link = os.link

    def other_process_first(source, target):
        path.write_bytes(RFC8032_SECRET)
        return link(source, target)

    monkeypatch.setattr(os, "link", other_process_first)
    key = load_or_create_private_key(path)
    assert public_key_raw(key) == RFC8032_PUBLIC
    assert path.read_bytes() == RFC8032_SECRET
    assert sorted(p.name for p in tmp_path.iterdir()) == ["race.key"]
