"""Payment and refund rows made directly, on a chosen UTC day, for the overview's tests."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, time, timedelta
from typing import Any

from payments_site.extensions import db
from payments_site.models import Payment, Refund, utcnow
from tests.helpers import add_refund


def _on(days_ago: int, hour: int) -> datetime:
    return datetime.combine(utcnow().date() - timedelta(days=days_ago), time(hour), tzinfo=UTC)


def payment_row(user: Any, *, days_ago: int, amount: int, currency: str = "usd",
                status: str = "succeeded", hour: int = 12) -> Payment:
    created = _on(days_ago, hour)
    payment = Payment(user_id=user.id, status=status, amount=amount, currency=currency,
                      cart_hash=uuid.uuid4().hex, created_at=created, updated_at=created,
                      succeeded_at=created if status == "succeeded" else None)
    db.session.add(payment)
    db.session.commit()
    return payment


def refund_row(payment: Payment, amount: int, *, days_ago: int,
               status: str = "succeeded") -> Refund:
    created = _on(days_ago, 15)
    return add_refund(payment, amount, status=status, created_at=created, updated_at=created)
