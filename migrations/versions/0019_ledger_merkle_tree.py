"""the ledger's Merkle tree (RFC 6962): complete-subtree nodes, signed tree heads

Both tables are append-only like the ledger (triggers refuse UPDATE and DELETE). The
tree of a database that already has transactions is built here from their hashes, in
posting order, so the first signed head covers all of history.

Stop every process that posts (web workers, the jobs worker) before upgrading, and start
them on the new code: code older than this revision would go on writing transactions
without their tree nodes, and the next posting by new code is then refused ("the Merkle
tree lacks nodes") rather than building a wrong tree.

Revision ID: 0019
Revises: 0018
Create Date: 2026-12-04 21:00:00

"""
import hashlib

from alembic import op
import sqlalchemy as sa


revision = '0019'
down_revision = '0018'
branch_labels = None
depends_on = None

TABLES = ('ledger_tree_node', 'ledger_tree_head')

# PostgreSQL: the head lock (0008) also returns the tree's peaks — the complete nodes on
# its right edge, one per set bit of the count, all an append reads — so growing the
# tree costs no extra round trip under the lock.
LOCK_HEAD_WITH_PEAKS = """
DROP FUNCTION IF EXISTS ledger_lock_head(varchar[]);
CREATE FUNCTION ledger_lock_head(wanted_keys varchar[])
    RETURNS TABLE (head_count bigint, head_hash varchar, posted_ids integer[],
                   peak_nodes bigint[], peak_hashes bytea[])
    LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    level integer;
    start bigint := 0;
    wanted bigint[] := '{}';
BEGIN
    UPDATE ledger_head SET count = count WHERE id = 1 RETURNING count, hash
        INTO head_count, head_hash;
    SELECT COALESCE(array_agg(id), '{}') INTO posted_ids
        FROM ledger_transaction WHERE key = ANY(wanted_keys);
    IF head_count IS NOT NULL THEN
        FOR level IN REVERSE 47..0 LOOP
            IF (head_count >> level) & 1 = 1 THEN
                wanted := wanted || ((level::bigint << 48) | (start >> level));
                start := start + (1::bigint << level);
            END IF;
        END LOOP;
        SELECT COALESCE(array_agg(node ORDER BY node), '{}'),
               COALESCE(array_agg(hash ORDER BY node), '{}')
            INTO peak_nodes, peak_hashes
            FROM ledger_tree_node WHERE node = ANY(wanted);
    END IF;
    RETURN NEXT;
END $$;
"""

# 0008's function, restored on downgrade.
LOCK_HEAD_0008 = """
DROP FUNCTION IF EXISTS ledger_lock_head(varchar[]);
CREATE FUNCTION ledger_lock_head(wanted_keys varchar[])
    RETURNS TABLE (head_count bigint, head_hash varchar, posted_ids integer[])
    LANGUAGE plpgsql VOLATILE AS $$
BEGIN
    UPDATE ledger_head SET count = count WHERE id = 1 RETURNING count, hash
        INTO head_count, head_hash;
    SELECT COALESCE(array_agg(id), '{}') INTO posted_ids
        FROM ledger_transaction WHERE key = ANY(wanted_keys);
    RETURN NEXT;
END $$;
"""
BATCH = 5000


def upgrade():
    op.create_table('ledger_tree_node',
    sa.Column('node', sa.BigInteger(), autoincrement=False, nullable=False),
    sa.Column('hash', sa.LargeBinary(length=32), nullable=False),
    sa.PrimaryKeyConstraint('node', name=op.f('pk_ledger_tree_node'))
    )
    op.create_table('ledger_tree_head',
    sa.Column('tree_size', sa.BigInteger(), autoincrement=False, nullable=False),
    sa.Column('root_hash', sa.String(length=64), nullable=False),
    sa.Column('timestamp', sa.String(length=40), nullable=False),
    sa.Column('key_id', sa.String(length=64), nullable=False),
    sa.Column('signature', sa.String(length=100), nullable=False),
    sa.Column('published_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('tree_size', name=op.f('pk_ledger_tree_head'))
    )
    _build_tree_of_existing_transactions()
    if op.get_bind().dialect.name == 'postgresql':
        op.execute(LOCK_HEAD_WITH_PEAKS)
        for table in TABLES:
            op.execute(
                f"CREATE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE ON {table} "
                "FOR EACH ROW EXECUTE FUNCTION ledger_refuse_change()"
            )
    else:
        for table in TABLES:
            for action in ('UPDATE', 'DELETE'):
                op.execute(
                    f"CREATE TRIGGER {table}_no_{action.lower()} BEFORE {action} ON {table} "
                    f"BEGIN SELECT RAISE(ABORT, 'ledger rows are append-only: {action} on "
                    f"{table} refused'); END"
                )


def _build_tree_of_existing_transactions():
    """RFC 6962 hashing written out here (a migration must not change with the code):
    leaf = SHA-256(0x00 ‖ hash bytes); node = SHA-256(0x01 ‖ left ‖ right); a node is
    stored when its subtree is complete, keyed level·2**48 + index (ledger/tree.py).
    Memory: one peak per level."""
    bind = op.get_bind()
    nodes = sa.table('ledger_tree_node', sa.column('node'), sa.column('hash', sa.LargeBinary))
    peaks = {}  # level -> hash of the complete subtree waiting for its right sibling
    size, last_id = 0, 0
    while True:
        rows = bind.execute(
            sa.text("SELECT id, hash FROM ledger_transaction WHERE id > :last ORDER BY id LIMIT :n"),
            {'last': last_id, 'n': BATCH},
        ).all()
        if not rows:
            break
        new = []
        for tx_id, tx_hash in rows:
            digest = hashlib.sha256(b'\x00' + bytes.fromhex(tx_hash)).digest()
            level, idx = 0, size
            new.append({'node': idx, 'hash': digest})
            while idx % 2 == 1:
                digest = hashlib.sha256(b'\x01' + peaks.pop(level) + digest).digest()
                level, idx = level + 1, idx // 2
                new.append({'node': (level << 48) | idx, 'hash': digest})
            peaks[level] = digest
            size += 1
            last_id = tx_id
        bind.execute(nodes.insert(), new)


def downgrade():
    if op.get_bind().dialect.name == 'postgresql':
        op.execute(LOCK_HEAD_0008)
        for table in TABLES:
            op.execute(f"DROP TRIGGER IF EXISTS {table}_append_only ON {table}")
    else:
        for table in TABLES:
            for action in ('update', 'delete'):
                op.execute(f"DROP TRIGGER IF EXISTS {table}_no_{action}")
    op.drop_table('ledger_tree_head')
    op.drop_table('ledger_tree_node')
