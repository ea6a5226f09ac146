"""The ledger as a transparency log (RFC 6962, like Certificate Transparency): the
signing key, signed tree heads on a schedule, and the proofs the API serves.

The key is Ed25519, kept as a file with the instance's other keys — generated on first
run in the instance folder, or named by ``LEDGER_SIGNING_KEY_FILE`` in production — and
never in the database, so whoever can rewrite the database still cannot sign a head
for the rewritten history. The public key is served at ``/api/v1/ledger/public-key``,
shown on the open-data page and printed by ``flask ledger public-key``.

Every function here answers in the API's JSON shapes (hashes as lowercase hex,
signatures base64) and raises :class:`ProofRequestError` (a 4xx with a message) for
sizes and ids that do not exist.
"""

import base64
import threading
from pathlib import Path

from flask import current_app
from sqlalchemy.exc import IntegrityError

from ledger import (
    ProofError,
    Transaction,
    TreeHead,
    consistency_path,
    head_at,
    inclusion_path,
    key_id,
    latest_head,
    leaf_count,
    leaf_hash,
    load_or_create_private_key,
    public_key_raw,
    publish_head,
    sign_head,
)
from shop.db import MAX_ROW_ID
from shop.errors import UserError
from shop.extensions import db

_keys: dict[str, object] = {}
_keys_lock = threading.Lock()


class ProofRequestError(UserError):
    status = 404
    code = "not_found"


def key_path() -> Path:
    configured = current_app.config.get("LEDGER_SIGNING_KEY_FILE")
    if configured:
        return Path(configured)
    return Path(current_app.instance_path) / "ledger_signing_key"


def private_key():
    """The instance's signing key (created on first use when absent), cached per path."""
    path = str(key_path())
    with _keys_lock:
        if path not in _keys:
            _keys[path] = load_or_create_private_key(path)
        return _keys[path]


def public_key_json() -> dict:
    raw = public_key_raw(private_key())
    return {
        "algorithm": "Ed25519",
        "public_key": base64.b64encode(raw).decode(),
        "key_id": key_id(raw),
    }


def publish() -> dict | None:
    """Sign and keep a head if the tree grew since the last one; commit. The head as
    served, or ``None`` when there was nothing new."""
    key = private_key()
    try:
        head = publish_head(db.session, lambda size, root, stamp: sign_head(key, size, root, stamp))
        signed = head.as_json() if head is not None else None
        db.session.commit()
    except IntegrityError:
        # Another worker signed this size a moment earlier (the primary key on
        # tree_size): its head stands, and this one is not needed.
        db.session.rollback()
        return None
    return signed


def _signed_head(tree_size: int | None) -> TreeHead:
    """The latest signed head, or the one published for ``tree_size``; ProofRequestError
    when there is none."""
    head = latest_head(db.session) if tree_size is None else head_at(db.session, tree_size)
    if head is None:
        if tree_size is None:
            raise ProofRequestError("no tree head has been signed yet")
        raise ProofRequestError(f"no signed head was published for tree_size {tree_size}")
    return head


def tree_head_json(tree_size: int | None = None) -> dict:
    """The latest signed head, or the one published for ``tree_size``, as served."""
    return _signed_head(tree_size).as_json()


def latest_tree_head() -> dict | None:
    """The latest signed head as served, or ``None`` before the first."""
    head = latest_head(db.session)
    return head.as_json() if head is not None else None


def inclusion_json(transaction_id: int, tree_size: int | None = None) -> dict:
    """The audit path of a transaction in a signed head (the latest by default)."""
    return _inclusion(transaction_id, _signed_head(tree_size))


def _inclusion(transaction_id: int, head: TreeHead) -> dict:
    size = head.tree_size
    transaction = (
        db.session.get(Transaction, transaction_id) if transaction_id <= MAX_ROW_ID else None
    )
    if transaction is None:
        raise ProofRequestError(f"no transaction {transaction_id}")
    index = transaction_id - 1  # ids run 1, 2, 3, … in posting order: leaf = id - 1
    if index >= size:
        raise ProofRequestError(
            f"transaction {transaction_id} is not in the tree of size {size} yet",
            code="not_yet_included",
        )
    try:
        path = inclusion_path(db.session, index, size)
    except ProofError as error:
        raise ProofRequestError(str(error)) from None
    return {
        "transaction_id": transaction_id,
        "leaf_index": index,
        "tree_size": size,
        "leaf_hash": leaf_hash(bytes.fromhex(transaction.hash)).hex(),
        "audit_path": [node.hex() for node in path],
        "root_hash": head.root_hash,
    }


def consistency_json(first: int, second: int) -> dict:
    """The proof that the tree of ``first`` is a prefix of the tree of ``second``."""
    if first > second:
        raise ProofRequestError("first must not be larger than second", code="invalid_range")
    if second > leaf_count(db.session):
        raise ProofRequestError(f"the tree has fewer than {second} leaves")
    try:
        proof = consistency_path(db.session, first, second)
    except ProofError as error:
        raise ProofRequestError(str(error), code="bad_request") from None
    return {"first": first, "second": second, "proof": [node.hex() for node in proof]}


def included_in(transaction_id: int) -> dict | None:
    """For the trace page: the latest head that includes the transaction, with its
    proof — or ``None`` while no head covers it yet (heads are signed every minute)."""
    head = latest_head(db.session)
    if head is None or transaction_id > head.tree_size:
        return None
    return {"head": head.as_json(), "proof": _inclusion(transaction_id, head)}
