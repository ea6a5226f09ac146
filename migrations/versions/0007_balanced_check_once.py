"""PostgreSQL: check each ledger transaction's zero sum once per commit, not once per entry

The deferred constraint trigger on ledger_entry fires for every inserted entry; each
firing summed all entries of the transaction, so a sale crediting 148 households did
148 sums of 150 rows at COMMIT. The function now marks a transaction as checked in a
transaction-local setting and returns at once for its other entries. Entries added to
the same ledger transaction by a later database transaction are checked again (the
mark does not outlive the database transaction that set it).

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-25 09:55:00

"""
from alembic import op

revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None

CHECK_ONCE = """
CREATE OR REPLACE FUNCTION ledger_check_balanced() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    total BIGINT;
    entries INTEGER;
    mark TEXT := 'ledger_checked.tx_' || NEW.transaction_id;
BEGIN
    -- Deferred: runs at COMMIT, when every entry of this database transaction is in.
    IF current_setting(mark, true) = 'y' THEN
        RETURN NULL;
    END IF;
    SELECT COALESCE(SUM(amount_fen), 0), COUNT(*) INTO total, entries
      FROM ledger_entry WHERE transaction_id = NEW.transaction_id;
    IF total <> 0 OR entries < 2 THEN
        RAISE EXCEPTION 'ledger transaction % is unbalanced (% fen over % entries)',
            NEW.transaction_id, total, entries USING ERRCODE = 'check_violation';
    END IF;
    PERFORM set_config(mark, 'y', true);  -- true: until the end of this transaction
    RETURN NULL;
END $$;
"""

CHECK_EVERY_ENTRY = """
CREATE OR REPLACE FUNCTION ledger_check_balanced() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    total BIGINT;
    entries INTEGER;
BEGIN
    SELECT COALESCE(SUM(amount_fen), 0), COUNT(*) INTO total, entries
      FROM ledger_entry WHERE transaction_id = NEW.transaction_id;
    IF total <> 0 OR entries < 2 THEN
        RAISE EXCEPTION 'ledger transaction % is unbalanced (% fen over % entries)',
            NEW.transaction_id, total, entries USING ERRCODE = 'check_violation';
    END IF;
    RETURN NULL;
END $$;
"""


def upgrade():
    if op.get_bind().dialect.name == "postgresql":
        op.execute(CHECK_ONCE)


def downgrade():
    if op.get_bind().dialect.name == "postgresql":
        op.execute(CHECK_EVERY_ENTRY)
