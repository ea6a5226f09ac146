"""Verify a Lianxin Market ledger export with nothing but the Python standard library.

Usage::

    python -m ledger.verify export.jsonl     # or: python verify.py export.jsonl
    python -m ledger.verify export.jsonl --head 5f2c…   # a head recorded earlier

The export comes from ``GET /api/v1/ledger/export.jsonl``. For every line this checks:
ids run 1, 2, 3, … without gaps; ``prev_hash`` is the previous line's ``hash`` (64
zeros for the first); ``hash`` = sha256(prev_hash + "\\n" + canonical_json) where
canonical_json is the JSON of id, key, kind, created_at, memo, reverses and entries
(account, amount_fen) with sorted keys, no spaces, UTF-8; the entries are integers,
non-zero, at least two, summing to zero; keys are unique; ``reverses`` points back.
It then prints the head (count and last hash — compare it with
``/api/v1/ledger/head``) and every account's balance recomputed from the entries.
Exit status 0 when everything holds, 1 at the first problem (named with its line).

``--tree-head FILE`` (repeatable): a signed tree head saved from
``/api/v1/ledger/tree-head`` (the JSON as served). The Merkle root (RFC 6962: leaf i is
line i, its data the transaction's hash as bytes; leaf = sha256(0x00 ‖ data), node =
sha256(0x01 ‖ left ‖ right)) of the head's first ``tree_size`` lines is recomputed and
must equal its ``root_hash``. With ``--public-key`` (base64, from
``/api/v1/ledger/public-key``) and the ``cryptography`` package installed, the head's
Ed25519 signature is checked too; without them the verifier says it was not.

``--head HASH`` (repeatable): a head you recorded from ``/api/v1/ledger/head``, at any
time before the export was taken. It must be the hash of one of the file's
transactions (or the empty chain's 64 zeros), or the check fails: an export cut
short, or a history rewritten since you recorded the head (every later hash would
change), cannot pass.

This file and ``ledger/canonical.py`` (the canonical form and the hash) import only the
standard library (Python 3.8 or newer), so an auditor can copy the two files and run
them anywhere; ``cryptography``, if installed, is used for ``--public-key`` alone.
"""

from __future__ import annotations  # runs on Python 3.8 and newer

import argparse
import base64
import hashlib
import json
import sys
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field

try:
    from ledger.canonical import GENESIS_HASH, MerkleRoot, chain_hash
except ImportError:  # copied next to canonical.py, outside this package
    from canonical import GENESIS_HASH, MerkleRoot, chain_hash

try:  # optional: only to check a signed tree head's signature (--public-key)
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
except ImportError:
    InvalidSignature = ValueError
    Ed25519PublicKey = None


@dataclass
class Report:
    ok: bool = True
    count: int = 0
    head_hash: str = GENESIS_HASH
    balances: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    problem: str = ""
    # hash → id of the transaction that carries it, for the heads the caller looks for.
    heads_found: dict[str, int] = field(default_factory=dict)
    # tree size → Merkle root (hex) of the first that many lines, for the sizes asked.
    roots: dict[int, str] = field(default_factory=dict)


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _problem(report: Report, keys: set[str], tx: dict) -> str | None:
    """What is wrong with ``tx`` as the next transaction after ``report``, or None."""
    if not isinstance(tx, dict):
        return "not a JSON object"
    expected_id = report.count + 1
    if not _is_int(tx["id"]) or tx["id"] != expected_id:
        return f"id {tx['id']!r} where {expected_id} was expected"
    if tx["prev_hash"] != report.head_hash:
        return "prev_hash does not match the previous transaction's hash"
    if not isinstance(tx["key"], str) or not tx["key"]:
        return "key is not a non-empty string"
    if tx["key"] in keys:
        return f"key {tx['key']} appears twice"
    entries = tx["entries"]
    if not isinstance(entries, list) or len(entries) < 2:
        return "fewer than two entries"
    for entry in entries:
        if not isinstance(entry["account"], str):
            return f"account {entry['account']!r} is not a string"
        if not _is_int(entry["amount_fen"]) or entry["amount_fen"] == 0:
            return f"amount {entry['amount_fen']!r} is not a non-zero integer number of fen"
    total = sum(e["amount_fen"] for e in entries)
    if total != 0:
        return f"entries sum to {total} fen, not 0"
    reverses = tx["reverses"]
    if reverses is not None and not (_is_int(reverses) and 1 <= reverses < tx["id"]):
        return f"reverses {reverses!r}, which is not an earlier transaction"
    recomputed = chain_hash(tx["prev_hash"], tx)
    if recomputed != tx["hash"]:
        return f"hash {tx['hash']} should be {recomputed}"
    return None


def verify_records(
    records: Iterable[tuple[int, dict | str]],
    unit: str = "line",
    heads: Iterable[str] = (),
    tree_sizes: Iterable[int] = (),
) -> Report:
    """Check (number, transaction) pairs in order — a transaction is an export dict or
    its JSON text; stop at the first problem, named "<unit> <number>: …". ``heads``:
    hashes to look for (found ones land in ``heads_found``); ``tree_sizes``: sizes whose
    Merkle root to compute (in ``roots``)."""
    wanted = set(heads)
    sizes = set(tree_sizes)
    tree = MerkleRoot()
    report = Report()
    if 0 in sizes:
        report.roots[0] = tree.root().hex()
    if GENESIS_HASH in wanted:
        # The empty chain's head (an export taken before the first posting), before id 1.
        report.heads_found[GENESIS_HASH] = 0
    keys: set[str] = set()
    for number, record in records:
        try:
            tx = json.loads(record) if isinstance(record, str) else record
            problem = _problem(report, keys, tx)
        except (KeyError, TypeError, ValueError, AttributeError) as error:
            problem = f"malformed transaction ({error!r})"
        if problem is not None:
            report.ok = False
            report.problem = f"{unit} {number}: {problem}"
            return report
        keys.add(tx["key"])
        for entry in tx["entries"]:
            report.balances[entry["account"]] += entry["amount_fen"]
        report.count = tx["id"]
        report.head_hash = tx["hash"]
        if sizes:
            tree.add(bytes.fromhex(tx["hash"]))
            if report.count in sizes:
                report.roots[report.count] = tree.root().hex()
        if tx["hash"] in wanted:
            report.heads_found[tx["hash"]] = tx["id"]
    return report


def verify_lines(
    lines: Iterable[str], heads: Iterable[str] = (), tree_sizes: Iterable[int] = ()
) -> Report:
    """Check an export line by line (blank lines are skipped); stop at the first problem."""
    return verify_records(
        ((n, raw) for n, raw in enumerate(lines, start=1) if raw.strip()),
        heads=heads,
        tree_sizes=tree_sizes,
    )


def _signature_note(head: dict, public_key: str | None) -> str | None:
    """None if the head's signature holds (or cannot be checked: the note says which);
    else what is wrong. Needs the ``cryptography`` package, which this file does not."""
    if not public_key:
        return None
    if Ed25519PublicKey is None:
        return None
    try:
        message = json.dumps(
            {k: head[k] for k in ("root_hash", "timestamp", "tree_size")},
            sort_keys=True,
            separators=(",", ":"),
        ).encode("utf-8")
        raw = base64.b64decode(public_key, validate=True)
        if hashlib.sha256(raw).hexdigest() != head.get("key_id"):
            return "its key_id is not the public key given"
        Ed25519PublicKey.from_public_bytes(raw).verify(
            base64.b64decode(head["signature"], validate=True), message
        )
    except (InvalidSignature, ValueError, TypeError, KeyError):
        return "its signature does not verify with the public key given"
    return None


def _can_check_signatures() -> bool:
    return Ed25519PublicKey is not None


def _read_tree_heads(paths: list[str]) -> list[dict]:
    heads = []
    for path in paths:
        with open(path, encoding="utf-8") as handle:
            head = json.load(handle)
        if not (isinstance(head, dict) and _is_int(head.get("tree_size"))
                and isinstance(head.get("root_hash"), str)):  # fmt: skip
            raise ValueError(f"{path} is not a signed tree head")
        heads.append(head)
    return heads


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m ledger.verify", description="Verify a Lianxin Market ledger export."
    )
    parser.add_argument("export", help="the file from /api/v1/ledger/export.jsonl")
    parser.add_argument(
        "--head",
        action="append",
        default=[],
        metavar="HASH",
        help="a head hash recorded earlier from /api/v1/ledger/head (repeatable): it must "
        "be the hash of one of the file's transactions",
    )
    parser.add_argument(
        "--tree-head",
        action="append",
        default=[],
        metavar="FILE",
        help="a signed tree head saved from /api/v1/ledger/tree-head (repeatable): the "
        "Merkle root of its first tree_size lines must be its root_hash",
    )
    parser.add_argument(
        "--public-key",
        metavar="B64",
        help="the log's key from /api/v1/ledger/public-key, to check tree head signatures "
        "(needs the cryptography package)",
    )
    args = parser.parse_args(argv)
    heads = [head.strip().lower() for head in args.head]
    try:
        tree_heads = _read_tree_heads(args.tree_head)
        with open(args.export, encoding="utf-8") as handle:
            report = verify_lines(handle, heads, [h["tree_size"] for h in tree_heads])
    except (OSError, UnicodeDecodeError, ValueError) as error:
        print(f"FAILED cannot read the input: {error}")
        return 1
    if not report.ok:
        print(f"FAILED {report.problem}")
        return 1
    missing = [head for head in heads if head not in report.heads_found]
    if missing:
        print(
            f"FAILED head {missing[0]} is not in this chain of {report.count} transactions "
            f"(last hash {report.head_hash}): the export stops before it, or the history "
            "up to it was rewritten"
        )
        return 1
    for tree_head in tree_heads:
        size = tree_head["tree_size"]
        if size not in report.roots:
            print(f"FAILED the signed head of size {size} is larger than this export "
                  f"({report.count} transactions)")  # fmt: skip
            return 1
        if report.roots[size] != tree_head["root_hash"]:
            print(f"FAILED the Merkle root of the first {size} transactions is "
                  f"{report.roots[size]}, not the signed head's {tree_head['root_hash']}: "
                  "this export is not the history that head was signed for")  # fmt: skip
            return 1
        wrong = _signature_note(tree_head, args.public_key)
        if wrong:
            print(f"FAILED the signed head of size {size}: {wrong}")
            return 1
    print(f"OK {report.count} transactions, head {report.head_hash}")
    for tree_head in tree_heads:
        checked = args.public_key and _can_check_signatures()
        print(
            f"tree head {tree_head['tree_size']}: root {tree_head['root_hash']} matches"
            + ("; signature valid" if checked else "; signature not checked (give "
               "--public-key and install cryptography, or run python -m ledger.witness)")
        )  # fmt: skip
    for head in heads:
        print(f"head {head} is transaction {report.heads_found[head]}")
    for account in sorted(report.balances):
        print(f"{account}\t{report.balances[account]}")
    print(f"sum of all balances\t{sum(report.balances.values())}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
