"""A payment's timeline: one kind of entry, in the admin's view (everything, from every table
that knows) and in the customer's (where the payment stands, paid, refunds)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import and_, or_, select

from payments_site.extensions import db
from payments_site.models import AuditLog, OutboundEmail, Payment, Receipt, User, WebhookEvent

TIMELINE_EVENT_LIMIT = 200


@dataclass(frozen=True)
class TimelineEntry:
    at: datetime
    kind: str  # payment | refund | receipt | email | webhook | dispute | audit
    title: str
    detail: str = ""
    amount: int | None = None
    currency: str | None = None
    actor: str | None = None
    badge: str | None = None  # the state the entry shows (succeeded, failed, …)


def customer_timeline(payment: Payment) -> list[TimelineEntry]:
    """What happened to a payment, in order and in the customer's words: started, where it
    stands now, paid, and each refund (with its amount)."""
    entries = [TimelineEntry(payment.created_at, "payment", "Started", badge="created")]
    state = _CUSTOMER_STATES.get(payment.status)
    if payment.status == "failed":
        entries.append(TimelineEntry(
            payment.updated_at, "payment",
            "Failed" + (f": {payment.failure_message}" if payment.failure_message else ""),
            badge="failed"))
    elif state is not None:
        entries.append(TimelineEntry(payment.updated_at, "payment", state,
                                     badge=payment.status))
    if payment.succeeded_at is not None:
        entries.append(TimelineEntry(payment.succeeded_at, "payment", "Paid",
                                     badge="succeeded"))
    for refund in payment.refunds:
        entries.append(TimelineEntry(
            refund.updated_at if refund.status != "pending" else refund.created_at, "refund",
            _CUSTOMER_REFUND_STATES.get(refund.status, "Refund requested"),
            amount=refund.amount, currency=refund.currency, badge=refund.status))
    return entries


_CUSTOMER_STATES = {
    "requires_action": "Not completed: your bank's check (3-D Secure) was not finished",
    "requires_payment_method": "Not completed: no card was charged",
    "processing": "Processing", "canceled": "Canceled"}
# A refund's state on the customer's timeline.
_CUSTOMER_REFUND_STATES = {"pending": "Refund requested", "succeeded": "Refunded",
                           "failed": "Refund failed"}


_AUDIT_TITLES = {
    "refund.requested": "Refund requested",
    "refund.succeeded": "Refund succeeded",
    "refund.failed": "Refund failed",
    "refund.recorded_from_stripe": "Refund made on Stripe recorded",
    "email.retried": "Failed email retried",
    "receipt.resent": "Receipt re-sent",
    "webhook.replayed": "Stripe event replayed",
}


def payment_timeline(payment: Payment) -> list[TimelineEntry]:
    """Everything that happened to a payment, oldest first, from every table that knows (the
    admin's view)."""
    entries = _payment_entries(payment)
    events = _webhook_events(payment)
    audit_rows = _audit_rows(payment, [event.stripe_event_id for event in events])
    refunds = list(payment.refunds)
    actor_ids = {row.actor_id for row in audit_rows if row.actor_id} | \
        {r.created_by_id for r in refunds if r.created_by_id}
    actors = {u.id: u.email for u in db.session.scalars(
        select(User).where(User.id.in_(actor_ids)))} if actor_ids else {}
    refund_ids = {r.id: r.public_id for r in refunds}
    audited_refunds = {row.refund_id for row in audit_rows if row.refund_id}
    for row in audit_rows:
        details = _json(row.details)
        detail = ", ".join(f"{k.replace('_', ' ')}: {v}" for k, v in sorted(details.items())
                           if v not in (None, "") and k != "refund_id")
        if row.refund_id:
            detail = f"{refund_ids.get(row.refund_id, '')} {detail}".strip()
        entries.append(TimelineEntry(
            row.created_at, "audit",
            _AUDIT_TITLES.get(row.action, row.action.replace(".", " ").replace("_", " ")
                              .capitalize()),
            detail, row.amount, row.currency,
            actor=actors.get(row.actor_id) if row.actor_id else "system",
            badge=row.action.rpartition(".")[2]))
    for refund in refunds:
        if refund.id in audited_refunds:
            continue
        entries.append(TimelineEntry(refund.created_at, "refund", "Refund created",
                                     refund.public_id, refund.amount, refund.currency,
                                     actor=actors.get(refund.created_by_id or 0, "Stripe"),
                                     badge=refund.status))
    entries += _receipt_entries(payment)
    entries += _email_entries(payment)
    entries += _webhook_entries(events)
    entries.sort(key=lambda entry: entry.at)
    return entries


def _payment_entries(payment: Payment) -> list[TimelineEntry]:
    entries = [TimelineEntry(payment.created_at, "payment", "Payment created",
                             payment.description, payment.amount, payment.currency,
                             actor=payment.user.email)]
    if payment.succeeded_at:
        card = f"{payment.card_brand or 'card'} •••• {payment.card_last4}" \
            if payment.card_last4 else ""
        entries.append(TimelineEntry(payment.succeeded_at, "payment", "Payment succeeded",
                                     card, payment.amount, payment.currency, badge="succeeded"))
    if payment.failure_code or payment.failure_message:
        code = payment.failure_decline_code or payment.failure_code or ""
        entries.append(TimelineEntry(payment.updated_at, "payment", "Payment attempt failed",
                                     f"{payment.failure_message or ''} ({code})".strip(),
                                     badge="failed"))
    if payment.status in ("canceled", "requires_action", "processing") or \
            (payment.status == "failed" and not payment.failure_code):
        entries.append(TimelineEntry(payment.updated_at, "payment",
                                     f"Status: {payment.status.replace('_', ' ')}",
                                     badge=payment.status))
    if payment.stripe_dispute_id:
        due = payment.dispute_evidence_due_by
        entries.append(TimelineEntry(
            payment.updated_at, "dispute", "Disputed by the cardholder",
            f"{payment.stripe_dispute_id} · reason: {payment.dispute_reason or 'unknown'}"
            f" · status: {payment.dispute_status or 'unknown'}"
            + (f" · evidence due by {due:%Y-%m-%d %H:%M} UTC" if due else ""),
            badge="disputed"))
    return entries


def _receipt_entries(payment: Payment) -> list[TimelineEntry]:
    entries = []
    for receipt in db.session.scalars(select(Receipt).where(Receipt.payment_id == payment.id)
                                      .order_by(Receipt.id)):
        label = "Refund note" if receipt.series == "refund_note" else "Receipt"
        entries.append(TimelineEntry(receipt.created_at, "receipt", f"{label} issued",
                                     receipt.number))
        if receipt.emailed_at:
            entries.append(TimelineEntry(receipt.emailed_at, "receipt", f"{label} emailed",
                                         receipt.number))
    return entries


def _email_entries(payment: Payment) -> list[TimelineEntry]:
    return [TimelineEntry(email.sent_at or email.created_at, "email",
                          f"Email: {email.subject}",
                          f"to {email.to_address} · {email.kind} · attempts {email.attempts}"
                          + (f" · {email.last_error}" if email.last_error else ""),
                          badge=email.status)
            for email in db.session.scalars(select(OutboundEmail).where(
                OutboundEmail.payment_id == payment.id).order_by(OutboundEmail.id))]


def _like_stripe_id(stripe_id: str) -> str:
    # Stripe ids are [A-Za-z0-9_] only, so they are safe inside LIKE once `_` is escaped.
    return stripe_id.replace("_", "\\_")


def _audit_rows(payment: Payment, event_ids: list[str]) -> list[AuditLog]:
    """The payment's audit rows, plus replays of its webhook events.

    A replay is audited with the event's id rather than the payment's (the event is what
    was replayed), so it is found by that id in its details.
    """
    about = AuditLog.payment_id == payment.id
    if event_ids:
        replays = and_(AuditLog.payment_id.is_(None), AuditLog.action == "webhook.replayed",
                       or_(*[AuditLog.details.like(
                           f'%"stripe_event_id": "{_like_stripe_id(i)}"%', escape="\\")
                           for i in event_ids]))
        about = or_(about, replays)
    return list(db.session.scalars(select(AuditLog).where(about)
                                   .order_by(AuditLog.created_at, AuditLog.id)))


def _webhook_events(payment: Payment) -> list[WebhookEvent]:
    ids = [i for i in (payment.stripe_payment_intent_id, payment.stripe_charge_id,
                       payment.stripe_dispute_id) if i]
    if not ids:
        return []
    patterns = [WebhookEvent.payload.like("%" + _like_stripe_id(i) + "%", escape="\\")
                for i in ids]
    return list(db.session.scalars(select(WebhookEvent).where(or_(*patterns))
                                   .order_by(WebhookEvent.received_at)
                                   .limit(TIMELINE_EVENT_LIMIT)))


def _webhook_entries(events: list[WebhookEvent]) -> list[TimelineEntry]:
    return [TimelineEntry(event.received_at, "webhook", f"Stripe event {event.type}",
                          event.stripe_event_id + (f" · {event.last_error}"
                                                   if event.last_error else ""),
                          badge=event.status)
            for event in events]


def _json(text: str | None) -> dict[str, Any]:
    try:
        value = json.loads(text or "{}")
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}
