"""ledger_payout.payee_refused: the bank or Alipay refused the payee (wrong card, wrong
name), as opposed to a failure on the shop's side (its balance, its keys). Only a payee
refusal holds the household's next payout until its record is corrected.

Existing failed payouts are left false: their cause was not recorded, so none is held.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-01 22:50:00

"""
import sqlalchemy as sa
from alembic import op

revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None


def upgrade():
    # A plain ADD COLUMN (no batch copy), as in 0006.
    op.add_column(
        'ledger_payout',
        sa.Column('payee_refused', sa.Boolean(), server_default=sa.false(), nullable=False),
    )


def downgrade():
    with op.batch_alter_table('ledger_payout') as batch_op:
        batch_op.drop_column('payee_refused')
