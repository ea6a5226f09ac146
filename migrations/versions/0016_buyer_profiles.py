"""buyer profiles: a signed-in buyer's saved checkout details (PII encrypted)

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-04 04:50:00

"""
from alembic import op
import sqlalchemy as sa


revision = '0016'
down_revision = '0015'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('buyer_profile',
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('name', sa.Text(), nullable=False),
    sa.Column('phone', sa.Text(), nullable=False),
    sa.Column('address', sa.Text(), nullable=False),
    sa.Column('email', sa.Text(), nullable=True),
    sa.Column('board_display', sa.String(length=12), nullable=False),
    sa.Column('nickname', sa.String(length=20), nullable=False),
    sa.Column('organization', sa.String(length=120), nullable=False),
    sa.ForeignKeyConstraint(['user_id'], ['user.id'], name=op.f('fk_buyer_profile_user_id_user')),
    sa.PrimaryKeyConstraint('user_id', name=op.f('pk_buyer_profile'))
    )


def downgrade():
    op.drop_table('buyer_profile')
