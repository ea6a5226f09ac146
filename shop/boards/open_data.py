"""Open data: every purchase on the love board and every ledger entry, streamed in
batches for the CSV downloads (memory stays flat however long the history)."""

from sqlalchemy import select

from ledger import iter_export
from shop.boards.models import BoardFeed
from shop.boards.reads import feed_json
from shop.extensions import db


def iter_purchases(batch: int = 1000):
    """Every purchase on the love board, oldest first, in batches (keyset paging)."""
    last = 0
    while True:
        feeds = list(
            db.session.scalars(
                select(BoardFeed).where(BoardFeed.id > last).order_by(BoardFeed.id).limit(batch)
            )
        )
        if not feeds:
            return
        yield from feed_json(feeds)
        last = feeds[-1].id
        db.session.expunge_all()


def iter_ledger_entries():
    """Every ledger entry with its transaction, in posting order, from the public export:
    (id, key, kind, created_at, reverses, position, account, amount_fen, hash)."""
    for tx in iter_export(db.session):
        for position, entry in enumerate(tx["entries"]):
            yield (
                tx["id"], tx["key"], tx["kind"], tx["created_at"], tx["reverses"] or "",
                position, entry["account"], entry["amount_fen"], tx["hash"],
            )  # fmt: skip
