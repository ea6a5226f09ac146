"""unpaid-order limits: keyed digests of the buyer's phone and client address on orders

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-04 03:40:00

"""
from alembic import op
import sqlalchemy as sa


revision = '0012'
down_revision = '0011'
branch_labels = None
depends_on = None


def upgrade():
    # Nullable: orders placed before the limits have no digests and are never counted
    # (the oldest unpaid one expires within ORDER_EXPIRY_MINUTES anyway).
    with op.batch_alter_table('shop_order', schema=None) as batch_op:
        batch_op.add_column(sa.Column('phone_digest', sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column('client_digest', sa.String(length=64), nullable=True))
        batch_op.create_index(batch_op.f('ix_shop_order_phone_digest'), ['phone_digest'], unique=False)
        batch_op.create_index(batch_op.f('ix_shop_order_client_digest'), ['client_digest'], unique=False)


def downgrade():
    with op.batch_alter_table('shop_order', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_shop_order_client_digest'))
        batch_op.drop_index(batch_op.f('ix_shop_order_phone_digest'))
        batch_op.drop_column('client_digest')
        batch_op.drop_column('phone_digest')
