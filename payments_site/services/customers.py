"""Stripe customers: one per user, created once (idempotently) the first time it is needed."""

from __future__ import annotations

from payments_site import stripe_gateway
from payments_site.db import update_now
from payments_site.extensions import db
from payments_site.models import User


def ensure_stripe_customer(user: User) -> str:
    """The user's Stripe customer id, creating the customer on first use.

    The idempotency key is derived from our user id, so concurrent first uses (two tabs, a
    retry) get the same customer from Stripe, and the conditional update keeps the first.
    """
    if user.stripe_customer_id:
        return user.stripe_customer_id
    customer = stripe_gateway.create_customer(
        email=user.email, name=user.name or user.email, user_id=user.id,
        idempotency_key=f"customer-for-user-{user.id}")
    if not update_now(user, User.stripe_customer_id.is_(None), stripe_customer_id=customer.id):
        db.session.refresh(user)  # recorded by a concurrent first use: the same customer
    return str(user.stripe_customer_id)
