"""ledger_account.sales_received_fen: each household's credits from sales so far, kept
by post_sale, so a matched rule no longer sums the whole sales history on every sale

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-25 09:40:00

"""
import sqlalchemy as sa
from alembic import op

revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None


def upgrade():
    # A plain ADD COLUMN (no batch copy): on SQLite a table copy would drop the ledger's
    # triggers on other tables' names; ledger_account has none, but stay safe.
    op.add_column(
        'ledger_account',
        sa.Column('sales_received_fen', sa.BigInteger(), server_default='0', nullable=False),
    )
    op.execute(
        """
        UPDATE ledger_account SET sales_received_fen = COALESCE((
            SELECT -SUM(e.amount_fen)
            FROM ledger_entry e JOIN ledger_transaction t ON t.id = e.transaction_id
            WHERE e.account_id = ledger_account.id AND t.kind IN ('sale', 'offline_sale')
        ), 0)
        WHERE kind = 'household'
        """
    )


def downgrade():
    with op.batch_alter_table('ledger_account') as batch_op:
        batch_op.drop_column('sales_received_fen')
