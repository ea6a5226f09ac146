"""The hash chain's canonical form — standard library only, so auditors can reuse it.

``hash = sha256(prev_hash + "\\n" + canonical_json(transaction))`` as lowercase hex, where
``canonical_json`` is JSON with sorted keys, no spaces, UTF-8 (``ensure_ascii=False``)
over the transaction's ``id``, ``key``, ``kind``, ``created_at`` (UTC ISO-8601),
``memo``, ``reverses`` and its ``entries`` (``account``, ``amount_fen``) in posting
order. The first ``prev_hash`` is 64 zeros.
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
