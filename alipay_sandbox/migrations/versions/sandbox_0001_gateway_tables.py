"""the sandbox gateway's tables: trades, refunds, transfers

Revision ID: sandbox_0001
Revises: (none: the base of the "sandbox" branch)
Depends on: 0002
Create Date: 2026-12-03 10:00:00

The built-in sandbox gateway (``alipay_sandbox``) owns these tables, not the shop. They
live in this branch of their own (label ``sandbox``), which is part of an app's
migrations only when the sandbox is mounted (``ALIPAY_SANDBOX`` on: development, demo,
tests), so ``flask db upgrade`` creates them there and a production database never gets
them.

Databases created before the branch existed already have the tables (the shop's 0002
used to create them): the upgrade creates only what is missing and keeps their rows.
The downgrade drops them; nothing of the shop refers to them.
"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = 'sandbox_0001'
down_revision = None
branch_labels = ('sandbox',)
# The tables used to come with the shop's 0002: depending on it keeps one order (0002,
# then this) on every database, old or new, and downgrades this branch first.
depends_on = '0002'


def upgrade():
    present = set(sa.inspect(op.get_bind()).get_table_names())
    if 'sandbox_trade' not in present:
        op.create_table('sandbox_trade',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('app_id', sa.String(length=32), nullable=False),
        sa.Column('out_trade_no', sa.String(length=64), nullable=False),
        sa.Column('trade_no', sa.String(length=64), nullable=False),
        sa.Column('subject', sa.String(length=256), nullable=False),
        sa.Column('total_fen', sa.Integer(), nullable=False),
        sa.Column('status', sa.String(length=20), nullable=False),
        sa.Column('product_code', sa.String(length=40), nullable=False),
        sa.Column('notify_url', sa.String(length=512), nullable=False),
        sa.Column('return_url', sa.String(length=512), nullable=False),
        sa.Column('buyer_logon_id', sa.String(length=64), nullable=False),
        sa.Column('refunded_fen', sa.Integer(), nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('paid_at', sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_sandbox_trade')),
        sa.UniqueConstraint('app_id', 'out_trade_no', name='uq_sandbox_trade_app_out_trade_no'),
        sa.UniqueConstraint('trade_no', name=op.f('uq_sandbox_trade_trade_no'))
        )
    if 'sandbox_transfer' not in present:
        op.create_table('sandbox_transfer',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('app_id', sa.String(length=32), nullable=False),
        sa.Column('out_biz_no', sa.String(length=64), nullable=False),
        sa.Column('order_id', sa.String(length=64), nullable=False),
        sa.Column('amount_fen', sa.Integer(), nullable=False),
        sa.Column('payee_identity', sa.String(length=64), nullable=False),
        sa.Column('payee_name', sa.String(length=64), nullable=False),
        sa.Column('status', sa.String(length=16), nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_sandbox_transfer')),
        sa.UniqueConstraint('app_id', 'out_biz_no', name='uq_sandbox_transfer_app_out_biz_no'),
        sa.UniqueConstraint('order_id', name=op.f('uq_sandbox_transfer_order_id'))
        )
    if 'sandbox_refund' not in present:
        op.create_table('sandbox_refund',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('trade_id', sa.Integer(), nullable=False),
        sa.Column('out_request_no', sa.String(length=64), nullable=False),
        sa.Column('amount_fen', sa.Integer(), nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(['trade_id'], ['sandbox_trade.id'], name=op.f('fk_sandbox_refund_trade_id_sandbox_trade')),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_sandbox_refund')),
        sa.UniqueConstraint('trade_id', 'out_request_no', name='uq_sandbox_refund_trade_request')
        )
        with op.batch_alter_table('sandbox_refund', schema=None) as batch_op:
            batch_op.create_index(batch_op.f('ix_sandbox_refund_trade_id'), ['trade_id'], unique=False)


def downgrade():
    present = set(sa.inspect(op.get_bind()).get_table_names())
    if 'sandbox_refund' in present:
        with op.batch_alter_table('sandbox_refund', schema=None) as batch_op:
            batch_op.drop_index(batch_op.f('ix_sandbox_refund_trade_id'))
        op.drop_table('sandbox_refund')
    for name in ('sandbox_transfer', 'sandbox_trade'):
        if name in present:
            op.drop_table(name)
