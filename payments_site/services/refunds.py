"""Refunds: reserve what remains in one transaction, send to Stripe from the worker, follow Stripe.

The cap is enforced in the database: a request reserves its amount with a conditional UPDATE
(`refund_reserved + amount <= amount`), so concurrent requests on any node can never reserve
more than was captured. A refund then moves pending → succeeded | failed exactly once (a
conditional UPDATE on its status); after every move the payment's totals are recomputed from
its refund rows under the payment's row lock, so they always equal what Stripe says.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from payments_site import jobs, metrics, stripe_gateway
from payments_site.db import unit_of_work, update_now, update_rows
from payments_site.errors import InvalidRequest, NotFound, PaymentDisputed, RefundTooLarge
from payments_site.extensions import db
from payments_site.models import REFUND_REASONS, Payment, Refund, RefundReason, User, utcnow
from payments_site.money import InvalidAmount, require_amount_step
from payments_site.services import audit, fulfilment, payments
from payments_site.services.idempotency import key_token

log = logging.getLogger(__name__)

# Stripe refund statuses → ours. `requires_action` waits on the customer: still pending.
_LOCAL_STATUS = {"pending": "pending", "requires_action": "pending", "succeeded": "succeeded",
                 "failed": "failed", "canceled": "failed"}
# How long a pending refund may wait without a Stripe id before the sweeper resubmits it.
RESUBMIT_AFTER = timedelta(minutes=5)
_FORWARD = frozenset({("pending", "succeeded"), ("pending", "failed"), ("succeeded", "failed")})


@dataclass(frozen=True)
class RefundRequest:
    """A validated ask: the payment, the amount in its minor units (None = all that remains)."""

    payment: Payment
    amount: int | None
    reason: RefundReason | None


def refundable_amount(payment: Payment) -> int:
    """What can still be refunded: captured minus every pending or succeeded refund."""
    return payment.refundable_amount


def get_payment(public_id: str) -> Payment:
    """The payment with this public id (any customer's: refunds are for admins); 404."""
    payment = db.session.scalar(select(Payment).where(Payment.public_id == public_id))
    if payment is None:
        raise NotFound("No such payment.")
    return payment


def validate_refund_request(payment: Payment, amount: int | None, reason: RefundReason | None,
                            currency: str | None = None) -> RefundRequest:
    """Check the request against the payment as it is now (the reservation re-checks it).

    `amount` is in the payment's minor units (None: all that remains); `currency`, when
    given, must be the payment's.
    """
    if currency is not None and currency.lower() != payment.currency:
        raise InvalidRequest(f"This payment is in {payment.currency.upper()}; a refund is in "
                             "the payment's currency.", param="currency")
    if amount is not None:
        if amount <= 0:
            raise InvalidRequest("amount must be positive.", param="amount")
        try:
            # Stripe refuses e.g. 1.235 KWD; refused now, before a reservation or a row.
            require_amount_step(amount, payment.currency)
        except InvalidAmount as error:
            raise InvalidRequest(str(error), param="amount") from error
    if payment.status != "succeeded":
        raise InvalidRequest("Only a succeeded payment can be refunded.", param="payment_id")
    if payment.refund_blocked_by_dispute:
        raise PaymentDisputed(param="payment_id")
    remaining = refundable_amount(payment)
    if remaining <= 0:
        raise RefundTooLarge("Nothing remains to refund on this payment.", param="amount")
    if amount is not None and amount > remaining:
        raise RefundTooLarge(param="amount")
    return RefundRequest(payment=payment, amount=amount, reason=reason)


def request_refund(payment_public_id: str, amount: int | None = None,
                   reason: RefundReason | None = None, *, actor: User,
                   currency: str | None = None, request_key: str | None = None) -> Refund:
    """Validate, reserve and record a refund, then queue it for Stripe. 404/400 on bad asks.

    `request_key` is the request's Idempotency-Key (or the admin form's key). The refund it
    already made on this payment, if any, is returned as it is: the request runs again only
    when its first answer was lost (its process died after the refund was recorded), and
    nothing may be reserved or refunded twice for it.
    """
    payment = get_payment(payment_public_id)
    token = None if request_key is None else key_token("refund-request", actor.id, request_key)
    if token is not None:
        made = db.session.scalar(select(Refund).where(Refund.payment_id == payment.id,
                                                      Refund.request_token == token))
        if made is not None:
            return made  # queued with it; the sweeper resubmits it if it never reached Stripe
    return create_refund(validate_refund_request(payment, amount, reason, currency),
                         actor=actor, token=token)


def create_refund(ask: RefundRequest, *, actor: User, token: str | None = None) -> Refund:
    """Reserve the amount and insert the pending refund in ONE transaction, then enqueue it.

    The conditional UPDATE is the cap: whatever ran meanwhile, it only matches while the
    payment is succeeded and the new reservation still fits in the captured amount. The
    refund's `token` (`request_token`) is unique per payment, so one request cannot insert
    two.
    """
    payment = ask.payment
    amount = ask.amount
    if amount is None:
        # "All that remains", read fresh; a concurrent refund makes the UPDATE miss instead.
        fresh = db.session.execute(select(Payment.amount, Payment.refund_reserved)
                                   .where(Payment.id == payment.id)).one()
        amount = int(fresh.amount - fresh.refund_reserved)
        if amount <= 0:
            raise RefundTooLarge("Nothing remains to refund on this payment.", param="amount")
    refund: Refund | None = None
    with unit_of_work():
        if update_rows(Payment, Payment.id == payment.id, Payment.status == "succeeded",
                       Payment.refund_reserved + amount <= Payment.amount,
                       refund_reserved=Payment.refund_reserved + amount):
            refund = Refund(payment_id=payment.id, amount=amount, currency=payment.currency,
                            status="pending", reason=ask.reason, created_by_id=actor.id,
                            request_token=token)
            db.session.add(refund)
            db.session.flush()
            audit.record("refund.requested", actor=actor, payment=payment, refund=refund,
                         amount=amount, currency=payment.currency, reason=ask.reason,
                         refund_id=refund.public_id)
    if refund is None:
        # The reservation missed: the payment moved on, or the amount no longer fits.
        db.session.refresh(payment)
        if payment.status != "succeeded":
            raise InvalidRequest("Only a succeeded payment can be refunded.",
                                 param="payment_id")
        raise RefundTooLarge(param="amount")
    log.info("refund %s of %s %s requested on %s", refund.public_id, amount, payment.currency,
             payment.public_id)
    enqueue_submission(refund)
    return refund


def enqueue_submission(refund: Refund) -> bool:
    """Queue the Stripe call; if Redis is down the row stays pending for the sweeper."""
    return jobs.submit_refund(refund.id)


def resubmit_stale_refunds(older_than: timedelta = RESUBMIT_AFTER) -> int:
    """Re-queue pending refunds never sent to Stripe (Redis was down, retries ran out).

    Safe however often it runs: the Stripe idempotency key comes from the refund row.
    """
    stale = db.session.scalars(select(Refund).where(
        Refund.status == "pending", Refund.stripe_refund_id.is_(None),
        Refund.created_by_id.is_not(None), Refund.created_at <= utcnow() - older_than)).all()
    return sum(1 for refund in stale if enqueue_submission(refund))


# --- The worker: send to Stripe -------------------------------------------------------------

def submit_refund(refund_id: int) -> Refund | None:
    """Send a pending refund to Stripe (idempotent by the refund's own key) and apply the answer.

    Stripe refusing it (4xx) fails it and releases its reservation; Stripe being unavailable
    raises, so the job is retried with backoff while the row stays pending.
    """
    refund = db.session.get(Refund, refund_id)
    if refund is None or refund.status != "pending":
        return refund
    if refund.stripe_refund_id:
        # Sent before (a retried job): Stripe's current state is the answer.
        return sync_refund_from_stripe(stripe_gateway.retrieve_refund(refund.stripe_refund_id))
    payment = refund.payment
    if not payment.stripe_payment_intent_id:
        return fail_refund(refund, "The payment has no Stripe PaymentIntent to refund.")
    try:
        stripe_refund = stripe_gateway.refund_payment_intent(
            payment.stripe_payment_intent_id, refund.amount, refund.reason,
            metadata={"refund_id": refund.public_id, "payment_id": payment.public_id},
            idempotency_key=f"refund-{refund.public_id}")
    except stripe_gateway.GatewayInvalidRequest as error:
        if error.stripe_code == "charge_disputed":
            # Disputed after the reservation (its webhook not applied yet): nothing was
            # refunded, the reservation is released and the customer is told nothing.
            return fail_refund(refund, f"charge_disputed: {PaymentDisputed.message}")
        failed = fail_refund(refund, f"{error.stripe_code or 'invalid_request'}: "
                                     f"{error.message}")
        if error.stripe_code in ("amount_too_large", "charge_already_refunded"):
            # Stripe knows refunds we do not (made on its dashboard): learn them.
            sync_payment_refunds(payment)
        return failed
    return sync_refund_from_stripe(stripe_refund)


def fail_refund(refund: Refund, reason: str) -> Refund:
    """Mark a refund Stripe refused as failed and release its reservation (once)."""
    _transition(refund, "failed", failure_reason=reason[:500])
    db.session.refresh(refund)
    return refund


# --- Following Stripe (worker, webhooks, reconcile) -----------------------------------------

def sync_refund_from_stripe(stripe_refund: stripe_gateway.Refund) -> Refund | None:
    """Apply a Stripe Refund to our row; None if it belongs to no payment of ours.

    Finds the row by Stripe id, else by our `metadata.refund_id` (the webhook can beat the
    worker), else creates one for a refund made on Stripe's dashboard (created_by None).
    Safe to call any number of times, in any order; commits (like every refund service).
    """
    refund = _find_refund(stripe_refund) or _record_external_refund(stripe_refund)
    if refund is None:
        return None
    if refund.stripe_refund_id is None:
        update_now(refund, Refund.stripe_refund_id.is_(None),
                   stripe_refund_id=stripe_refund.id)
    status = _LOCAL_STATUS.get(stripe_refund.status or "", "pending")
    failure = stripe_refund.failure_reason
    _transition(refund, status, failure_reason=f"stripe: {failure}" if failure else None)
    db.session.refresh(refund)
    return refund


def sync_charge_refunds(charge_id: str) -> list[Refund]:
    """Re-fetch every refund of a charge from Stripe and apply each (reconcile, charge.refunded)."""
    return _sync_each(stripe_gateway.refunds_of_charge(charge_id))


def sync_payment_refunds(payment: Payment) -> list[Refund]:
    """Every refund Stripe has for this payment, applied locally (by charge or PaymentIntent)."""
    if payment.stripe_charge_id:
        return sync_charge_refunds(payment.stripe_charge_id)
    if not payment.stripe_payment_intent_id:
        return []
    return _sync_each(stripe_gateway.refunds_of_payment_intent(payment.stripe_payment_intent_id))


def _sync_each(stripe_refunds: list[stripe_gateway.Refund]) -> list[Refund]:
    synced = [sync_refund_from_stripe(stripe_refund) for stripe_refund in stripe_refunds]
    return [refund for refund in synced if refund is not None]


def _find_refund(stripe_refund: stripe_gateway.Refund) -> Refund | None:
    refund = db.session.scalar(select(Refund).where(
        Refund.stripe_refund_id == stripe_refund.id))
    if refund is None and stripe_refund.our_refund_id:
        refund = db.session.scalar(select(Refund).where(
            Refund.public_id == stripe_refund.our_refund_id,
            Refund.stripe_refund_id.is_(None)))
    return refund


def _record_external_refund(stripe_refund: stripe_gateway.Refund) -> Refund | None:
    """A refund made outside this site (Stripe's dashboard): record it, pending, to be applied."""
    payment = payments.find_payment_by_stripe_reference(stripe_refund.payment_intent_id,
                                                        stripe_refund.charge_id)
    if payment is None:
        log.info("refund %s is for no payment of ours; ignored", stripe_refund.id)
        return None
    amount = stripe_refund.amount
    if amount is None or amount <= 0:
        raise ValueError("Stripe refund without a positive amount")
    reason = stripe_refund.reason
    try:
        with unit_of_work():
            refund = Refund(payment_id=payment.id, amount=amount,
                            currency=(stripe_refund.currency or payment.currency).lower(),
                            status="pending", reason=reason if reason in REFUND_REASONS else None,
                            stripe_refund_id=stripe_refund.id, created_by_id=None)
            db.session.add(refund)
            db.session.flush()
            _recompute_totals(payment.id)
            audit.record("refund.recorded_from_stripe", actor=None, payment=payment,
                         refund=refund, amount=amount, currency=refund.currency,
                         stripe_refund_id=refund.stripe_refund_id)
    except IntegrityError:
        # Another delivery of the same refund recorded it first.
        return db.session.scalar(select(Refund).where(
            Refund.stripe_refund_id == stripe_refund.id))
    return refund


def _transition(refund: Refund, new_status: str, *, failure_reason: str | None = None) -> bool:
    """Move the refund to `new_status` once, with the payment's totals, in one transaction.

    States only move forward: pending → succeeded → failed (Stripe can fail a refund it had
    reported succeeded), pending → failed; failed is final.
    """
    db.session.refresh(refund)  # decide on the row as it is now, not as we loaded it
    old_status = refund.status
    if (old_status, new_status) not in _FORWARD:
        return False
    values: dict[str, object] = {"status": new_status, "updated_at": utcnow()}
    if new_status == "failed":
        values["failure_reason"] = failure_reason or "failed"
    with unit_of_work():
        moved = update_rows(Refund, Refund.id == refund.id, Refund.status == old_status,
                            **values) == 1
        if moved:
            _recompute_totals(refund.payment_id)
            audit.record(f"refund.{new_status}", actor=None, payment=refund.payment,
                         refund=refund, amount=refund.amount, currency=refund.currency,
                         refund_id=refund.public_id, previous_status=old_status,
                         **({"failure_reason": failure_reason} if new_status == "failed"
                            else {}))
    if not moved:
        return False  # someone else applied it first
    db.session.refresh(refund)
    log.info("refund %s %s → %s", refund.public_id, old_status, new_status)
    if new_status == "succeeded":
        metrics.refunded(refund.amount, refund.currency)
        fulfilment.refund_succeeded(refund)
    return True


def _recompute_totals(payment_id: int) -> None:
    """Set the payment's refunded/reserved totals from its refund rows, under its row lock
    (part of the caller's unit of work).

    The no-op UPDATE takes the row lock first (PostgreSQL row lock, SQLite write lock), so a
    concurrent reservation is either fully visible to the sums below or applied after us.
    """
    update_rows(Payment, Payment.id == payment_id, refund_reserved=Payment.refund_reserved)
    sums = dict(db.session.execute(
        select(Refund.status, func.coalesce(func.sum(Refund.amount), 0))
        .where(Refund.payment_id == payment_id, Refund.status.in_(("pending", "succeeded")))
        .group_by(Refund.status)).tuples().all())
    captured = db.session.scalar(select(Payment.amount).where(Payment.id == payment_id)) or 0
    refunded = int(sums.get("succeeded", 0))
    reserved = refunded + int(sums.get("pending", 0))
    if reserved > captured:
        # Only when Stripe took a dashboard refund while ours was pending: ours will fail
        # at Stripe and this heals on its transition; never reserve more than was captured.
        log.warning("payment %s: refunds reserve %s of %s; capped", payment_id, reserved,
                    captured)
    update_rows(Payment, Payment.id == payment_id, amount_refunded=min(refunded, captured),
                refund_reserved=min(reserved, captured))
