"""Accounts: a confirmed-address time and a credential version on every user.

Users who existed before this revision keep receiving their receipts: their address is the
one receipts already went to, so it counts as confirmed (from the time the account was made).

Revision ID: 0004_accounts
Revises: 0003_stripe_outcomes
Create Date: 2026-12-07 06:20:00

"""
from alembic import op
import sqlalchemy as sa


revision = '0004_accounts'
down_revision = '0003_stripe_outcomes'
branch_labels = None
depends_on = None

users = sa.table(
    'users',
    sa.column('created_at', sa.DateTime(timezone=True)),
    sa.column('email_verified_at', sa.DateTime(timezone=True)),
)


def upgrade():
    with op.batch_alter_table('users', schema=None) as batch_op:
        batch_op.add_column(sa.Column('email_verified_at', sa.DateTime(timezone=True),
                                      nullable=True))
        batch_op.add_column(sa.Column('credential_version', sa.Integer(), nullable=False,
                                      server_default='1'))
    op.execute(users.update().values(email_verified_at=users.c.created_at))


def downgrade():
    with op.batch_alter_table('users', schema=None) as batch_op:
        batch_op.drop_column('credential_version')
        batch_op.drop_column('email_verified_at')
