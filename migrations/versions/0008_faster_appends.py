"""PostgreSQL: faster appends — one mark for the zero-sum check; lock the head and look up keys in one call

1. The zero-sum check remembers the last transaction it checked in one setting.
0007 marked each checked ledger transaction with its own custom setting
(``ledger_checked.tx_<id>``). PostgreSQL keeps every custom setting name a connection
has ever used for the life of that connection, and PostgreSQL 15 re-sorts the list of
names each time one is added: a pooled connection that had posted 20,000 transactions
took 7 ms more for every further one, and the cost kept growing.

Now a single setting, ``ledger_checked.last``, holds the id of the transaction checked
last. The deferred trigger fires once per entry, in the order the entries were
inserted, so the entries of one transaction come together and all but the first skip
the check. A statement-level trigger clears the mark after every INSERT into
``ledger_entry``, so an entry added after a check (``SET CONSTRAINTS … IMMEDIATE``
mid-transaction, or a later statement) is always checked again. The check itself is
unchanged: every ledger transaction an INSERT touched sums to zero over at least two
entries at COMMIT.

2. ``ledger_lock_head(keys)`` takes the chain head's row lock and then looks the keys
up, in one round trip. The lookup must see every posting committed before the lock
was granted; a plain statement would use a snapshot taken before it waited for the
lock, but each statement inside a VOLATILE function takes a fresh snapshot.

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-25 11:40:00

"""
from alembic import op

revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None

CHECK_AGAINST_LAST = """
CREATE OR REPLACE FUNCTION ledger_check_balanced() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    total BIGINT;
    entries INTEGER;
BEGIN
    -- Deferred: runs at COMMIT, when every entry of this database transaction is in.
    IF current_setting('ledger_checked.last', true) = NEW.transaction_id::text THEN
        RETURN NULL;
    END IF;
    SELECT COALESCE(SUM(amount_fen), 0), COUNT(*) INTO total, entries
      FROM ledger_entry WHERE transaction_id = NEW.transaction_id;
    IF total <> 0 OR entries < 2 THEN
        RAISE EXCEPTION 'ledger transaction % is unbalanced (% fen over % entries)',
            NEW.transaction_id, total, entries USING ERRCODE = 'check_violation';
    END IF;
    PERFORM set_config('ledger_checked.last', NEW.transaction_id::text, true);
    RETURN NULL;
END $$;

CREATE OR REPLACE FUNCTION ledger_forget_checked() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    -- Entries were just inserted: whatever was checked before must be checked again.
    PERFORM set_config('ledger_checked.last', '', true);
    RETURN NULL;
END $$;

CREATE TRIGGER ledger_entry_forget_checked AFTER INSERT ON ledger_entry
    FOR EACH STATEMENT EXECUTE FUNCTION ledger_forget_checked();

CREATE FUNCTION ledger_lock_head(wanted_keys varchar[])
    RETURNS TABLE (head_count bigint, head_hash varchar, posted_ids integer[])
    LANGUAGE plpgsql VOLATILE AS $$
BEGIN
    -- A no-op UPDATE takes the row lock; RETURNING reads the head once it is granted.
    UPDATE ledger_head SET count = count WHERE id = 1 RETURNING count, hash
        INTO head_count, head_hash;
    -- A new statement, a new snapshot: sees whatever the previous holder committed.
    SELECT COALESCE(array_agg(id), '{}') INTO posted_ids
        FROM ledger_transaction WHERE key = ANY(wanted_keys);
    RETURN NEXT;
END $$;
"""

# 0007's function, restored on downgrade.
CHECK_WITH_A_MARK_PER_TRANSACTION = """
DROP FUNCTION IF EXISTS ledger_lock_head(varchar[]);
DROP TRIGGER IF EXISTS ledger_entry_forget_checked ON ledger_entry;
DROP FUNCTION IF EXISTS ledger_forget_checked();
CREATE OR REPLACE FUNCTION ledger_check_balanced() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    total BIGINT;
    entries INTEGER;
    mark TEXT := 'ledger_checked.tx_' || NEW.transaction_id;
BEGIN
    IF current_setting(mark, true) = 'y' THEN
        RETURN NULL;
    END IF;
    SELECT COALESCE(SUM(amount_fen), 0), COUNT(*) INTO total, entries
      FROM ledger_entry WHERE transaction_id = NEW.transaction_id;
    IF total <> 0 OR entries < 2 THEN
        RAISE EXCEPTION 'ledger transaction % is unbalanced (% fen over % entries)',
            NEW.transaction_id, total, entries USING ERRCODE = 'check_violation';
    END IF;
    PERFORM set_config(mark, 'y', true);
    RETURN NULL;
END $$;
"""


def upgrade():
    if op.get_bind().dialect.name == "postgresql":
        op.execute(CHECK_AGAINST_LAST)


def downgrade():
    if op.get_bind().dialect.name == "postgresql":
        op.execute(CHECK_WITH_A_MARK_PER_TRANSACTION)
