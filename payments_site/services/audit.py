"""The audit trail of admin (and system) actions on payments."""

from __future__ import annotations

import json
from typing import Any

from payments_site.extensions import db
from payments_site.models import AuditLog, Payment, Refund, User


def record(action: str, *, actor: User | None, payment: Payment | None = None,
           refund: Refund | None = None, amount: int | None = None,
           currency: str | None = None, **details: Any) -> AuditLog:
    """Add an audit row to the current transaction (the caller commits with its own change)."""
    entry = AuditLog(action=action, actor_id=actor.id if actor is not None else None,
                     payment_id=payment.id if payment is not None else None,
                     refund_id=refund.id if refund is not None else None,
                     amount=amount, currency=currency,
                     details=json.dumps(details, sort_keys=True, default=str))
    db.session.add(entry)
    return entry
