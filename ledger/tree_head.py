"""Signed tree heads: the shop's Ed25519 signature over the size and root of its Merkle
tree (``ledger.merkle``) at a moment — what ``GET /api/v1/ledger/tree-head`` serves and
what a witness (``python -m ledger.witness``) checks. Standard library and
``cryptography`` only; no storage, no database, no Flask.

The head, as served::

    {"tree_size": 57, "root_hash": "<64 lowercase hex>", "timestamp": "2026-12-04T20:15:00Z",
     "key_id": "<64 lowercase hex>", "signature": "<base64 of 64 bytes>"}

Invariants.
- The signed bytes are exactly :func:`head_message`: the UTF-8 JSON of ``{"root_hash",
  "timestamp", "tree_size"}`` with sorted keys and no spaces
  (``json.dumps(obj, sort_keys=True, separators=(",", ":"))``). ``key_id`` and
  ``signature`` are not signed: the key id only names the key, and is checked against the
  key the verifier already trusts.
- ``tree_size`` is an ``int`` >= 0 (never a ``bool``); ``root_hash`` is the lowercase hex
  of 32 bytes; ``timestamp`` is UTC ISO-8601 ending in ``Z``, to the second as
  :func:`utc_timestamp` writes it (``2026-12-04T20:15:00Z``), optionally with 1–6
  fractional digits; ``key_id`` is the lowercase hex SHA-256 of the raw 32-byte public
  key; ``signature`` is the standard, padded base64 of the 64-byte Ed25519 signature.
- :func:`head_message` and :func:`sign_head` raise ``ValueError`` for a field outside
  that shape, so nothing signs a head that :func:`verify_head` would refuse.
- :func:`verify_head` never raises: any input that is not such a head (a missing field, a
  wrong type, uppercase hex, a key id of another key, a key that is not 32 bytes, a
  signature that does not verify) gives False. Fields beyond the five are ignored — they
  are not signed, so nothing may rely on them.
- :func:`load_or_create_private_key` never overwrites a key file: a missing one is
  written in full under a temporary name (mode 0600) and then linked into place, which
  fails if the name appeared meanwhile (the key that won is loaded instead).
"""

import base64
import binascii
import hashlib
import json
import os
import re
import tempfile
from datetime import UTC, datetime
from pathlib import Path

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)

HASH_SIZE = 32
KEY_SIZE = 32
SIGNATURE_SIZE = 64
ALGORITHM = "Ed25519"
HEAD_FIELDS = ("tree_size", "root_hash", "timestamp", "key_id", "signature")
KEY_FILE_MODE = 0o600

_HEX64 = re.compile(r"[0-9a-f]{64}")
_TIMESTAMP = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{1,6})?Z")
_PEM_PREFIX = b"-----BEGIN"


def _is_size(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def is_timestamp(value: object) -> bool:
    """Whether ``value`` is a head's timestamp: UTC ISO-8601 with a ``Z``, to the second
    or with up to six fractional digits, naming a real moment."""
    if not isinstance(value, str) or not _TIMESTAMP.fullmatch(value):
        return False
    try:
        datetime.strptime(value[:19], "%Y-%m-%dT%H:%M:%S")
    except ValueError:  # 2026-02-30, 25:00:00, …
        return False
    return True


def utc_timestamp(moment: datetime) -> str:
    """A head's timestamp for an aware ``moment``: UTC, to the second, with a ``Z``
    (``2026-12-04T20:15:00Z``; microseconds are dropped). Raises ``ValueError`` for a
    naive datetime, whose time zone would be a guess."""
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError("naive datetime; a tree head's time must be timezone-aware")
    m = moment.astimezone(UTC)
    return f"{m.year:04d}-{m.month:02d}-{m.day:02d}T{m.hour:02d}:{m.minute:02d}:{m.second:02d}Z"


def key_id(public_key_raw: bytes) -> str:
    """The key id of a raw 32-byte Ed25519 public key: its SHA-256 as lowercase hex.
    Raises ``ValueError`` for anything that is not 32 bytes."""
    if not isinstance(public_key_raw, bytes) or len(public_key_raw) != KEY_SIZE:
        raise ValueError("an Ed25519 public key is 32 raw bytes")
    return hashlib.sha256(public_key_raw).hexdigest()


def public_key_raw(private_key: Ed25519PrivateKey) -> bytes:
    """The raw 32 bytes of the public half of ``private_key``."""
    return private_key.public_key().public_bytes(
        serialization.Encoding.Raw, serialization.PublicFormat.Raw
    )


def head_message(tree_size: int, root_hash: bytes, timestamp: str) -> bytes:
    """The exact bytes a tree head's signature covers: the UTF-8 JSON of ``{"root_hash":
    hex, "timestamp", "tree_size"}``, sorted keys, no spaces. Raises ``ValueError`` for a
    size that is not an int >= 0, a root that is not 32 bytes, or a timestamp that is not
    in the head's form."""
    if not _is_size(tree_size):
        raise ValueError(f"tree size {tree_size!r} is not an integer >= 0")
    if not isinstance(root_hash, bytes) or len(root_hash) != HASH_SIZE:
        raise ValueError("a root hash is 32 raw bytes")
    if not is_timestamp(timestamp):
        raise ValueError(f"timestamp {timestamp!r} is not UTC ISO-8601 ending in Z")
    body = {"root_hash": root_hash.hex(), "timestamp": timestamp, "tree_size": tree_size}
    return json.dumps(body, sort_keys=True, separators=(",", ":")).encode("utf-8")


def sign_head(
    private_key: Ed25519PrivateKey, tree_size: int, root_hash: bytes, timestamp: str
) -> dict:
    """The signed head as served: ``{"tree_size", "root_hash", "timestamp", "key_id",
    "signature"}``. Raises ``ValueError`` as :func:`head_message` does."""
    signature = private_key.sign(head_message(tree_size, root_hash, timestamp))
    return {
        "tree_size": tree_size,
        "root_hash": root_hash.hex(),
        "timestamp": timestamp,
        "key_id": key_id(public_key_raw(private_key)),
        "signature": base64.b64encode(signature).decode("ascii"),
    }


def decode_base64(value: object, size: int, canonical: bool = False) -> bytes | None:
    """The ``size`` raw bytes ``value`` encodes in padded base64, else None; with
    ``canonical``, only their one canonical spelling (b64decode also accepts spellings
    with non-zero padding bits, which would let one signature be written many ways)."""
    if not isinstance(value, str) or not value.isascii():
        return None
    try:
        raw = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        return None
    if len(raw) != size or (canonical and base64.b64encode(raw).decode("ascii") != value):
        return None
    return raw


def _decode_signature(value: object) -> bytes | None:
    """The 64 bytes of a head's signature field, or None unless it is their canonical
    padded base64."""
    return decode_base64(value, SIGNATURE_SIZE, canonical=True)


def verify_head(head: dict, public_key_raw: bytes) -> bool:
    """Whether ``head`` is a tree head in the served shape, naming ``public_key_raw``
    (raw 32 bytes) by its key id and carrying that key's valid signature over
    :func:`head_message`. False — never an exception — for anything else."""
    if not isinstance(head, dict) or any(field not in head for field in HEAD_FIELDS):
        return False
    if not isinstance(public_key_raw, bytes) or len(public_key_raw) != KEY_SIZE:
        return False
    size, root, timestamp = head["tree_size"], head["root_hash"], head["timestamp"]
    if not _is_size(size) or not isinstance(root, str) or not _HEX64.fullmatch(root):
        return False
    if not is_timestamp(timestamp):
        return False
    if not isinstance(head["key_id"], str) or head["key_id"] != key_id(public_key_raw):
        return False
    signature = _decode_signature(head["signature"])
    if signature is None:
        return False
    try:
        public_key = Ed25519PublicKey.from_public_bytes(public_key_raw)
        public_key.verify(signature, head_message(size, bytes.fromhex(root), timestamp))
    except (InvalidSignature, ValueError):
        return False
    return True


def _load_private_key(data: bytes, path: Path) -> Ed25519PrivateKey:
    if len(data) == KEY_SIZE:
        return Ed25519PrivateKey.from_private_bytes(data)
    if data.lstrip().startswith(_PEM_PREFIX):
        try:
            key = serialization.load_pem_private_key(data, password=None)
        except (TypeError, UnsupportedAlgorithm) as error:  # encrypted, or an unknown kind
            raise ValueError(f"{path}: {error}") from error
        if isinstance(key, Ed25519PrivateKey):
            return key
        raise ValueError(f"{path} holds a {type(key).__name__}, not an Ed25519 private key")
    raise ValueError(f"{path} is neither a raw 32-byte nor a PEM (PKCS8) Ed25519 private key")


def _create_private_key(path: Path) -> Ed25519PrivateKey:
    """Write a new key to ``path`` (which did not exist) without ever overwriting one: the
    PEM goes, complete and synced, into a 0600 temporary file beside it, which is then
    hard-linked to ``path`` — an atomic create that fails if ``path`` exists. Returns the
    key that ends up at ``path`` (another process's, if it won the race)."""
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as file:
            os.fchmod(file.fileno(), KEY_FILE_MODE)
            file.write(pem)
            file.flush()
            os.fsync(file.fileno())
        try:
            os.link(temporary, path)
        except FileExistsError:
            return _load_private_key(path.read_bytes(), path)
    finally:
        os.unlink(temporary)
    directory = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)
    return key


def load_or_create_private_key(path: str | os.PathLike) -> Ed25519PrivateKey:
    """The Ed25519 private key kept at ``path`` — a file of its raw 32 bytes or an
    unencrypted PEM (PKCS8) — created (PEM PKCS8, mode 0600, atomically) when there is
    no file; an existing file is never overwritten. Raises ``ValueError`` for a file that
    holds something else, ``OSError`` when it cannot be read or written."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return _create_private_key(path)
    return _load_private_key(data, path)
