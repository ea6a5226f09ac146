"""public impact cards (opt-in, no personal data)

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-04 05:00:00

"""
from alembic import op
import sqlalchemy as sa


revision = '0017'
down_revision = '0016'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('impact_card',
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('slug', sa.String(length=32), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['user_id'], ['user.id'], name=op.f('fk_impact_card_user_id_user')),
    sa.PrimaryKeyConstraint('user_id', name=op.f('pk_impact_card')),
    sa.UniqueConstraint('slug', name=op.f('uq_impact_card_slug'))
    )


def downgrade():
    op.drop_table('impact_card')
