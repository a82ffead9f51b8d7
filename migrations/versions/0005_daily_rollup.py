"""Daily totals for the admin overview, and the indexes its roll-up reads changes by.

Revision ID: 0005_daily_rollup
Revises: 0004_accounts
Create Date: 2026-12-07 06:30:00

"""
from alembic import op
import sqlalchemy as sa


revision = '0005_daily_rollup'
down_revision = '0004_accounts'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('daily_totals',
    sa.Column('day', sa.Date(), nullable=False),
    sa.Column('currency', sa.String(length=3), nullable=False),
    sa.Column('payments', sa.Integer(), nullable=False),
    sa.Column('succeeded', sa.Integer(), nullable=False),
    sa.Column('failed', sa.Integer(), nullable=False),
    sa.Column('canceled', sa.Integer(), nullable=False),
    sa.Column('revenue', sa.BigInteger(), nullable=False),
    sa.Column('refunds', sa.Integer(), nullable=False),
    sa.Column('refunded', sa.BigInteger(), nullable=False),
    sa.Column('computed_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('day', 'currency', name=op.f('pk_daily_totals'))
    )
    with op.batch_alter_table('payments', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_payments_updated_at'), ['updated_at'], unique=False)
    with op.batch_alter_table('refunds', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_refunds_updated_at'), ['updated_at'], unique=False)


def downgrade():
    with op.batch_alter_table('refunds', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_refunds_updated_at'))
    with op.batch_alter_table('payments', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_payments_updated_at'))
    op.drop_table('daily_totals')
