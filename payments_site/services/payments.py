"""Payments follow their PaymentIntent: apply Stripe's state (forward only), history, lookups."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from flask import current_app
from sqlalchemy import ColumnElement, or_, select
from sqlalchemy.orm import selectinload

from payments_site import metrics, stripe_gateway, tracing
from payments_site.db import discard, update_now
from payments_site.errors import NotFound, ProviderError
from payments_site.extensions import db
from payments_site.models import TERMINAL_STATUSES, Payment, User, utcnow
from payments_site.services import fulfilment, methods, paging

log = logging.getLogger(__name__)

# While a server-side confirm is in flight the row says `processing` although the intent
# still says `requires_confirmation`; a re-fetch within this window must not undo the claim.
CONFIRM_LEASE = timedelta(minutes=2)
HISTORY_DEFAULT_LIMIT = 20
HISTORY_MAX_LIMIT = 100
# Started (the customer pressed Pay) but not finished: no card yet, or 3-D Secure pending.
UNFINISHED_STATUSES = ("requires_payment_method", "requires_action")
RETRYABLE_STATUSES = (*UNFINISHED_STATUSES, "failed")


def local_status(intent: stripe_gateway.Intent) -> str:
    """Our Payment status for a PaymentIntent status (API.md's six values)."""
    status = intent.status
    if status == "requires_payment_method":
        return "failed" if intent.last_payment_error else "requires_payment_method"
    if status == "requires_confirmation":
        return "requires_payment_method"
    if status == "requires_capture":
        return "processing"  # authorised, not yet captured: money is on its way
    if status in ("requires_action", "processing", "succeeded", "canceled"):
        return status
    log.warning("unknown PaymentIntent status %r", status)
    return "processing"


def _card_of(intent: stripe_gateway.Intent) -> stripe_gateway.Card | None:
    """The intent's card, else its latest charge's, else the card of its last failure."""
    error = intent.last_payment_error
    candidates = (intent.payment_method.card if intent.payment_method else None,
                  intent.charge_card, error.card if error else None)
    return next((card for card in candidates if card is not None and card.last4), None)


def find_payment_by_stripe_reference(intent_id: str | None,
                                     charge_id: str | None) -> Payment | None:
    """Our payment that a Stripe object (a refund, a dispute, a charge) is about: by its
    PaymentIntent, else by its charge."""
    if intent_id:
        payment = db.session.scalar(select(Payment).where(
            Payment.stripe_payment_intent_id == intent_id))
        if payment is not None:
            return payment
    if charge_id:
        return db.session.scalar(select(Payment).where(Payment.stripe_charge_id == charge_id))
    return None


def find_payment_for_intent(intent: stripe_gateway.Intent) -> Payment | None:
    """The intent's payment; one whose intent id was never stored is found by the id our
    metadata gave the intent, and the id is recorded."""
    payment = find_payment_by_stripe_reference(intent.id, None)
    if payment is not None or not intent.our_payment_id:
        return payment
    # The intent was created but we never stored its id (crash, retries exhausted): our own
    # id in its metadata links it back.
    payment = db.session.scalar(select(Payment).where(
        Payment.public_id == intent.our_payment_id))
    if payment is None or intent.our_create_attempt != payment.create_attempts:
        # Made by a create whose key was spent (Stripe saved a failure for it): reconcile
        # cancels it; the payment follows only the intent of its current create.
        return None
    if payment.stripe_payment_intent_id is None:
        if not update_now(payment, Payment.stripe_payment_intent_id.is_(None),
                          stripe_payment_intent_id=intent.id):
            db.session.refresh(payment)
        return payment
    return payment if payment.stripe_payment_intent_id == intent.id else None


def apply_payment_intent(intent: stripe_gateway.Intent) -> Payment | None:
    """Bring the local payment in line with this PaymentIntent; None if it is not ours.

    Status only moves forward: once succeeded or canceled nothing changes it back, however
    old or replayed the intent is. The first caller to move a payment to succeeded (one
    conditional UPDATE decides) stamps `succeeded_at`, saves the card when asked and starts
    fulfilment; every other caller finds the work done. Committed on return.

    A server-side confirm may be in flight (its request claimed the row as processing while
    the intent does not show it yet): an unconfirmed state leaves that claim alone unless it
    is stale or its outcome was lost.
    """
    payment = find_payment_for_intent(intent)
    if payment is None:
        return None
    guard: list[ColumnElement[bool]] = [Payment.status.not_in(TERMINAL_STATUSES)]
    if local_status(intent) in ("requires_payment_method", "failed"):
        guard.append(or_(Payment.status != "processing", Payment.needs_reconcile.is_(True),
                         Payment.updated_at < utcnow() - CONFIRM_LEASE))
    return _follow_intent(payment, intent, guard)


def apply_confirm_outcome(payment: Payment, intent: stripe_gateway.Intent) -> Payment:
    """What the request holding the confirm claim learned from its confirm, applied to its
    own payment: it may end the claim with any state, confirmed or not."""
    return _follow_intent(payment, intent, [Payment.status.not_in(TERMINAL_STATUSES)])


def _follow_intent(payment: Payment, intent: stripe_gateway.Intent,
                   guard: list[ColumnElement[bool]]) -> Payment:
    """The payment moved to the intent's state by one conditional UPDATE (committed on
    return). Afterwards it reads as the row does: it takes the written values, or is
    refreshed when the guard matched nothing (another caller got there first)."""
    values = _intent_values(intent)
    tracing.bind_payment(payment.public_id)
    previous = payment.status
    matched = update_now(payment, *guard, **values)
    if not matched:
        db.session.refresh(payment)  # another caller moved it first: read what it wrote
    elif values["status"] != previous:
        _count_outcome(payment, str(values["status"]), intent)
    if matched and values["status"] == "succeeded":
        log.info("payment %s succeeded", payment.public_id)
        if payment.save_payment_method:
            _save_card(payment, intent)
        fulfilment.payment_succeeded(payment)
    elif payment.status == "succeeded" and payment.save_payment_method \
            and payment.payment_method_id is None:
        _save_card(payment, intent)  # a previous winner may have failed to save it
    return payment


# A failure with one of these codes (or any decline code) is the card's bank saying no.
_DECLINE_CODES = frozenset({"card_declined", "expired_card", "incorrect_cvc",
                            "incorrect_number", "insufficient_funds", "invalid_cvc",
                            "invalid_expiry_month", "invalid_expiry_year", "lost_card",
                            "stolen_card"})


def _count_outcome(payment: Payment, status: str, intent: stripe_gateway.Intent) -> None:
    """Count a checkout that reached an outcome (payments_site.metrics), once per move."""
    if status == "failed":
        error = intent.last_payment_error
        declined = error is not None and (error.decline_code is not None
                                          or error.code in _DECLINE_CODES)
        metrics.checkout("declined" if declined else "failed", payment.currency)
    elif status in ("succeeded", "requires_action", "canceled"):
        metrics.checkout(status, payment.currency)
        if status == "succeeded":
            metrics.captured(payment.amount, payment.currency)


def _intent_values(intent: stripe_gateway.Intent) -> dict[str, object]:
    """The payment's columns as this intent says they are."""
    new_status = local_status(intent)
    values: dict[str, object] = {"status": new_status, "needs_reconcile": False}
    if intent.latest_charge_id and new_status == "succeeded":
        values["stripe_charge_id"] = intent.latest_charge_id
    card = _card_of(intent)
    if card is not None:
        values.update(card_brand=card.brand, card_last4=card.last4)
    if intent.outcome is not None:
        # Radar's verdict on the latest charge, for the admin pages.
        values.update(outcome_type=(intent.outcome.type or "")[:32] or None,
                      risk_level=(intent.outcome.risk_level or "")[:16] or None,
                      risk_score=intent.outcome.risk_score)
    error = intent.last_payment_error
    if error:
        values.update(failure_code=(error.code or "card_declined")[:64],
                      failure_decline_code=error.decline_code[:64] if error.decline_code
                      else None,
                      failure_message=stripe_gateway.friendly_decline_message(
                          error.code, error.decline_code, error.message)[:500])
    elif new_status in ("succeeded", "processing", "requires_action"):
        values.update(failure_code=None, failure_decline_code=None, failure_message=None)
    if new_status == "succeeded":
        values["succeeded_at"] = utcnow()
    return values


def _save_card(payment: Payment, intent: stripe_gateway.Intent) -> None:
    """Keep the card the customer asked to save (Stripe attached it to their customer)."""
    pm = intent.payment_method
    try:
        if pm is None and intent.payment_method_id is not None:
            pm = stripe_gateway.retrieve_payment_method(intent.payment_method_id)
        if pm is None or pm.card is None:
            return
        method = methods.upsert_payment_method(payment.user, pm)
    except Exception:  # the payment stands; the card can be saved again from the next sync
        discard()
        log.exception("could not save the card of payment %s", payment.public_id)
        return
    if not update_now(payment, Payment.payment_method_id.is_(None),
                      payment_method_id=method.id):
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
            payment.stripe_payment_intent_id, reason="abandoned",
            idempotency_key=f"pi-cancel-{payment.public_id}")
    except stripe_gateway.GatewayInvalidRequest as error:
        log.info("payment %s not canceled (%s): following its intent", payment.public_id,
                 error.stripe_code)
        return sync_payment(payment)
    except ProviderError:
        # An error answer Stripe saved under this key is replayed for a day, whether or not
        # the cancel took effect: the intent itself says which.
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
    payment = db.session.scalar(select(Payment).where(Payment.public_id == public_id))
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


def payment_history(user: User, *, limit: int = HISTORY_DEFAULT_LIMIT,
                    cursor: str | None = None,
                    status: str | tuple[str, ...] | None = None,
                    hide_canceled: bool = False) -> HistoryPage:
    """The user's payments, newest first, keyset-paginated on (created_at, id); `status`
    keeps those with that status (or any of those statuses). A `cursor` that does not decode
    (an empty one included) is a 400 naming `cursor`.

    `hide_canceled` (the account page's default view) leaves out canceled payments and the
    ones waiting to be canceled; asking for `status="canceled"` shows them.
    """
    query = select(Payment).where(Payment.user_id == user.id)
    if status:
        query = query.where(Payment.status.in_((status,) if isinstance(status, str) else status))
    elif hide_canceled:
        query = query.where(Payment.status != "canceled", Payment.cancel_requested.is_(False))
    if cursor is not None:
        query = query.where(paging.older_than(paging.decode_cursor(cursor, param="cursor")))
    # Receipts in one query for the page (the serialized payment names its receipt): no N+1.
    rows = list(db.session.scalars(query.order_by(Payment.created_at.desc(), Payment.id.desc())
                                   .limit(limit + 1).options(selectinload(Payment.receipts))))
    next_cursor = paging.encode_cursor(rows[limit - 1]) if len(rows) > limit else None
    return HistoryPage(rows[:limit], next_cursor)
