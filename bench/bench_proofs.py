"""How much an inclusion or consistency proof costs the server at the programme's
future size: a Merkle tree of 1,000,000 transactions (issue 18).

Builds the stored tree of ``--leaves`` random transaction hashes exactly as postings
would (``ledger.merkle.nodes_to_store`` per leaf: 2n − popcount(n) rows in
``ledger_tree_node``, bulk-inserted), then times ``ledger.tree.inclusion_path`` and
``consistency_path`` — what the API handlers do after parsing — for random indices and
sizes, counting the SQL statements each runs, and checks every proof verifies against
the recomputed root::

    createdb -h 127.0.0.1 -U postgres bench_proofs
    .venv/bin/python bench/bench_proofs.py --leaves 1000000 \\
        --database-url postgresql+psycopg://postgres@127.0.0.1:5432/bench_proofs
    .venv/bin/python bench/bench_proofs.py --leaves 1000000        # SQLite, a temp file

The table is dropped and made again in the given database; nothing else is touched.
"""

import argparse
import os
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

from sqlalchemy import create_engine, event, insert
from sqlalchemy.orm import Session

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from ledger import merkle, tree

BATCH = 50_000


def build(engine, leaves: int, seed: int) -> bytes:
    """Store the tree of ``leaves`` random leaves; return its root (recomputed in memory)."""
    table = tree.TreeNode.__table__
    table.drop(engine, checkfirst=True)
    table.create(engine)
    rng = random.Random(seed)
    peaks: dict[tuple[int, int], bytes] = {}
    pending: list[dict] = []
    started = time.perf_counter()
    with engine.begin() as connection:
        for size in range(leaves):
            leaf = merkle.leaf_hash(rng.randbytes(32))
            created = merkle.nodes_to_store(size, leaf, _getter(peaks))
            for level, idx, digest in created:
                peaks[level, idx] = digest
                pending.append({"node": tree.node_key(level, idx), "hash": digest})
            # Only the right edge is ever read again while building: drop the rest.
            if len(peaks) > 256:
                keep = set(tree.peaks(size + 1))
                peaks = {k: v for k, v in peaks.items() if k in keep}
            if len(pending) >= BATCH:
                connection.execute(insert(table), pending)
                pending = []
        if pending:
            connection.execute(insert(table), pending)
        if engine.dialect.name == "postgresql":
            connection.exec_driver_sql("ANALYZE ledger_tree_node")
    print(f"built {leaves:,} leaves ({2 * leaves - bin(leaves).count('1'):,} nodes) "
          f"in {time.perf_counter() - started:.1f} s")  # fmt: skip
    with Session(engine) as session:
        return tree.tree_root(session, leaves)


def _getter(nodes: dict):
    return lambda level, idx: nodes[level, idx]


def timed(session, statements: list[int], fn, *args):
    before = statements[0]
    started = time.perf_counter()
    result = fn(session, *args)
    return result, (time.perf_counter() - started) * 1000, statements[0] - before


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--leaves", type=int, default=1_000_000)
    parser.add_argument("--proofs", type=int, default=2000)
    parser.add_argument("--database-url", default="", help="PostgreSQL; SQLite without it")
    parser.add_argument("--seed", type=int, default=18)
    args = parser.parse_args()
    url = args.database_url
    if not url:
        folder = tempfile.mkdtemp(prefix="bench_proofs_")
        url = f"sqlite:///{os.path.join(folder, 'tree.db')}"
    engine = create_engine(url)
    root = build(engine, args.leaves, args.seed)
    statements = [0]

    @event.listens_for(engine, "before_cursor_execute")
    def count(*_args):
        statements[0] += 1

    rng = random.Random(args.seed + 1)
    n = args.leaves
    rows = {"inclusion": [], "consistency": []}
    with Session(engine) as session:
        for _ in range(args.proofs):
            index = rng.randrange(n)
            path, ms, queries = timed(session, statements, tree.inclusion_path, index, n)
            assert merkle.verify_inclusion(_leaf(session, index), index, n, path, root)
            rows["inclusion"].append((ms, queries, len(path)))
            first = rng.randrange(1, n)
            proof, ms, queries = timed(session, statements, tree.consistency_path, first, n)
            first_root = tree.tree_root(session, first)
            assert merkle.verify_consistency(first, n, first_root, root, proof)
            rows["consistency"].append((ms, queries, len(proof)))
    print(f"{engine.dialect.name}, {n:,} leaves, {args.proofs} proofs of each kind:")
    for kind, samples in rows.items():
        times = sorted(ms for ms, _q, _l in samples)
        print(
            f"  {kind:<11} median {statistics.median(times):.3f} ms, p99 "
            f"{times[int(len(times) * 0.99) - 1]:.3f} ms, max {times[-1]:.3f} ms; "
            f"SQL statements {max(q for _m, q, _l in samples)}; "
            f"hashes per proof ≤ {max(length for _m, _q, length in samples)}"
        )


def _leaf(session, index: int) -> bytes:
    return bytes(session.get(tree.TreeNode, tree.node_key(0, index)).hash)


if __name__ == "__main__":
    main()
