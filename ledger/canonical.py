"""The hash chain's canonical form — standard library only, so auditors can reuse it.

``hash = sha256(prev_hash + "\\n" + canonical_json(transaction))`` as lowercase hex, where
``canonical_json`` is JSON with sorted keys, no spaces, UTF-8 (``ensure_ascii=False``)
over the transaction's ``id``, ``key``, ``kind``, ``created_at`` (UTC ISO-8601),
``memo``, ``reverses`` and its ``entries`` (``account``, ``amount_fen``) in posting
order. The first ``prev_hash`` is 64 zeros.

:class:`MerkleRoot` is the root of the Merkle tree over those hashes (RFC 6962: leaf i is
transaction i + 1's hash as 32 bytes), for the standalone verifier and the witness.
"""

from __future__ import annotations  # runs on Python 3.8 and newer

import hashlib
import json
from datetime import datetime, timezone

GENESIS_HASH = "0" * 64
TIME_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"


def format_time(moment: datetime) -> str:
    """UTC ISO-8601 with microseconds and a ``Z``: ``2026-11-25T00:35:56.123456Z``."""
    # timezone.utc, not datetime.UTC (3.11+): auditors may run this on older Pythons.
    return moment.astimezone(timezone.utc).strftime(TIME_FORMAT)  # noqa: UP017


def canonical_json(transaction: dict) -> str:
    """The exact text that is hashed, from a transaction's public fields."""
    body = {
        "id": transaction["id"],
        "key": transaction["key"],
        "kind": transaction["kind"],
        "created_at": transaction["created_at"],
        "memo": transaction["memo"],
        "reverses": transaction["reverses"],
        "entries": [
            {"account": e["account"], "amount_fen": e["amount_fen"]} for e in transaction["entries"]
        ],
    }
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def chain_hash(prev_hash: str, transaction: dict) -> str:
    payload = prev_hash + "\n" + canonical_json(transaction)
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()


class MerkleRoot:
    """The RFC 6962 root of leaves added one at a time, in O(log n) memory.

    ``leaf = sha256(0x00 ‖ data)``, ``node = sha256(0x01 ‖ left ‖ right)``, the empty
    tree's root ``sha256("")``. The stack holds the roots of the complete subtrees the
    leaves so far decompose into, largest (leftmost) first — one per 1 bit of ``size``;
    the root folds it from the right, as RFC 6962 splits a tree at its largest power of
    two below its size."""

    def __init__(self) -> None:
        self.size = 0
        self._stack: list[bytes] = []

    def add_leaf_hash(self, leaf: bytes) -> None:
        self.size += 1
        digest, count = leaf, self.size
        while not count & 1:  # once per trailing 0 bit of the new size
            digest = hashlib.sha256(b"\x01" + self._stack.pop() + digest).digest()
            count >>= 1
        self._stack.append(digest)

    def add(self, data: bytes) -> None:
        self.add_leaf_hash(hashlib.sha256(b"\x00" + data).digest())

    def root(self) -> bytes:
        if not self._stack:
            return hashlib.sha256(b"").digest()
        digest = self._stack[-1]
        for left in reversed(self._stack[:-1]):
            digest = hashlib.sha256(b"\x01" + left + digest).digest()
        return digest
