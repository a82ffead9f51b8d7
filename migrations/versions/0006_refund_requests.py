"""Refund requests: the Idempotency-Key (or admin form) a refund was asked with, once per payment.

A refund asked again under the same key, after the first answer was lost, finds the refund
it made instead of reserving and refunding a second time. Refunds made before this revision
have no key.

Revision ID: 0006_refund_requests
Revises: 0005_daily_rollup
Create Date: 2026-12-07 15:30:00

"""
from alembic import op
import sqlalchemy as sa


revision = '0006_refund_requests'
down_revision = '0005_daily_rollup'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('refunds', schema=None) as batch_op:
        batch_op.add_column(sa.Column('request_token', sa.String(length=64), nullable=True))
        batch_op.create_unique_constraint(
            batch_op.f('uq_refunds_payment_id_request_token'), ['payment_id', 'request_token'])


def downgrade():
    with op.batch_alter_table('refunds', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('uq_refunds_payment_id_request_token'),
                                 type_='unique')
        batch_op.drop_column('request_token')
