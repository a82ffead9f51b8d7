"""Disputes (chargebacks): flag the payment, keep an audit entry and alert every admin once."""

from __future__ import annotations

import logging

from sqlalchemy import select

from payments_site import stripe_gateway
from payments_site.db import lock_row, unit_of_work
from payments_site.extensions import db
from payments_site.models import Payment, User
from payments_site.money import format_money
from payments_site.services import audit, emails, payments

log = logging.getLogger(__name__)


class DisputedPaymentUnknown(LookupError):
    """Stripe reports a dispute on a charge we have no payment for (the event is retried,
    then left failed on the admin page for someone to look at)."""


def apply_dispute(dispute_id: str) -> Payment:
    """Re-fetch the dispute from Stripe and record its current state on the payment.

    The first time a dispute is seen it is audit-logged and every admin is emailed (one
    email per admin per dispute, whatever the number of events or replays). Idempotent.
    """
    dispute = stripe_gateway.retrieve_dispute(dispute_id)
    with unit_of_work():
        found = payments.find_payment_by_stripe_reference(dispute.payment_intent_id,
                                                          dispute.charge_id)
        if found is None:
            raise DisputedPaymentUnknown(f"dispute {dispute_id} is on a charge of no local "
                                         "payment")
        # Locked, so two events of one dispute are applied one at a time.
        payment = lock_row(found)
        first_seen = payment.stripe_dispute_id != dispute.id
        payment.stripe_dispute_id = dispute.id
        payment.dispute_status = (dispute.status or "")[:64] or None
        payment.dispute_reason = (dispute.reason or "")[:64] or None
        payment.dispute_evidence_due_by = dispute.evidence_due_by
        if first_seen:
            log.warning("payment %s disputed (%s, %s)", payment.public_id, dispute.id,
                        payment.dispute_reason)
            audit.record("dispute.opened", actor=None, payment=payment,
                         amount=dispute.amount or payment.amount,
                         currency=dispute.currency or payment.currency,
                         dispute_id=dispute.id, reason=payment.dispute_reason,
                         status=payment.dispute_status,
                         evidence_due_by=payment.dispute_evidence_due_by)
    # Not only when first seen: if a previous attempt died after flagging, the admins it had
    # not reached yet still get their email (the dedupe key makes each one send once).
    notify_admins(payment, dispute)
    return payment


def notify_admins(payment: Payment, dispute: stripe_gateway.Dispute) -> None:
    amount = format_money(dispute.amount or payment.amount,
                          dispute.currency or payment.currency)
    due_by = payment.dispute_evidence_due_by
    due_text = due_by.strftime("%Y-%m-%d %H:%M UTC") if due_by else "see the Stripe Dashboard"
    subject = f"Dispute opened on payment {payment.public_id} ({amount})"
    text_body = (
        f"A customer's bank opened a dispute on payment {payment.public_id}.\n\n"
        f"Amount: {amount}\n"
        f"Reason: {payment.dispute_reason or 'not given'}\n"
        f"Status: {payment.dispute_status or 'unknown'}\n"
        f"Evidence due by: {due_text}\n"
        f"Stripe dispute: {dispute.id}\n\n"
        "Submit evidence in the Stripe Dashboard before the deadline, or the disputed amount "
        "is lost.\n")
    admins = db.session.scalars(select(User).where(User.role == "admin").order_by(User.id))
    for admin in list(admins):
        emails.send_later(dedupe_key=f"dispute:{dispute.id}:{admin.id}", kind="dispute",
                   to=admin.email, subject=subject, text_body=text_body, html_body=None,
                   payment_id=payment.id)
