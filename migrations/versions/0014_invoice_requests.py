"""invoice requests: the buyer's request, the team's PDF from the tax system

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-04 04:30:00

"""
from alembic import op
import sqlalchemy as sa


revision = '0014'
down_revision = '0013'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('invoice_request',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('order_id', sa.Integer(), nullable=False),
    sa.Column('kind', sa.String(length=12), nullable=False),
    sa.Column('title', sa.String(length=100), nullable=False),
    sa.Column('tax_id', sa.String(length=18), nullable=False),
    sa.Column('email', sa.Text(), nullable=False),
    sa.Column('status', sa.String(length=12), nullable=False),
    sa.Column('pdf_name', sa.String(length=64), nullable=False),
    sa.Column('requested_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('issued_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('issued_by_id', sa.Integer(), nullable=True),
    sa.CheckConstraint("kind IN ('personal', 'company')", name=op.f('ck_invoice_request_kind')),
    sa.CheckConstraint("status IN ('requested', 'issued')", name=op.f('ck_invoice_request_status')),
    sa.CheckConstraint("kind = 'personal' OR tax_id != ''", name=op.f('ck_invoice_request_company_has_tax_id')),
    sa.ForeignKeyConstraint(['issued_by_id'], ['user.id'], name=op.f('fk_invoice_request_issued_by_id_user')),
    sa.ForeignKeyConstraint(['order_id'], ['shop_order.id'], name=op.f('fk_invoice_request_order_id_shop_order')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_invoice_request')),
    sa.UniqueConstraint('order_id', name=op.f('uq_invoice_request_order_id'))
    )
    with op.batch_alter_table('invoice_request', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_invoice_request_status'), ['status'], unique=False)


def downgrade():
    with op.batch_alter_table('invoice_request', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_invoice_request_status'))
    op.drop_table('invoice_request')
