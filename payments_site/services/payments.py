"""Payments follow their PaymentIntent: apply Stripe's state (forward only), history, lookups."""

from __future__ import annotations

import base64
import binascii
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from flask import current_app
from sqlalchemy import ColumnElement, and_, or_, select, update
from sqlalchemy.orm import selectinload

from payments_site import stripe_gateway
from payments_site.db import update_now
from payments_site.errors import InvalidRequest, NotFound
from payments_site.extensions import db
from payments_site.models import PAYMENT_STATUSES, TERMINAL_STATUSES, Payment, User, utcnow
from payments_site.services import fulfilment, methods

log = logging.getLogger(__name__)

# While a server-side confirm is in flight the row says `processing` although the intent
# still says `requires_confirmation`; a re-fetch within this window must not undo the claim.
CONFIRM_LEASE = timedelta(minutes=2)
HISTORY_DEFAULT_LIMIT = 20
HISTORY_MAX_LIMIT = 100
# Started (the customer pressed Pay) but not finished: no card yet, or 3-D Secure pending.
UNFINISHED_STATUSES = ("requires_payment_method", "requires_action")
RETRYABLE_STATUSES = (*UNFINISHED_STATUSES, "failed")


def _field(obj: Any, key: str) -> Any:
    if obj is None or isinstance(obj, str):
        return None
    try:
        return obj.get(key)
    except AttributeError:
        return getattr(obj, key, None)


def _id_of(value: Any) -> str | None:
    """A Stripe id from either an id string or an expanded object."""
    if value is None:
        return None
    if isinstance(value, str):
        return value
    found = _field(value, "id")
    return str(found) if found else None


def local_status(intent: Any) -> str:
    """Our Payment status for a PaymentIntent status (API.md's six values)."""
    status = str(_field(intent, "status") or "")
    if status == "requires_payment_method":
        return "failed" if _field(intent, "last_payment_error") else "requires_payment_method"
    if status == "requires_confirmation":
        return "requires_payment_method"
    if status == "requires_capture":
        return "processing"  # authorised, not yet captured: money is on its way
    if status in ("requires_action", "processing", "succeeded", "canceled"):
        return status
    log.warning("unknown PaymentIntent status %r", status)
    return "processing"


def _card_of(intent: Any) -> tuple[str | None, str | None]:
    """Brand and last4 from the intent's card, its latest charge, or its last failed card."""
    candidates = [
        _field(_field(intent, "payment_method"), "card"),
        _field(_field(_field(intent, "latest_charge"), "payment_method_details"), "card"),
        _field(_field(_field(intent, "last_payment_error"), "payment_method"), "card"),
    ]
    for card in candidates:
        if card is not None and _field(card, "last4"):
            return _field(card, "brand"), str(_field(card, "last4"))
    return None, None


def find_payment_for_intent(intent: Any) -> Payment | None:
    intent_id = _id_of(intent)
    payment = db.session.scalar(select(Payment).where(
        Payment.stripe_payment_intent_id == intent_id)) if intent_id else None
    if payment is None:
        # The intent was created but we never stored its id (crash, retries exhausted):
        # our own id in its metadata links it back.
        public_id = _field(_field(intent, "metadata"), "payment_id")
        if public_id:
            payment = db.session.scalar(select(Payment).where(Payment.public_id == public_id))
            if payment is not None and payment.stripe_payment_intent_id is None:
                db.session.execute(update(Payment).where(
                    Payment.id == payment.id, Payment.stripe_payment_intent_id.is_(None))
                    .values(stripe_payment_intent_id=intent_id))
                db.session.commit()
                db.session.refresh(payment)
            elif payment is not None and payment.stripe_payment_intent_id != intent_id:
                return None
    return payment


def apply_payment_intent(intent: Any) -> Payment | None:
    """Bring the local payment in line with this PaymentIntent; None if it is not ours.

    Status only moves forward: once succeeded or canceled nothing changes it back, however
    old or replayed the intent is. The first caller to move a payment to succeeded (one
    conditional UPDATE decides) stamps `succeeded_at`, saves the card when asked and starts
    fulfilment; every other caller finds the work done. Commits.
    """
    return apply_intent_state(intent, own_confirm=False)


def apply_intent_state(intent: Any, *, own_confirm: bool,
                       payment: Payment | None = None) -> Payment | None:
    """`apply_payment_intent`; `own_confirm` is True only for the request holding the
    confirm claim (only it may end the claim with an unconfirmed state).

    `payment`: the caller's payment whose own (recorded) intent this is, so it need not be
    looked up again. Afterwards it reads as the row does: it takes the written values, or
    is refreshed when the guarded UPDATE matched nothing (another caller got there first).
    """
    if payment is None:
        payment = find_payment_for_intent(intent)
        if payment is None:
            return None
    new_status = local_status(intent)
    error = _field(intent, "last_payment_error")
    brand, last4 = _card_of(intent)
    values: dict[str, Any] = {"needs_reconcile": False}
    charge_id = _id_of(_field(intent, "latest_charge"))
    if charge_id and new_status == "succeeded":
        values["stripe_charge_id"] = charge_id
    if last4:
        values.update(card_brand=brand, card_last4=last4)
    if error:
        values.update(failure_code=str(_field(error, "code") or "card_declined")[:64],
                      failure_decline_code=(str(_field(error, "decline_code"))[:64]
                                            if _field(error, "decline_code") else None),
                      failure_message=stripe_gateway.friendly_decline_message(
                          _field(error, "code"), _field(error, "decline_code"),
                          _field(error, "message"))[:500])
    elif new_status in ("succeeded", "processing", "requires_action"):
        values.update(failure_code=None, failure_decline_code=None, failure_message=None)

    values["status"] = new_status
    guard: list[ColumnElement[bool]] = [Payment.status.not_in(TERMINAL_STATUSES)]
    if new_status == "succeeded":
        values["succeeded_at"] = utcnow()
    elif not own_confirm and new_status in ("requires_payment_method", "failed"):
        # A server-side confirm may be in flight (the row is claimed as processing while the
        # intent does not show it yet): keep the claim unless it is stale or its outcome was
        # lost.
        guard.append(or_(Payment.status != "processing", Payment.needs_reconcile.is_(True),
                         Payment.updated_at < utcnow() - CONFIRM_LEASE))
    matched = update_now(payment, *guard, **values)
    if not matched:
        db.session.refresh(payment)  # another caller moved it first: read what it wrote
    won_success = matched and new_status == "succeeded"
    if won_success:
        _after_success(payment, intent)
    elif payment.status == "succeeded" and payment.save_payment_method \
            and payment.payment_method_id is None:
        _save_card(payment, intent)  # a previous winner may have failed to save it
    return payment


def _after_success(payment: Payment, intent: Any) -> None:
    log.info("payment %s succeeded", payment.public_id)
    if payment.save_payment_method:
        _save_card(payment, intent)
    fulfilment.payment_succeeded(payment)


def _save_card(payment: Payment, intent: Any) -> None:
    """Keep the card the customer asked to save (Stripe attached it to their customer)."""
    pm = _field(intent, "payment_method")
    try:
        if isinstance(pm, str):
            pm = stripe_gateway.retrieve_payment_method(pm)
        if pm is None or _field(pm, "card") is None:
            return
        method = methods.upsert_payment_method(payment.user, pm)
    except Exception:  # the payment stands; the card can be saved again from the next sync
        db.session.rollback()
        log.exception("could not save the card of payment %s", payment.public_id)
        return
    db.session.execute(update(Payment).where(Payment.id == payment.id,
                                             Payment.payment_method_id.is_(None))
                       .values(payment_method_id=method.id))
    db.session.commit()
    db.session.refresh(payment)


def cancel_unfinished_payment(payment: Payment) -> Payment:
    """Cancel a payment nobody finished: its PaymentIntent at Stripe first, then the row.

    The row follows Stripe's answer, so it never reads canceled while its intent could still
    be paid. If Stripe refuses because the intent moved on (the customer paid at the last
    moment), the row takes the intent's real state instead. Safe to run twice.
    """
    if payment.stripe_payment_intent_id is None:
        if not payment.needs_reconcile:  # else reconcile first records what Stripe made
            update_now(payment, Payment.status.in_(UNFINISHED_STATUSES),
                       Payment.stripe_payment_intent_id.is_(None), status="canceled")
        return payment
    try:
        intent = stripe_gateway.cancel_payment_intent(
            payment.stripe_payment_intent_id, {"cancellation_reason": "abandoned"},
            idempotency_key=f"pi-cancel-{payment.public_id}")
    except stripe_gateway.GatewayInvalidRequest as error:
        log.info("payment %s not canceled (%s): following its intent", payment.public_id,
                 error.stripe_code)
        return sync_payment(payment)
    log.info("payment %s canceled: not completed in time", payment.public_id)
    return apply_payment_intent(intent) or payment


def unfinished_payments_due(now: datetime | None = None, *, limit: int = 500) -> list[int]:
    """Ids of payments to cancel now: unfinished past the TTL, or flagged for canceling."""
    now = now or utcnow()
    return list(db.session.scalars(
        select(Payment.id).where(
            Payment.status.in_(UNFINISHED_STATUSES),
            or_(Payment.cancel_requested.is_(True),
                Payment.created_at <= now - unfinished_payment_ttl()))
        .order_by(Payment.id).limit(limit)))


def sync_payment_intent(intent_id: str) -> Payment | None:
    """Re-fetch the intent from Stripe (the truth) and apply it; None if it is not ours."""
    return apply_payment_intent(stripe_gateway.retrieve_payment_intent(intent_id))


def sync_payment(payment: Payment) -> Payment:
    """The payment after re-reading its intent from Stripe (when it has one)."""
    if payment.stripe_payment_intent_id:
        synced = sync_payment_intent(payment.stripe_payment_intent_id)
        if synced is not None:
            return synced
    return payment


def unfinished_payment_ttl() -> timedelta:
    """How long a payment that was not completed can be tried again before it is canceled."""
    return timedelta(seconds=float(current_app.config.get("UNFINISHED_PAYMENT_TTL", 86400)))


def can_retry(payment: Payment, now: datetime | None = None) -> bool:
    """Whether the customer may still try to pay this payment again ("Try again")."""
    now = now or utcnow()
    return (payment.status in RETRYABLE_STATUSES and not payment.cancel_requested
            and payment.created_at > now - unfinished_payment_ttl())


# --- Reading payments ------------------------------------------------------------------------

def get_payment_for(user: User, public_id: str) -> Payment:
    """The payment if `user` owns it or is an admin; NotFound otherwise (never say which)."""
    payment = db.session.scalar(select(Payment).where(Payment.public_id == public_id)) \
        if isinstance(public_id, str) else None
    if payment is None or (payment.user_id != user.id and not user.is_admin):
        raise NotFound("No such payment.")
    return payment


def get_own_payment(user: User, public_id: str) -> Payment:
    """The payment only if `user` owns it (customer pages)."""
    payment = db.session.scalar(select(Payment).where(Payment.public_id == public_id,
                                                      Payment.user_id == user.id))
    if payment is None:
        raise NotFound("No such payment.")
    return payment


@dataclass
class HistoryPage:
    payments: list[Payment]
    next_cursor: str | None


def encode_cursor(payment: Payment) -> str:
    raw = f"{payment.created_at.isoformat()}|{payment.id}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, int]:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        created, _, row_id = base64.urlsafe_b64decode(padded.encode()).decode().partition("|")
        when = datetime.fromisoformat(created)
        if when.tzinfo is None:
            raise ValueError("naive timestamp")
        return when, int(row_id)
    except (ValueError, binascii.Error, UnicodeDecodeError) as error:
        raise InvalidRequest("The cursor is invalid.", param="cursor") from error


def parse_history_query(limit: str | None, cursor: str | None,
                        status: str | None) -> tuple[int, str | None, str | None]:
    """Validate ?limit=&cursor=&status= (400 with the param on anything unexpected)."""
    parsed_limit = HISTORY_DEFAULT_LIMIT
    if limit is not None:
        if not limit.isdigit() or not 1 <= int(limit) <= HISTORY_MAX_LIMIT:
            raise InvalidRequest(f"limit must be an integer from 1 to {HISTORY_MAX_LIMIT}.",
                                 param="limit")
        parsed_limit = int(limit)
    if status is not None and status not in PAYMENT_STATUSES:
        raise InvalidRequest("status must be one of " + ", ".join(PAYMENT_STATUSES) + ".",
                             param="status")
    if cursor is not None:
        decode_cursor(cursor)
    return parsed_limit, cursor or None, status or None


def payment_history(user: User, *, limit: int = HISTORY_DEFAULT_LIMIT,
                    cursor: str | None = None, status: str | None = None,
                    hide_canceled: bool = False) -> HistoryPage:
    """The user's payments, newest first, keyset-paginated on (created_at, id).

    `hide_canceled` (the account page's default view) leaves out canceled payments and the
    ones waiting to be canceled; asking for `status="canceled"` shows them.
    """
    query = select(Payment).where(Payment.user_id == user.id)
    if status:
        query = query.where(Payment.status == status)
    elif hide_canceled:
        query = query.where(Payment.status != "canceled", Payment.cancel_requested.is_(False))
    if cursor:
        created, row_id = decode_cursor(cursor)
        query = query.where(or_(Payment.created_at < created,
                                and_(Payment.created_at == created, Payment.id < row_id)))
    # Receipts in one query for the page (the serialized payment names its receipt): no N+1.
    rows = list(db.session.scalars(query.order_by(Payment.created_at.desc(), Payment.id.desc())
                                   .limit(limit + 1).options(selectinload(Payment.receipts))))
    next_cursor = encode_cursor(rows[limit - 1]) if len(rows) > limit else None
    return HistoryPage(rows[:limit], next_cursor)


@dataclass
class TimelineEntry:
    label: str
    at: datetime | None
    status: str


def payment_timeline(payment: Payment) -> list[TimelineEntry]:
    """What happened to a payment, in order, for its detail page."""
    entries = [TimelineEntry("Created", payment.created_at, "created")]
    if payment.status == "failed":
        entries.append(TimelineEntry("Payment failed: " + (payment.failure_message or ""),
                                     payment.updated_at, "failed"))
    elif payment.status == "requires_action":
        entries.append(TimelineEntry("Waiting for authentication", payment.updated_at,
                                     "requires_action"))
    elif payment.status == "processing":
        entries.append(TimelineEntry("Processing", payment.updated_at, "processing"))
    elif payment.status == "canceled":
        entries.append(TimelineEntry("Canceled", payment.updated_at, "canceled"))
    if payment.succeeded_at is not None:
        entries.append(TimelineEntry("Paid", payment.succeeded_at, "succeeded"))
    for refund in payment.refunds:
        entries.append(TimelineEntry(f"Refund {refund.status}", refund.created_at,
                                     refund.status))
    return entries
