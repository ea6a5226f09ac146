"""Verify a Lianxin Market ledger export with nothing but the Python standard library.

Usage::

    python -m ledger.verify export.jsonl     # or: python verify.py export.jsonl

The export comes from ``GET /api/v1/ledger/export.jsonl``. For every line this checks:
ids run 1, 2, 3, … without gaps; ``prev_hash`` is the previous line's ``hash`` (64
zeros for the first); ``hash`` = sha256(prev_hash + "\\n" + canonical_json) where
canonical_json is the JSON of id, key, kind, created_at, memo, reverses and entries
(account, amount_fen) with sorted keys, no spaces, UTF-8; the entries are integers,
non-zero, at least two, summing to zero; keys are unique; ``reverses`` points back.
It then prints the head (count and last hash — compare it with
``/api/v1/ledger/head``) and every account's balance recomputed from the entries.
Exit status 0 when everything holds, 1 at the first problem (named with its line).

This file and ``ledger/canonical.py`` (the canonical form and the hash) import only the
standard library, so an auditor can copy the two files and run them anywhere.
"""

import json
import sys
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field

from ledger.canonical import GENESIS_HASH, chain_hash


@dataclass
class Report:
    ok: bool = True
    count: int = 0
    head_hash: str = GENESIS_HASH
    balances: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    problem: str = ""


def _is_fen(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def verify_lines(lines: Iterable[str]) -> Report:
    """Check an export line by line; stop at the first problem."""
    report = Report()
    keys: set[str] = set()
    for number, raw in enumerate(lines, start=1):
        if not raw.strip():
            continue

        def fail(why: str, number=number) -> Report:
            report.ok = False
            report.problem = f"line {number}: {why}"
            return report

        try:
            tx = json.loads(raw)
            expected_id = report.count + 1
            if tx["id"] != expected_id:
                return fail(f"id {tx['id']} where {expected_id} was expected")
            if tx["prev_hash"] != report.head_hash:
                return fail("prev_hash does not match the previous transaction's hash")
            entries = tx["entries"]
            if len(entries) < 2:
                return fail("fewer than two entries")
            if not all(_is_fen(e["amount_fen"]) and e["amount_fen"] != 0 for e in entries):
                return fail("an amount is not a non-zero integer number of fen")
            total = sum(e["amount_fen"] for e in entries)
            if total != 0:
                return fail(f"entries sum to {total} fen, not 0")
            if tx["key"] in keys:
                return fail(f"key {tx['key']} appears twice")
            if tx["reverses"] is not None and not 1 <= tx["reverses"] < tx["id"]:
                return fail(f"reverses {tx['reverses']}, which is not an earlier transaction")
            recomputed = chain_hash(tx["prev_hash"], tx)
            if recomputed != tx["hash"]:
                return fail(f"hash {tx['hash']} should be {recomputed}")
        except (KeyError, TypeError, ValueError) as error:
            return fail(f"malformed transaction ({error!r})")
        keys.add(tx["key"])
        for entry in entries:
            report.balances[entry["account"]] += entry["amount_fen"]
        report.count = tx["id"]
        report.head_hash = tx["hash"]
    return report


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m ledger.verify export.jsonl", file=sys.stderr)
        return 2
    with open(args[0], encoding="utf-8") as handle:
        report = verify_lines(handle)
    if not report.ok:
        print(f"FAILED {report.problem}")
        return 1
    print(f"OK {report.count} transactions, head {report.head_hash}")
    for account in sorted(report.balances):
        print(f"{account}\t{report.balances[account]}")
    print(f"sum of all balances\t{sum(report.balances.values())}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
