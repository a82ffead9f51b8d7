"""Checkout: one payment, and one PaymentIntent, per attempt to pay.

The rules (DESIGN.md, "one checkout attempt = one PaymentIntent, and an attempt starts at
Pay"): nothing is stored or sent to Stripe until the customer pays. Then the local payment
row is committed before Stripe is called and every Stripe idempotency key is derived from
it, so our retries, the SDK's and the customer's double clicks reach the same intent.

Which submits are the same attempt:
- The checkout page sends its attempt token (`checkout_attempt`), fresh at each rendering:
  every submit of that page for the same cart and card is one payment (double clicks,
  retries after a decline or a lost answer); buying again from a new page is a new payment.
- An API client's `Idempotency-Key` replays the stored answer (services/idempotency.py),
  and names the attempt when no token is sent (`key_attempt`): a request run again under
  the same key because its first run's answer was lost (the process died after Stripe
  acted) finds that payment, however long ago it was paid; a new key is a new purchase.
- Without either, a repeated submit of the same cart reuses the open payment, and a
  same-cart payment that succeeded moments ago is returned instead of charging again.
The customer's lock (`db.lock_customer`) serialises these lookups on PostgreSQL and SQLite
alike.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import MutableMapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, bindparam, select
from sqlalchemy.orm.attributes import set_committed_value

from payments_site import metrics, stripe_gateway, tracing
from payments_site.db import (
    insert_loaded,
    lock_customer,
    unit_of_work,
    update_after_failure,
    update_now,
)
from payments_site.errors import (
    CardDeclined,
    DomainError,
    InvalidRequest,
    NotFound,
    ProviderError,
    ProviderUnavailable,
)
from payments_site.extensions import db
from payments_site.models import Payment, PaymentItem, PaymentMethod, User, utcnow
from payments_site.services import cart as session_cart
from payments_site.services import payments as payments_service
from payments_site.services.customers import ensure_stripe_customer
from payments_site.services.idempotency import key_token
from payments_site.services.pricing import (
    PricedCart,
    cart_hash,
    price_items,
    same_items,
)

log = logging.getLogger(__name__)

# Without an attempt token or Idempotency-Key: an unfinished payment for the same cart is
# reused for this long (one attempt, one intent) ...
OPEN_PAYMENT_REUSE = timedelta(hours=1)
# ... and a same-cart payment that succeeded this recently is a double submit.
RECENT_SUCCESS_WINDOW = timedelta(seconds=60)
REUSABLE_STATUSES = ("requires_payment_method", "requires_action", "processing", "failed")
# The checkout page says so when the same cart was bought this recently.
RECENT_PURCHASE_WINDOW = timedelta(minutes=15)


# --- Processing a payment --------------------------------------------------------------------

@dataclass
class ProcessResult:
    payment: Payment
    client_secret: str | None
    requires_action: bool


class PaymentDeclined(CardDeclined):
    """The card was declined (402); the answer shows the payment, which records why."""

    def __init__(self, payment: Payment) -> None:
        super().__init__(payment.failure_message or "Your card was declined.",
                         decline_code=payment.failure_decline_code or payment.failure_code)
        self.payment = payment


def process_payment(user: User, items: list[tuple[int, int]],
                    payment_method_id: str | None = None, save_payment_method: bool = False,
                    checkout_attempt: str | None = None,
                    idempotency_key: str | None = None) -> ProcessResult:
    """The payment for this cart ([(product_id, quantity)]), charged at most once.

    With a saved card (its Stripe id) the server confirms now: `succeeded`,
    `requires_action` (the page runs Stripe.js handleNextAction) or PaymentDeclined (402)
    carrying the payment. Without one, the page confirms in the browser with the returned
    client secret. `checkout_attempt` is the checkout page's attempt token, if any; without
    one, the request's `idempotency_key` names the attempt.
    """
    named_by_key = False
    if checkout_attempt is None and idempotency_key is not None:
        checkout_attempt, named_by_key = key_attempt(user.id, idempotency_key), True
    cart = price_items(items)
    method = _saved_method(user, payment_method_id)
    stripe_pm_id = method.stripe_payment_method_id if method else None
    digest = cart_hash(user.id, items, stripe_pm_id)
    customer_id = ensure_stripe_customer(user)

    # This attempt's payment (or, without an attempt token, the open payment for this cart),
    # or a new one, decided under the customer's lock; recorded before Stripe hears of it.
    # The session holds exactly what was read or inserted, so nothing needs reloading.
    with unit_of_work(keep_loaded=True):
        lock_customer(user.id)
        payment = _same_attempt(user.id, digest, checkout_attempt)
        created = payment is None
        if payment is None:
            payment = _new_payment(user.id, cart, digest, method, save_payment_method,
                                   checkout_attempt)
    tracing.bind_payment(payment.public_id)
    if created:
        log.info("payment %s created for user %s: %s %s", payment.public_id, user.id,
                 cart.amount, cart.currency)
    if payment.status == "succeeded":
        return ProcessResult(payment, None, False)  # a double submit of a finished checkout
    if not created and checkout_attempt is not None:
        _check_attempt_still_payable(payment, cart, named_by_key)
    claimed = False
    if payment.stripe_payment_intent_id is None:
        if stripe_pm_id is None:
            intent = create_intent(payment, customer_id)
        else:
            intent, claimed = create_intent_claiming_confirm(payment, customer_id)
    else:
        # Re-read before any new attempt: Stripe is the truth (webhooks may lag, an earlier
        # call's outcome may be unknown).
        intent = stripe_gateway.retrieve_payment_intent(payment.stripe_payment_intent_id)
        payment = payments_service.apply_payment_intent(intent) or payment
        if payment.status in ("succeeded", "canceled"):
            return ProcessResult(payment, None, False)
    if stripe_pm_id is None:
        intent = _apply_save_choice(payment, intent, save_payment_method)
        return ProcessResult(payment, intent.client_secret, False)

    if claimed or payment.status in ("requires_payment_method", "failed"):
        # The payment's own intent (recorded above, or the one it already had).
        payment = _confirm_saved_card(payment, intent.id, stripe_pm_id, claimed=claimed)
    if payment.status == "failed":
        raise PaymentDeclined(payment)
    return ProcessResult(payment, intent.client_secret, payment.status == "requires_action")


_SAVED_METHOD = select(PaymentMethod).where(
    PaymentMethod.user_id == bindparam("user_id"),
    PaymentMethod.stripe_payment_method_id == bindparam("pm"))


def _saved_method(user: User, stripe_pm_id: str | None) -> PaymentMethod | None:
    if stripe_pm_id is None:
        return None
    method = db.session.scalar(_SAVED_METHOD, {"user_id": user.id, "pm": stripe_pm_id})
    if method is None:
        raise NotFound("No such payment method.", param="payment_method_id")
    return method


_payments = Payment.__table__.c
# The look-ups of `_same_attempt`, built once: the values travel as parameters, so each
# request reuses the compiled statement without walking a new one.
_BY_ATTEMPT = select(_payments.id).where(
    _payments.user_id == bindparam("user_id"), _payments.cart_hash == bindparam("digest"),
    _payments.checkout_attempt == bindparam("attempt"))
_OPEN_OR_JUST_PAID = select(_payments.id).where(
    _payments.user_id == bindparam("user_id"), _payments.cart_hash == bindparam("digest"),
    ((_payments.status.in_(REUSABLE_STATUSES)) & (_payments.created_at >= bindparam("open_since")))
    | ((_payments.status == "succeeded") & (_payments.succeeded_at >= bindparam("paid_since")))
).order_by(_payments.created_at.desc(), _payments.id.desc()).limit(1)


def _same_attempt(user_id: int, digest: str, attempt: str | None) -> Payment | None:
    """The payment an attempt to pay this cart must reuse, read as it is now (under the
    customer's lock), or None."""
    if attempt is not None:
        payment_id = db.session.scalar(_BY_ATTEMPT, {"user_id": user_id, "digest": digest,
                                                     "attempt": attempt})
    else:
        now = utcnow()
        payment_id = db.session.scalar(_OPEN_OR_JUST_PAID, {
            "user_id": user_id, "digest": digest, "open_since": now - OPEN_PAYMENT_REUSE,
            "paid_since": now - RECENT_SUCCESS_WINDOW})
    if payment_id is None:
        return None  # the usual case: one statement, no object loaded
    return db.session.get(Payment, payment_id, populate_existing=True)


def _new_payment(user_id: int, cart: PricedCart, digest: str, method: PaymentMethod | None,
                 save: bool, attempt: str | None) -> Payment:
    """A new payment for this cart, inserted in the open unit of work (not committed).

    It stays `needs_reconcile` until its intent's id is recorded: if this process or the
    database dies while Stripe creates the intent, `flask payments reconcile` repeats the
    create with the same key and records what Stripe made, so no intent stays unrecorded.
    """
    description = ", ".join(f"{line.quantity} × {line.product.name}" for line in cart.lines)
    # One INSERT for the payment and one for its items (no unit-of-work flush): the hot
    # path of every checkout. The objects come back loaded (column defaults included), as
    # a flush would leave them.
    [payment] = insert_loaded(Payment, [dict(
        user_id=user_id, status="requires_payment_method", amount=cart.amount,
        currency=cart.currency, cart_hash=digest, checkout_attempt=attempt,
        description=description[:500], payment_method_id=method.id if method else None,
        save_payment_method=save and method is None, needs_reconcile=True)])
    set_committed_value(payment, "items", insert_loaded(PaymentItem, [dict(
        payment_id=payment.id, product_id=line.product.id, name=line.product.name,
        quantity=line.quantity, unit_amount=line.product.unit_amount) for line in cart.lines]))
    # A new payment has none yet: known, so answering the request does not look them up.
    set_committed_value(payment, "receipts", [])
    set_committed_value(payment, "refunds", [])
    return payment


def _check_attempt_still_payable(payment: Payment, cart: PricedCart, named_by_key: bool
                                 ) -> None:
    """The page (or the API request) that made this attempt showed, or was answered, a
    total; never charge another one for it. An attempt named by an Idempotency-Key is told
    in the API's words: the key, not a page, is what the client renews."""
    if payment.status == "canceled":
        if named_by_key:
            raise InvalidRequest("The payment made with this Idempotency-Key has expired. "
                                 "Send a new key to pay.", param="Idempotency-Key")
        raise InvalidRequest("This checkout has expired. Reload the page to pay.",
                             param="checkout_attempt")
    if (payment.amount, payment.currency) != (cart.amount, cart.currency):
        if named_by_key:
            raise InvalidRequest("The prices of these items have changed since this "
                                 "Idempotency-Key was first used. Send a new key to pay the "
                                 "new total.", param="items")
        raise InvalidRequest("The prices in your cart have changed. Reload the page to see "
                             "the new total.", param="items")


def create_intent(payment: Payment, customer_id: str) -> stripe_gateway.Intent:
    """The payment's PaymentIntent, created once (the key is derived from our row); its id
    is committed before this returns, so before any further Stripe call."""
    intent = _create_intent_at_stripe(payment, customer_id)
    if not update_now(payment, Payment.stripe_payment_intent_id.is_(None),
                      stripe_payment_intent_id=intent.id, needs_reconcile=False):
        _check_recorded_first(payment, intent)
    return intent


def create_intent_claiming_confirm(payment: Payment, customer_id: str
                                   ) -> tuple[stripe_gateway.Intent, bool]:
    """`create_intent` for a saved-card payment: the conditional UPDATE that records the
    intent also claims the one confirm (as `_claim_confirm` would), so one write stands
    between the two Stripe calls instead of two. Returns (intent, whether this request holds
    the claim); when another request recorded the intent first, whether this one may still
    confirm is decided by `_claim_confirm`.
    """
    intent = _create_intent_at_stripe(payment, customer_id)
    unrecorded = Payment.stripe_payment_intent_id.is_(None)
    record = {"stripe_payment_intent_id": intent.id, "needs_reconcile": False}
    if update_now(payment, unrecorded, *_confirm_claim_criteria(payment), **record,
                  **_confirm_claim_values(payment)):
        return intent, True
    if not update_now(payment, unrecorded, **record):
        _check_recorded_first(payment, intent)
    return intent, False


def create_key(payment: Payment) -> str:
    """The Stripe idempotency key of the payment's current PaymentIntent create."""
    if payment.create_attempts == 0:
        return f"pi-create-{payment.public_id}"
    return f"pi-create-{payment.public_id}-{payment.create_attempts}"


def _create_metadata(payment: Payment) -> dict[str, str]:
    metadata = {"payment_id": payment.public_id, "user_id": str(payment.user_id)}
    if payment.create_attempts:
        # Names the create that made an intent, so only the current one is ever adopted.
        metadata["create_attempt"] = str(payment.create_attempts)
    return metadata


SAVED_FAILURE_MESSAGE = ("We could not start this payment, and nothing was charged. "
                         "Please try again.")


def _create_intent_at_stripe(payment: Payment, customer_id: str) -> stripe_gateway.Intent:
    try:
        return stripe_gateway.create_payment_intent(
            amount=payment.amount, currency=payment.currency, customer_id=customer_id,
            description=payment.description, metadata=_create_metadata(payment),
            save_card=payment.save_payment_method, idempotency_key=create_key(payment))
    except stripe_gateway.SavedFailure:
        # Stripe saved a 500 under this key: every retry with it replays that 500, so the
        # key is spent. The payment fails (the customer may try again: a new key) and stays
        # flagged until reconcile has canceled any intent the failed create left behind.
        update_after_failure(payment, Payment.stripe_payment_intent_id.is_(None),
                             Payment.create_attempts == payment.create_attempts,
                             create_attempts=payment.create_attempts + 1, status="failed",
                             failure_code="processing_error", failure_decline_code=None,
                             failure_message=SAVED_FAILURE_MESSAGE, needs_reconcile=True)
        log.warning("payment %s: Stripe saved a failure for its create; the next attempt "
                    "uses a new key", payment.public_id)
        metrics.checkout("failed", payment.currency)
        raise ProviderError(SAVED_FAILURE_MESSAGE) from None
    except (ProviderUnavailable, ProviderError):
        # The outcome is unknown (a 409 included: the create with this key still runs):
        # re-fetch with the SAME key (reconcile) before this payment is used again.
        metrics.checkout("failed", payment.currency)
        update_after_failure(payment, needs_reconcile=True)
        raise
    except DomainError:
        # Stripe refused the create outright (and keeps that answer under the key): nothing
        # was made, so there is nothing for reconcile to look for.
        update_after_failure(payment, Payment.stripe_payment_intent_id.is_(None),
                             needs_reconcile=False)
        raise


def _check_recorded_first(payment: Payment, intent: stripe_gateway.Intent) -> None:
    """Another request (or reconcile) recorded an intent first: it must be this one (same
    key)."""
    db.session.refresh(payment)
    if payment.stripe_payment_intent_id != intent.id:
        raise ProviderError()


def recover_lost_intent(payment: Payment) -> str:
    """Record the intent of a payment whose create answer was lost (retries exhausted).

    Repeating the create with the same idempotency key and parameters is Stripe's documented
    recovery: Stripe answers with the intent it made the first time (or makes it now, if the
    first request never arrived), so no intent stays unrecorded and none is made twice.
    """
    user = db.session.get_one(User, payment.user_id)
    return create_intent(payment, ensure_stripe_customer(user)).id


@dataclass(frozen=True)
class LeftoverIntents:
    """What reconcile did about the intents a spent create key may have left at Stripe."""

    canceled: list[str]
    not_cancelable: list[str]  # moved on (paid?): a person must look


def cancel_leftover_intents(payment: Payment) -> LeftoverIntents:
    """Cancel the intents made for this payment by creates whose key was spent (Stripe
    saved a failure for them): nobody was given their client secret, so none can be paid,
    and canceling them leaves nothing open at Stripe. Clears the payment's flag when done.
    """
    customer_id = payment.user.stripe_customer_id
    canceled: list[str] = []
    stuck: list[str] = []
    leftovers = [intent for intent in (stripe_gateway.payment_intents_of_customer(customer_id)
                                       if customer_id else [])
                 if intent.our_payment_id == payment.public_id
                 and intent.id != payment.stripe_payment_intent_id
                 and intent.our_create_attempt < payment.create_attempts]
    for intent in leftovers:
        if intent.status == "canceled":
            continue
        if intent.status in ("succeeded", "processing", "requires_capture"):
            stuck.append(intent.id)
            continue
        stripe_gateway.cancel_payment_intent(intent.id, reason="abandoned",
                                             idempotency_key=f"pi-cancel-{intent.id}")
        canceled.append(intent.id)
    if not stuck:
        update_now(payment, Payment.create_attempts == payment.create_attempts,
                   needs_reconcile=False)
    return LeftoverIntents(canceled, stuck)


def _apply_save_choice(payment: Payment, intent: stripe_gateway.Intent,
                       save: bool) -> stripe_gateway.Intent:
    """A new-card payment whose "save this card" box changed before the card was confirmed."""
    if payment.payment_method_id is not None or payment.save_payment_method == save or \
            intent.status not in ("requires_payment_method", "requires_confirmation"):
        return intent
    intent = stripe_gateway.set_intent_saves_card(intent.id, save)
    update_now(payment, save_payment_method=save)
    return intent


def _confirm_claim_criteria(payment: Payment) -> tuple[ColumnElement[bool], ...]:
    return (Payment.confirm_attempts == payment.confirm_attempts,
            Payment.status.in_(("requires_payment_method", "failed")))


def _confirm_claim_values(payment: Payment) -> dict[str, object]:
    return {"confirm_attempts": payment.confirm_attempts + 1, "status": "processing"}


def _claim_confirm(payment: Payment) -> bool:
    """A conditional UPDATE elects the one request that may confirm: it marks the row
    processing and counts the attempt, committed before the confirm call."""
    return update_now(payment, *_confirm_claim_criteria(payment),
                      **_confirm_claim_values(payment))


def _confirm_saved_card(payment: Payment, intent_id: str, stripe_pm_id: str, *,
                        claimed: bool) -> Payment:
    """Confirm with the saved card, once: only the request holding the confirm claim
    (taken here, or already with the intent's record) calls Stripe; the others report the
    current state."""
    if not claimed and not _claim_confirm(payment):
        db.session.refresh(payment)
        return payment
    attempt = payment.confirm_attempts  # the claim counted this attempt
    try:
        intent = stripe_gateway.confirm_payment_intent(
            intent_id, payment_method_id=stripe_pm_id,
            idempotency_key=f"pi-confirm-{payment.public_id}-{attempt}")
    except CardDeclined:
        # Stripe recorded the decline on the intent: re-read it so the row says why.
        intent = stripe_gateway.retrieve_payment_intent(intent_id)
    except (ProviderUnavailable, ProviderError):
        metrics.checkout("failed", payment.currency)
        update_after_failure(payment, needs_reconcile=True)
        raise
    except DomainError:
        # Refused outright: the claim ends, so the next attempt may confirm.
        update_after_failure(payment, Payment.status == "processing",
                             status="requires_payment_method")
        raise
    return payments_service.apply_confirm_outcome(payment, intent)


# --- The page Stripe returns to --------------------------------------------------------------

def complete_checkout(user: User, payment_public_id: str | None,
                      intent_id: str | None) -> Payment:
    """The payment named by ?payment= or ?payment_intent=, as Stripe sees it now.

    Works whether or not the webhook has arrived: the intent is re-read and applied.
    """
    payment = None
    if payment_public_id:
        payment = payments_service.get_own_payment(user, payment_public_id)
    elif intent_id:
        payment = db.session.scalar(select(Payment).where(
            Payment.stripe_payment_intent_id == intent_id, Payment.user_id == user.id))
    if payment is None:
        raise NotFound("No such payment.")
    if intent_id and payment.stripe_payment_intent_id != intent_id:
        raise NotFound("No such payment.")
    return payments_service.sync_payment(payment)


# --- The checkout page -------------------------------------------------------------------------

def new_checkout_attempt() -> str:
    """A fresh attempt token for one rendering of the checkout page."""
    return secrets.token_urlsafe(18)


def key_attempt(user_id: int, idempotency_key: str) -> str:
    """The attempt an API client's Idempotency-Key names: 64 hex digits (the column's
    size), never a page's token (those are 24 characters)."""
    return key_token("idempotency-key", user_id, idempotency_key)


@dataclass(frozen=True)
class PageAttempt:
    """What a rendering of the checkout page pays with: its attempt token, and the card to
    preselect when it resumes a payment that was not completed."""

    token: str
    resumed: Payment | None


def page_attempt(session: MutableMapping[str, Any], user: User,
                 items: list[tuple[int, int]]) -> PageAttempt:
    """A fresh attempt, unless this cart is the one of a payment the customer chose to try
    again: then that payment's own attempt, so paying completes it rather than adding one."""
    resume = session.get(session_cart.RESUME_KEY)
    if isinstance(resume, dict) and isinstance(resume.get("payment"), str):
        payment = db.session.scalar(select(Payment).where(
            Payment.public_id == resume["payment"], Payment.user_id == user.id))
        if payment is not None and payment.checkout_attempt and \
                payments_service.can_retry(payment) and \
                same_items([(i.product_id, i.quantity) for i in payment.items], items):
            return PageAttempt(payment.checkout_attempt, payment)
        session.pop(session_cart.RESUME_KEY, None)
    return PageAttempt(new_checkout_attempt(), None)


def resume_payment(session: MutableMapping[str, Any], user: User, public_id: str) -> Payment:
    """"Try again" on a payment that was not completed: its items become the cart, and the
    checkout page pays it with its own attempt (the same payment and PaymentIntent)."""
    payment = payments_service.get_own_payment(user, public_id)
    if not payments_service.can_retry(payment):
        raise InvalidRequest("This payment can no longer be completed. You can buy these "
                             "items again from the shop.", param="payment")
    if payment.checkout_attempt is None:
        # Made without an attempt token (an API client): give it one, once.
        token = new_checkout_attempt()
        if not update_now(payment, Payment.checkout_attempt.is_(None),
                          checkout_attempt=token):
            db.session.refresh(payment)
    session_cart.replace_cart(
        session, [(item.product_id, item.quantity) for item in payment.items], user.id)
    session[session_cart.RESUME_KEY] = {"payment": payment.public_id}
    return payment


def recent_purchase(user: User, items: list[tuple[int, int]],
                    now: datetime | None = None) -> Payment | None:
    """The customer's latest successful payment for exactly these items, if it is recent:
    the checkout page says so before they pay for the same cart again."""
    if not items:
        return None
    now = now or utcnow()
    candidates = db.session.scalars(
        select(Payment).where(Payment.user_id == user.id, Payment.status == "succeeded",
                              Payment.succeeded_at >= now - RECENT_PURCHASE_WINDOW)
        .order_by(Payment.succeeded_at.desc()).limit(10))
    for payment in candidates:
        if same_items([(item.product_id, item.quantity) for item in payment.items], items):
            return payment
    return None


def finish_checkout(session: MutableMapping[str, Any], payment: Payment) -> None:
    """After a successful payment: empty the cart (the next checkout is a new purchase)."""
    if payment.status in ("succeeded", "processing"):
        session_cart.clear_cart(session)
