"""Stripe outcomes: Radar's verdict on payments, a new create key after a saved failure, and
why a webhook event was ignored.

Revision ID: 0003_stripe_outcomes
Revises: 0002_checkout_attempts
Create Date: 2026-12-07 06:10:00

"""
from alembic import op
import sqlalchemy as sa


revision = '0003_stripe_outcomes'
down_revision = '0002_checkout_attempts'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('payments', schema=None) as batch_op:
        batch_op.add_column(sa.Column('create_attempts', sa.Integer(), nullable=False,
                                      server_default='0'))
        batch_op.add_column(sa.Column('outcome_type', sa.String(length=32), nullable=True))
        batch_op.add_column(sa.Column('risk_level', sa.String(length=16), nullable=True))
        batch_op.add_column(sa.Column('risk_score', sa.Integer(), nullable=True))
    with op.batch_alter_table('payments', schema=None) as batch_op:
        batch_op.alter_column('create_attempts', server_default=None)
    with op.batch_alter_table('webhook_events', schema=None) as batch_op:
        batch_op.add_column(sa.Column('reason', sa.String(length=500), nullable=True))


def downgrade():
    with op.batch_alter_table('webhook_events', schema=None) as batch_op:
        batch_op.drop_column('reason')
    with op.batch_alter_table('payments', schema=None) as batch_op:
        batch_op.drop_column('risk_score')
        batch_op.drop_column('risk_level')
        batch_op.drop_column('outcome_type')
        batch_op.drop_column('create_attempts')
