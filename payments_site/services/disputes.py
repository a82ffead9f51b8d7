"""Disputes (chargebacks): flag the payment, keep an audit entry and alert every admin once."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select

from payments_site import stripe_gateway
from payments_site.extensions import db
from payments_site.models import Payment, User
from payments_site.money import format_money
from payments_site.services import audit, emails

log = logging.getLogger(__name__)


class DisputedPaymentUnknown(LookupError):
    """Stripe reports a dispute on a charge we have no payment for (the event is retried,
    then left failed on the admin page for someone to look at)."""


def _id_of(value: Any) -> str | None:
    if isinstance(value, dict):
        value = value.get("id")
    return value if isinstance(value, str) and value else None


def _payment_for(dispute: dict[str, Any]) -> Payment | None:
    """The disputed payment, locked so two events of one dispute are applied one at a time."""
    conditions = []
    intent_id = _id_of(dispute.get("payment_intent"))
    charge_id = _id_of(dispute.get("charge"))
    if intent_id:
        conditions.append(Payment.stripe_payment_intent_id == intent_id)
    if charge_id:
        conditions.append(Payment.stripe_charge_id == charge_id)
    for condition in conditions:
        payment = db.session.scalar(select(Payment).where(condition).with_for_update()
                                    .execution_options(populate_existing=True))
        if payment is not None:
            return payment
    return None


def _due_by(dispute: dict[str, Any]) -> datetime | None:
    due_by = (dispute.get("evidence_details") or {}).get("due_by")
    return datetime.fromtimestamp(int(due_by), UTC) if due_by else None


def apply_dispute(dispute_id: str) -> Payment:
    """Re-fetch the dispute from Stripe and record its current state on the payment.

    The first time a dispute is seen it is audit-logged and every admin is emailed (one
    email per admin per dispute, whatever the number of events or replays). Idempotent.
    """
    dispute = stripe_gateway.to_dict(stripe_gateway.retrieve_dispute(dispute_id))
    payment = _payment_for(dispute)
    if payment is None:
        raise DisputedPaymentUnknown(f"dispute {dispute_id} is on a charge of no local payment")
    first_seen = payment.stripe_dispute_id != dispute["id"]
    payment.stripe_dispute_id = dispute["id"]
    payment.dispute_status = str(dispute.get("status") or "")[:64] or None
    payment.dispute_reason = str(dispute.get("reason") or "")[:64] or None
    payment.dispute_evidence_due_by = _due_by(dispute)
    if first_seen:
        log.warning("payment %s disputed (%s, %s)", payment.public_id, dispute["id"],
                    payment.dispute_reason)
        audit.record("dispute.opened", actor=None, payment=payment,
                     amount=int(dispute.get("amount") or payment.amount),
                     currency=str(dispute.get("currency") or payment.currency),
                     dispute_id=dispute["id"], reason=payment.dispute_reason,
                     status=payment.dispute_status,
                     evidence_due_by=payment.dispute_evidence_due_by)
    db.session.flush()
    # Not only when first seen: if a previous attempt died after flagging, the admins it had
    # not reached yet still get their email (the dedupe key makes each one send once).
    notify_admins(payment, dispute)
    return payment


def notify_admins(payment: Payment, dispute: dict[str, Any]) -> None:
    amount = format_money(int(dispute.get("amount") or payment.amount),
                          str(dispute.get("currency") or payment.currency))
    due_by = payment.dispute_evidence_due_by
    due_text = due_by.strftime("%Y-%m-%d %H:%M UTC") if due_by else "see the Stripe Dashboard"
    subject = f"Dispute opened on payment {payment.public_id} ({amount})"
    text_body = (
        f"A customer's bank opened a dispute on payment {payment.public_id}.\n\n"
        f"Amount: {amount}\n"
        f"Reason: {payment.dispute_reason or 'not given'}\n"
        f"Status: {payment.dispute_status or 'unknown'}\n"
        f"Evidence due by: {due_text}\n"
        f"Stripe dispute: {dispute['id']}\n\n"
        "Submit evidence in the Stripe Dashboard before the deadline, or the disputed amount "
        "is lost.\n")
    admins = db.session.scalars(select(User).where(User.role == "admin").order_by(User.id))
    for admin in list(admins):
        emails.send_later(dedupe_key=f"dispute:{dispute['id']}:{admin.id}", kind="dispute",
                   to=admin.email, subject=subject, text_body=text_body, html_body=None,
                   payment_id=payment.id)
