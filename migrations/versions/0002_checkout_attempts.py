"""Checkout attempts: a payment per attempt token, and the payments nobody tried to pay.

Older builds created a payment (and a PaymentIntent) as soon as the checkout page opened
and again at every quantity change. Those rows are not payments anyone tried to make:
- with no PaymentIntent (and none possibly lost on the way), they are canceled here: there
  is nothing at Stripe to cancel;
- with a PaymentIntent that never received a payment method, they are flagged for the
  worker's sweeper, which cancels the intent at Stripe first and then the row (a migration
  must not call Stripe, and the row must not read canceled while its intent could still be
  confirmed from a page left open).

Revision ID: 0002_checkout_attempts
Revises: 0001_initial
Create Date: 2026-12-07 03:10:00

"""
from datetime import datetime, timezone

from alembic import op
import sqlalchemy as sa


revision = '0002_checkout_attempts'
down_revision = '0001_initial'
branch_labels = None
depends_on = None

payments = sa.table(
    'payments',
    sa.column('status', sa.String),
    sa.column('stripe_payment_intent_id', sa.String),
    sa.column('needs_reconcile', sa.Boolean),
    sa.column('card_last4', sa.String),
    sa.column('failure_code', sa.String),
    sa.column('confirm_attempts', sa.Integer),
    sa.column('cancel_requested', sa.Boolean),
    sa.column('updated_at', sa.DateTime(timezone=True)),
)


def upgrade():
    with op.batch_alter_table('payments', schema=None) as batch_op:
        batch_op.add_column(sa.Column('checkout_attempt', sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column('cancel_requested', sa.Boolean(), nullable=False,
                                      server_default=sa.false()))
        batch_op.create_unique_constraint(
            batch_op.f('uq_payments_user_id_checkout_attempt_cart_hash'),
            ['user_id', 'checkout_attempt', 'cart_hash'])
    with op.batch_alter_table('payments', schema=None) as batch_op:
        batch_op.alter_column('cancel_requested', server_default=None)

    never_tried = sa.and_(payments.c.status == 'requires_payment_method',
                          payments.c.card_last4.is_(None),
                          payments.c.failure_code.is_(None),
                          payments.c.confirm_attempts == 0)
    op.execute(payments.update()
               .where(never_tried, payments.c.stripe_payment_intent_id.is_(None),
                      payments.c.needs_reconcile.is_(False))
               .values(status='canceled', updated_at=datetime.now(timezone.utc)))
    op.execute(payments.update()
               .where(never_tried, payments.c.stripe_payment_intent_id.is_not(None))
               .values(cancel_requested=True))


def downgrade():
    with op.batch_alter_table('payments', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('uq_payments_user_id_checkout_attempt_cart_hash'),
                                 type_='unique')
        batch_op.drop_column('cancel_requested')
        batch_op.drop_column('checkout_attempt')
