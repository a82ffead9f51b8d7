"""The admin's view of payments: search with keyset paging, and one payment's full timeline."""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from sqlalchemy import Select, and_, or_, select
from sqlalchemy.orm import contains_eager

from payments_site.errors import InvalidRequest
from payments_site.extensions import db
from payments_site.models import (
    PAYMENT_STATUSES,
    AuditLog,
    OutboundEmail,
    Payment,
    Receipt,
    User,
    WebhookEvent,
)
from payments_site.services import emails

DEFAULT_PAGE_SIZE = 25
MAX_PAGE_SIZE = 100
# Beyond the payment statuses, the list can show only disputed or only refunded payments.
EXTRA_FILTERS = ("disputed", "refunded")
TIMELINE_EVENT_LIMIT = 200


@dataclass(frozen=True)
class PaymentFilters:
    query: str = ""
    status: str = ""
    date_from: date | None = None
    date_to: date | None = None
    limit: int = DEFAULT_PAGE_SIZE

    def as_args(self) -> dict[str, str]:
        """The filters as query-string arguments (for the paging links)."""
        args = {"q": self.query, "status": self.status,
                "from": self.date_from.isoformat() if self.date_from else "",
                "to": self.date_to.isoformat() if self.date_to else ""}
        if self.limit != DEFAULT_PAGE_SIZE:
            args["limit"] = str(self.limit)
        return {k: v for k, v in args.items() if v}


@dataclass
class PaymentPage:
    payments: list[Payment]
    older_cursor: str | None  # pass as `after` to see the next (older) page
    newer_cursor: str | None  # pass as `before` to see the previous (newer) page


def parse_filters(args: dict[str, str]) -> PaymentFilters:
    """Filters from the query string; 400 with the field's name when one is malformed."""
    status = (args.get("status") or "").strip()
    if status and status not in PAYMENT_STATUSES and status not in EXTRA_FILTERS:
        raise InvalidRequest("Unknown status filter.", param="status")
    limit_text = (args.get("limit") or "").strip()
    limit = DEFAULT_PAGE_SIZE
    if limit_text:
        if not limit_text.isdigit() or not 1 <= int(limit_text) <= MAX_PAGE_SIZE:
            raise InvalidRequest(f"limit must be 1 to {MAX_PAGE_SIZE}.", param="limit")
        limit = int(limit_text)
    date_from, date_to = _date(args, "from"), _date(args, "to")
    if date_from and date_to and date_from > date_to:
        raise InvalidRequest("The 'from' date is after the 'to' date.", param="from")
    return PaymentFilters(query=(args.get("q") or "").strip()[:254], status=status,
                          date_from=date_from, date_to=date_to, limit=limit)


def _date(args: dict[str, str], name: str) -> date | None:
    text = (args.get(name) or "").strip()
    if not text:
        return None
    try:
        return date.fromisoformat(text)
    except ValueError as error:
        raise InvalidRequest(f"'{name}' must be a date such as 2025-01-31.",
                             param=name) from error


def encode_cursor(payment: Payment) -> str:
    raw = f"{payment.created_at.astimezone(UTC).isoformat()}|{payment.id}"
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_cursor(token: str, param: str) -> tuple[datetime, int]:
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode()
        stamp, _, ident = raw.partition("|")
        at = datetime.fromisoformat(stamp)
        if at.tzinfo is None:
            raise ValueError("naive")
        return at, int(ident)
    except (ValueError, binascii.Error, UnicodeDecodeError) as error:
        raise InvalidRequest("The page link is invalid.", param=param) from error


def search_payments(filters: PaymentFilters, *, after: str | None = None,
                    before: str | None = None) -> PaymentPage:
    """One page of payments, newest first; customers joined and items batch-loaded (no N+1)."""
    stmt = _filtered(filters)
    newest_first = True
    if after:
        at, ident = decode_cursor(after, "after")
        stmt = stmt.where(or_(Payment.created_at < at,
                              and_(Payment.created_at == at, Payment.id < ident)))
    elif before:
        at, ident = decode_cursor(before, "before")
        stmt = stmt.where(or_(Payment.created_at > at,
                              and_(Payment.created_at == at, Payment.id > ident)))
        newest_first = False
    order = (Payment.created_at.desc(), Payment.id.desc()) if newest_first \
        else (Payment.created_at.asc(), Payment.id.asc())
    rows = list(db.session.scalars(stmt.order_by(*order).limit(filters.limit + 1)).unique())
    has_more = len(rows) > filters.limit
    rows = rows[:filters.limit]
    if not newest_first:
        rows.reverse()
    if not rows:
        return PaymentPage([], None, None)
    # Going older: more exist past the last row; newer ones exist if we came from a cursor.
    more_older = has_more if newest_first else True
    more_newer = (has_more if not newest_first else bool(after))
    return PaymentPage(rows, encode_cursor(rows[-1]) if more_older else None,
                       encode_cursor(rows[0]) if more_newer else None)


def _filtered(filters: PaymentFilters) -> Select[Payment]:
    stmt = select(Payment).join(Payment.user).options(contains_eager(Payment.user))
    if filters.query:
        text = filters.query
        like = "%" + text.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") \
            + "%"
        stmt = stmt.where(or_(Payment.public_id == text,
                              Payment.stripe_payment_intent_id == text,
                              Payment.stripe_charge_id == text,
                              User.email.ilike(like, escape="\\")))
    if filters.status == "disputed":
        stmt = stmt.where(Payment.stripe_dispute_id.is_not(None))
    elif filters.status == "refunded":
        stmt = stmt.where(Payment.amount_refunded > 0)
    elif filters.status:
        stmt = stmt.where(Payment.status == filters.status)
    if filters.date_from:
        stmt = stmt.where(Payment.created_at >= datetime.combine(filters.date_from, time(),
                                                                 tzinfo=UTC))
    if filters.date_to:
        end = datetime.combine(filters.date_to, time(), tzinfo=UTC) + timedelta(days=1)
        stmt = stmt.where(Payment.created_at < end)
    return stmt


# --- Emails that gave up -------------------------------------------------------------------

@dataclass(frozen=True)
class FailedEmail:
    email: OutboundEmail
    payment_public_id: str | None  # the payment it is about, for the link; None if none


def failed_emails(limit: int = 100) -> list[FailedEmail]:
    """Failed emails, newest first, with their payments' public ids (one query for those)."""
    rows = emails.failed_emails(limit)
    payment_ids = {email.payment_id for email in rows if email.payment_id}
    public_ids = dict(db.session.execute(
        select(Payment.id, Payment.public_id).where(Payment.id.in_(payment_ids)))
        .tuples().all()) if payment_ids else {}
    return [FailedEmail(email, public_ids.get(email.payment_id) if email.payment_id else None)
            for email in rows]


# --- One payment's timeline -----------------------------------------------------------------

@dataclass
class TimelineEntry:
    at: datetime
    kind: str  # payment | refund | receipt | email | webhook | dispute | audit
    title: str
    detail: str = ""
    amount: int | None = None
    currency: str | None = None
    actor: str | None = None
    badge: str | None = None
    meta: dict[str, Any] = field(default_factory=dict)


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
    """Everything that happened to a payment, oldest first, from every table that knows."""
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
                                     receipt.number, meta={"number": receipt.number}))
        if receipt.emailed_at:
            entries.append(TimelineEntry(receipt.emailed_at, "receipt", f"{label} emailed",
                                         receipt.number, meta={"number": receipt.number}))
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
