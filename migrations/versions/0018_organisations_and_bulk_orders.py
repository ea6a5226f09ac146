"""organisations and bulk orders

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-04 19:54:43.847693

"""
from alembic import op
import sqlalchemy as sa



revision = '0018'
down_revision = '0017'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('organisation',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=60), nullable=False),
    sa.Column('credit_code', sa.String(length=18), nullable=False),
    sa.Column('contact_name', sa.Text(), nullable=False),
    sa.Column('contact_phone', sa.Text(), nullable=False),
    sa.Column('contact_email', sa.Text(), nullable=True),
    sa.Column('invite_code', sa.String(length=48), nullable=False),
    sa.Column('created_by', sa.Integer(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('verified_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('verified_by', sa.Integer(), nullable=True),
    sa.ForeignKeyConstraint(['created_by'], ['user.id'], name=op.f('fk_organisation_created_by_user')),
    sa.ForeignKeyConstraint(['verified_by'], ['user.id'], name=op.f('fk_organisation_verified_by_user')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_organisation')),
    sa.UniqueConstraint('credit_code', name=op.f('uq_organisation_credit_code')),
    sa.UniqueConstraint('invite_code', name=op.f('uq_organisation_invite_code'))
    )
    op.create_table('organisation_member',
    sa.Column('organisation_id', sa.Integer(), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('role', sa.String(length=8), nullable=False),
    sa.Column('joined_at', sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint("role IN ('admin', 'member')", name=op.f('ck_organisation_member_role')),
    sa.ForeignKeyConstraint(['organisation_id'], ['organisation.id'], name=op.f('fk_organisation_member_organisation_id_organisation')),
    sa.ForeignKeyConstraint(['user_id'], ['user.id'], name=op.f('fk_organisation_member_user_id_user')),
    sa.PrimaryKeyConstraint('organisation_id', 'user_id', name=op.f('pk_organisation_member'))
    )
    with op.batch_alter_table('organisation_member', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_organisation_member_user_id'), ['user_id'], unique=False)

    op.create_table('bulk_upload',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('organisation_id', sa.Integer(), nullable=False),
    sa.Column('digest', sa.String(length=64), nullable=False),
    sa.Column('live_digest', sa.String(length=64), nullable=True),
    sa.Column('order_id', sa.Integer(), nullable=False),
    sa.Column('uploaded_by', sa.Integer(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['order_id'], ['shop_order.id'], name=op.f('fk_bulk_upload_order_id_shop_order')),
    sa.ForeignKeyConstraint(['organisation_id'], ['organisation.id'], name=op.f('fk_bulk_upload_organisation_id_organisation')),
    sa.ForeignKeyConstraint(['uploaded_by'], ['user.id'], name=op.f('fk_bulk_upload_uploaded_by_user')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_bulk_upload')),
    sa.UniqueConstraint('order_id', name=op.f('uq_bulk_upload_order_id')),
    sa.UniqueConstraint('organisation_id', 'live_digest', name=op.f('uq_bulk_upload_organisation_id'))
    )
    op.create_table('bulk_recipient',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('upload_id', sa.Integer(), nullable=False),
    sa.Column('row_no', sa.Integer(), nullable=False),
    sa.Column('name', sa.Text(), nullable=False),
    sa.Column('phone', sa.Text(), nullable=False),
    sa.Column('address', sa.Text(), nullable=False),
    sa.Column('product_id', sa.Integer(), nullable=False),
    sa.Column('product_name', sa.String(length=120), nullable=False),
    sa.Column('quantity', sa.Integer(), nullable=False),
    sa.CheckConstraint('quantity > 0', name=op.f('ck_bulk_recipient_quantity_positive')),
    sa.ForeignKeyConstraint(['product_id'], ['product.id'], name=op.f('fk_bulk_recipient_product_id_product')),
    sa.ForeignKeyConstraint(['upload_id'], ['bulk_upload.id'], name=op.f('fk_bulk_recipient_upload_id_bulk_upload')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_bulk_recipient')),
    sa.UniqueConstraint('upload_id', 'row_no', name=op.f('uq_bulk_recipient_upload_id'))
    )
    with op.batch_alter_table('shop_order', schema=None) as batch_op:
        batch_op.add_column(sa.Column('organisation_id', sa.Integer(), nullable=True))
        batch_op.create_index(batch_op.f('ix_shop_order_organisation_id'), ['organisation_id'], unique=False)
        batch_op.create_foreign_key(batch_op.f('fk_shop_order_organisation_id_organisation'), 'organisation', ['organisation_id'], ['id'])



def downgrade():
    with op.batch_alter_table('shop_order', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('fk_shop_order_organisation_id_organisation'), type_='foreignkey')
        batch_op.drop_index(batch_op.f('ix_shop_order_organisation_id'))
        batch_op.drop_column('organisation_id')

    op.drop_table('bulk_recipient')
    op.drop_table('bulk_upload')
    with op.batch_alter_table('organisation_member', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_organisation_member_user_id'))

    op.drop_table('organisation_member')
    op.drop_table('organisation')
