"""The audit log's hash chain: pure functions, no database.

``hash = SHA-256(prev_hash ‖ "\\n" ‖ canonical JSON of the record's fields)``, where the
canonical JSON has sorted keys, no spaces and UTF-8 text. A removed row breaks the
``seq`` run and the chain; an edited row no longer matches its hash; a removed tail no
longer matches the head.
"""

import hashlib
import json

GENESIS = "0" * 64
HASHED_FIELDS = (
    "seq",
    "created_at_text",
    "actor_id",
    "actor_name",
    "actor_role",
    "client_addr",
    "request_id",
    "action",
    "object_type",
    "object_id",
    "summary",
    "ledger_keys",
)


def record_hash(prev_hash: str, fields: dict) -> str:
    """The hash of one record given the previous record's hash (lowercase hex)."""
    body = json.dumps(
        {name: fields[name] for name in HASHED_FIELDS},
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
    )
    return hashlib.sha256(f"{prev_hash}\n{body}".encode()).hexdigest()
