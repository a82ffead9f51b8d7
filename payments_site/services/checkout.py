"""Checkout: the session cart, pricing from the catalog, and one PaymentIntent per attempt.

The rules (DESIGN.md, "one checkout attempt = one PaymentIntent"): the local payment row is
committed before Stripe is called and every Stripe idempotency key is derived from it, so our
retries, the SDK's and the customer's double clicks reach the same intent. Without a client
Idempotency-Key, a repeated submit of the same cart reuses the open payment (a per-user row
lock serialises the lookup on PostgreSQL and SQLite alike), and a same-cart payment that
succeeded moments ago is returned instead of charging again.
"""

from __future__ import annotations

import hashlib
import json
import logging
import secrets
from collections.abc import MutableMapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import ColumnElement, select, update

from payments_site import stripe_gateway
from payments_site.errors import (
    CardDeclined,
    DomainError,
    InvalidRequest,
    NotFound,
    ProviderError,
    ProviderUnavailable,
)
from payments_site.extensions import db
from payments_site.models import (
    Payment,
    PaymentItem,
    PaymentMethod,
    Product,
    User,
    commit_keeping_loaded,
    update_now,
    utcnow,
)
from payments_site.money import (
    MAXIMUM_CHARGE,
    InvalidAmount,
    format_money,
    minimum_charge,
    require_amount_step,
)
from payments_site.serializers import payment_to_dict
from payments_site.services import payments as payments_service
from payments_site.services.customers import ensure_stripe_customer

log = logging.getLogger(__name__)

MAX_QUANTITY = 99
MAX_LINES = 50
# An unfinished payment for the same cart is reused for this long (one attempt, one intent).
OPEN_PAYMENT_REUSE = timedelta(hours=1)
# A same-cart payment that succeeded this recently is a double submit, not a new purchase.
RECENT_SUCCESS_WINDOW = timedelta(seconds=60)
REUSABLE_STATUSES = ("requires_payment_method", "requires_action", "processing", "failed")
CART_SESSION_KEY = "cart"


# --- Pricing ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class CartLine:
    product: Product
    quantity: int

    @property
    def total(self) -> int:
        return self.product.unit_amount * self.quantity


@dataclass(frozen=True)
class PricedCart:
    lines: list[CartLine]
    currency: str
    amount: int

    def as_items(self) -> list[tuple[int, int]]:
        return [(line.product.id, line.quantity) for line in self.lines]


def _quantity(value: Any, param: str) -> int:
    # JSON integers only: 1.5, "1e3", true and 10**9 are all refused, never coerced.
    if isinstance(value, bool) or not isinstance(value, int) or \
            not 1 <= value <= MAX_QUANTITY:
        raise InvalidRequest(f"quantity must be a whole number from 1 to {MAX_QUANTITY}.",
                             param=param)
    return value


def parse_items(raw: Any) -> list[tuple[int, int]]:
    """[(product_id, quantity)] from the request's `items` (400 with the param when wrong)."""
    if not isinstance(raw, list) or not raw:
        raise InvalidRequest("items must be a non-empty list.", param="items")
    if len(raw) > MAX_LINES:
        raise InvalidRequest(f"A cart holds at most {MAX_LINES} different products.",
                             param="items")
    items: list[tuple[int, int]] = []
    seen: set[int] = set()
    for index, entry in enumerate(raw):
        if not isinstance(entry, dict):
            raise InvalidRequest("Each item must be an object.", param=f"items[{index}]")
        product_id = entry.get("product_id")
        if isinstance(product_id, bool) or not isinstance(product_id, int) or product_id < 1:
            raise InvalidRequest("product_id must be a product id.",
                                 param=f"items[{index}].product_id")
        if product_id in seen:
            raise InvalidRequest("Each product may appear once; set its quantity instead.",
                                 param=f"items[{index}].product_id")
        seen.add(product_id)
        items.append((product_id, _quantity(entry.get("quantity"),
                                            f"items[{index}].quantity")))
    return items


def price_items(items: list[tuple[int, int]]) -> PricedCart:
    """The cart priced from the catalog (the only source of amounts), in one currency."""
    lines: list[CartLine] = []
    # One query for the whole cart, not one per line.
    found = {product.id: product for product in db.session.scalars(
        select(Product).where(Product.id.in_([product_id for product_id, _ in items])))}
    for index, (product_id, quantity) in enumerate(items):
        product = found.get(product_id)
        if product is None or not product.active:
            raise InvalidRequest("This product is not available.",
                                 param=f"items[{index}].product_id")
        lines.append(CartLine(product, quantity))
    currencies = {line.product.currency for line in lines}
    if len(currencies) != 1:
        raise InvalidRequest("All items in one payment must share one currency.",
                             param="items")
    currency = currencies.pop()
    amount = sum(line.total for line in lines)
    problem = total_problem(amount, currency)
    if problem:
        raise InvalidRequest(problem, param="items")
    return PricedCart(lines, currency, amount)


def total_problem(amount: int, currency: str) -> str | None:
    """Why Stripe would refuse to charge this total, or None (checked before any row exists)."""
    if amount < minimum_charge(currency):
        return ("The total is below the minimum charge of "
                f"{format_money(minimum_charge(currency), currency)}.")
    if amount > MAXIMUM_CHARGE:
        return "The total is above the maximum for one payment."
    try:
        # A product priced before the rule was enforced at creation could still break it.
        require_amount_step(amount, currency)
    except InvalidAmount as error:
        return f"This total cannot be charged: {error}"
    return None


def cart_hash(user: User, items: list[tuple[int, int]], payment_method_id: str | None) -> str:
    canonical = json.dumps({"user": user.id, "items": sorted(items),
                            "payment_method": payment_method_id or ""}, sort_keys=True)
    return hashlib.sha256(canonical.encode()).hexdigest()


# --- The session cart ------------------------------------------------------------------------

def session_cart(session: MutableMapping[str, Any]) -> dict[int, int]:
    raw = session.get(CART_SESSION_KEY) or {}
    cart: dict[int, int] = {}
    if isinstance(raw, dict):
        for key, value in raw.items():
            if str(key).isdigit() and isinstance(value, int) and 1 <= value <= MAX_QUANTITY:
                cart[int(key)] = value
    return cart


def _store_cart(session: MutableMapping[str, Any], cart: dict[int, int]) -> None:
    session[CART_SESSION_KEY] = {str(k): v for k, v in cart.items()}


def parse_form_quantity(raw: str | None, *, allow_zero: bool = False) -> int:
    text = (raw or "1").strip()
    if not text.isdigit() or not (0 if allow_zero else 1) <= int(text) <= MAX_QUANTITY:
        raise InvalidRequest(f"Choose a quantity from 1 to {MAX_QUANTITY}.", param="quantity")
    return int(text)


def add_to_cart(session: MutableMapping[str, Any], product_id: int, quantity: int) -> Product:
    """Add a product; the cart stays in one currency and each line at most 99."""
    product = db.session.get(Product, product_id)
    if product is None or not product.active:
        raise NotFound("No such product.")
    cart = session_cart(session)
    for other_id in cart:
        other = db.session.get(Product, other_id)
        if other is not None and other.currency != product.currency:
            raise InvalidRequest("Your cart is in another currency. Check out first, or "
                                 "remove those items.", param="product_id")
    cart[product.id] = min(cart.get(product.id, 0) + quantity, MAX_QUANTITY)
    _store_cart(session, cart)
    return product


def set_cart_quantity(session: MutableMapping[str, Any], product_id: int,
                      quantity: int) -> None:
    """Set a line's quantity; 0 removes it."""
    cart = session_cart(session)
    if quantity <= 0:
        cart.pop(product_id, None)
    elif product_id in cart:
        cart[product_id] = min(quantity, MAX_QUANTITY)
    _store_cart(session, cart)


def clear_cart(session: MutableMapping[str, Any]) -> None:
    session.pop(CART_SESSION_KEY, None)


def priced_session_cart(session: MutableMapping[str, Any]) -> tuple[list[CartLine], str | None]:
    """The cart's lines with catalog prices (unavailable products dropped) and its currency."""
    cart = session_cart(session)
    lines = []
    for product_id, quantity in cart.items():
        product = db.session.get(Product, product_id)
        if product is not None and product.active:
            lines.append(CartLine(product, quantity))
    if len(lines) != len(cart):
        _store_cart(session, {line.product.id: line.quantity for line in lines})
    currency = lines[0].product.currency if lines else None
    return lines, currency


def checkout_summary(session: MutableMapping[str, Any]) -> dict[str, Any]:
    lines, currency = priced_session_cart(session)
    total = sum(line.total for line in lines)
    problem = None
    if lines and len({line.product.currency for line in lines}) > 1:
        problem = "All items in one payment must share one currency."
    elif lines and currency:
        problem = total_problem(total, currency)
    return {"lines": lines, "currency": currency, "total": total, "problem": problem}


# --- Processing a payment --------------------------------------------------------------------

@dataclass
class ProcessResult:
    payment: Payment
    client_secret: str | None
    requires_action: bool

    def to_dict(self) -> dict[str, Any]:
        return {"payment": payment_to_dict(self.payment), "client_secret": self.client_secret,
                "requires_action": self.requires_action}


def _saved_method(user: User, stripe_pm_id: Any) -> PaymentMethod | None:
    if stripe_pm_id is None:
        return None
    if not isinstance(stripe_pm_id, str) or not stripe_pm_id:
        raise InvalidRequest("payment_method_id must be a saved card's id.",
                             param="payment_method_id")
    method = db.session.scalar(select(PaymentMethod).where(
        PaymentMethod.user_id == user.id,
        PaymentMethod.stripe_payment_method_id == stripe_pm_id))
    if method is None:
        raise NotFound("No such payment method.", param="payment_method_id")
    return method


def _claim_payment(user: User, cart: PricedCart, digest: str, method: PaymentMethod | None,
                   save: bool) -> Payment:
    """The open payment for this cart, or a new one, decided under a per-user row lock.

    The lock is the user's row: `SELECT … FOR UPDATE` on PostgreSQL (a row lock that writes
    no new row version), a no-op UPDATE on SQLite (which has no FOR UPDATE; it takes the
    database write lock); either way concurrent submits take turns here, and each sees the
    row the previous one committed.
    """
    user_id = user.id
    method_id = method.id if method else None
    description = ", ".join(f"{line.quantity} × {line.product.name}" for line in cart.lines)
    item_values = [{"product_id": line.product.id, "name": line.product.name,
                    "quantity": line.quantity, "unit_amount": line.product.unit_amount}
                   for line in cart.lines]
    if db.session.get_bind().dialect.name == "postgresql":
        # FOR NO KEY UPDATE: the lock the no-op UPDATE took, so inserts that reference the
        # user (FOR KEY SHARE) are not blocked by it. The open transaction has only read so
        # far, and under READ COMMITTED every statement after the lock sees what the
        # previous holder committed: no need to start a new transaction first.
        db.session.execute(select(User.id).where(User.id == user_id)
                           .with_for_update(key_share=True))
    else:
        # SQLite: a transaction that has read cannot take the write lock once another
        # writer committed, so start a fresh one whose first statement takes the lock.
        commit_keeping_loaded(db.session())
        db.session.execute(update(User).where(User.id == user_id).values(id=User.id))
    now = utcnow()
    recent = db.session.scalar(
        select(Payment).where(Payment.user_id == user_id, Payment.cart_hash == digest,
                              ((Payment.status.in_(REUSABLE_STATUSES))
                               & (Payment.created_at >= now - OPEN_PAYMENT_REUSE))
                              | ((Payment.status == "succeeded")
                                 & (Payment.succeeded_at >= now - RECENT_SUCCESS_WINDOW)))
        .order_by(Payment.created_at.desc(), Payment.id.desc()).limit(1))
    if recent is not None:
        commit_keeping_loaded(db.session())  # read under the lock just now
        return recent
    # needs_reconcile until the intent's id is recorded: if this process or the database dies
    # while Stripe creates the intent, `flask payments reconcile` repeats the create with the
    # same key and records what Stripe made, so no intent stays unrecorded.
    payment = Payment(user_id=user_id, status="requires_payment_method", amount=cart.amount,
                      currency=cart.currency, cart_hash=digest, description=description[:500],
                      payment_method_id=method_id, save_payment_method=save and method is None,
                      needs_reconcile=True)
    payment.items = [PaymentItem(**values) for values in item_values]
    # A new payment has none yet: known, so answering the request does not look them up.
    payment.receipts, payment.refunds = [], []
    db.session.add(payment)
    db.session.flush()
    # Recorded before Stripe hears of it. The session holds exactly what was inserted.
    commit_keeping_loaded(db.session())
    log.info("payment %s created for user %s: %s %s", payment.public_id, user_id, cart.amount,
             cart.currency)
    return payment


def _mark_unknown(payment: Payment) -> None:
    """A Stripe call's outcome is unknown: re-fetch before this payment is used again."""
    db.session.rollback()
    db.session.execute(update(Payment).where(Payment.id == payment.id)
                       .values(needs_reconcile=True, updated_at=utcnow()))
    db.session.commit()


def _clear_unknown(payment: Payment) -> None:
    db.session.rollback()
    db.session.execute(update(Payment).where(Payment.id == payment.id,
                                             Payment.stripe_payment_intent_id.is_(None))
                       .values(needs_reconcile=False, updated_at=utcnow()))
    db.session.commit()


def _ensure_intent(payment: Payment, customer_id: str, *,
                   claim_confirm: bool = False) -> tuple[Any, bool]:
    """The payment's PaymentIntent, created once (the key is derived from our row); its id
    is committed before this returns, so before any further Stripe call.

    With `claim_confirm`, the same conditional UPDATE that records the intent also claims
    the one confirm of a saved card (as `_claim_confirm` would): one write between the two
    Stripe calls instead of two. Returns (intent, whether this request holds that claim).
    """
    params: stripe_gateway.PaymentIntentCreateParams = {
        "amount": payment.amount, "currency": payment.currency, "customer": customer_id,
        # No redirect-based methods, so a server-side confirm with a saved card needs no
        # return_url (3-D Secure still runs through Stripe.js).
        "automatic_payment_methods": {"enabled": True, "allow_redirects": "never"},
        "description": payment.description,
        "metadata": {"payment_id": payment.public_id, "user_id": str(payment.user_id)},
    }
    if payment.save_payment_method:
        params["setup_future_usage"] = "off_session"
    try:
        intent = stripe_gateway.create_payment_intent(
            params, idempotency_key=f"pi-create-{payment.public_id}")
    except (ProviderUnavailable, ProviderError):
        _mark_unknown(payment)
        raise
    except DomainError:
        # Stripe refused the create outright (and keeps that answer under the key): nothing
        # was made, so there is nothing for reconcile to look for.
        _clear_unknown(payment)
        raise
    unrecorded = Payment.stripe_payment_intent_id.is_(None)
    record = {"stripe_payment_intent_id": intent.id, "needs_reconcile": False}
    if claim_confirm and update_now(db.session(), payment, unrecorded,
                                    *_confirm_claim_criteria(payment), **record,
                                    **_confirm_claim_values(payment)):
        return intent, True
    if update_now(db.session(), payment, unrecorded, **record):
        return intent, False
    # Another request (or reconcile) recorded an intent first: it must be this one (same
    # key). Whether this request may still confirm is then decided by `_claim_confirm`.
    db.session.refresh(payment)
    if payment.stripe_payment_intent_id != intent.id:
        raise ProviderError()
    return intent, False


def recover_lost_intent(payment: Payment) -> str:
    """Record the intent of a payment whose create answer was lost (retries exhausted).

    Repeating the create with the same idempotency key and parameters is Stripe's documented
    recovery: Stripe answers with the intent it made the first time (or makes it now, if the
    first request never arrived), so no intent stays unrecorded and none is made twice.
    """
    user = db.session.get_one(User, payment.user_id)
    intent, _ = _ensure_intent(payment, ensure_stripe_customer(user))
    return str(intent.id)


def _apply_save_choice(payment: Payment, intent: Any, save: bool) -> Any:
    """A new-card payment whose "save this card" box changed before the card was confirmed."""
    if payment.payment_method_id is not None or payment.save_payment_method == save or \
            intent.status not in ("requires_payment_method", "requires_confirmation"):
        return intent
    intent = stripe_gateway.update_payment_intent(
        intent.id, {"setup_future_usage": "off_session" if save else ""})
    db.session.execute(update(Payment).where(Payment.id == payment.id)
                       .values(save_payment_method=save))
    db.session.commit()
    db.session.refresh(payment)
    return intent


def _confirm_claim_criteria(payment: Payment) -> tuple[ColumnElement[bool], ...]:
    return (Payment.confirm_attempts == payment.confirm_attempts,
            Payment.status.in_(("requires_payment_method", "failed")))


def _confirm_claim_values(payment: Payment) -> dict[str, Any]:
    return {"confirm_attempts": payment.confirm_attempts + 1, "status": "processing"}


def _claim_confirm(payment: Payment) -> bool:
    """A conditional UPDATE elects the one request that may confirm: it marks the row
    processing and counts the attempt, committed before the confirm call."""
    return update_now(db.session(), payment, *_confirm_claim_criteria(payment),
                      **_confirm_claim_values(payment))


def _confirm_saved_card(payment: Payment, intent_id: str, stripe_pm_id: str, *,
                        claimed: bool = False) -> Payment:
    """Confirm with the saved card, once: only the request holding the confirm claim
    (taken here, or already by `_ensure_intent`) calls Stripe; the others report the
    current state."""
    if not claimed and not _claim_confirm(payment):
        db.session.refresh(payment)
        return payment
    attempt = payment.confirm_attempts  # the claim counted this attempt
    try:
        # Expanded in the answer: no second call to read the card and charge.
        intent = stripe_gateway.confirm_payment_intent(
            intent_id, {"payment_method": stripe_pm_id,
                        "expand": ["latest_charge", "payment_method"]},
            idempotency_key=f"pi-confirm-{payment.public_id}-{attempt}")
    except CardDeclined:
        # Stripe recorded the decline on the intent: re-read it so the row says why.
        intent = stripe_gateway.retrieve_payment_intent(intent_id)
    except (ProviderUnavailable, ProviderError):
        _mark_unknown(payment)
        raise
    except DomainError:
        _release_claim(payment)
        raise
    return payments_service.apply_intent_state(intent, own_confirm=True,
                                               payment=payment) or payment


def _release_claim(payment: Payment) -> None:
    db.session.rollback()
    db.session.execute(update(Payment).where(Payment.id == payment.id,
                                             Payment.status == "processing")
                       .values(status="requires_payment_method", updated_at=utcnow()))
    db.session.commit()


def process_payment(user: User, raw_items: Any, payment_method_id: Any = None,
                    save_payment_method: Any = False) -> ProcessResult:
    """POST /api/payments/process: the payment for this cart, charged at most once.

    With a saved card the server confirms now: `succeeded`, `requires_action` (the page runs
    Stripe.js handleNextAction) or CardDeclined (402) carrying the payment. Without one, the
    page confirms in the browser with the returned client secret.
    """
    if not isinstance(save_payment_method, bool):
        raise InvalidRequest("save_payment_method must be true or false.",
                             param="save_payment_method")
    items = parse_items(raw_items)
    cart = price_items(items)
    method = _saved_method(user, payment_method_id)
    stripe_pm_id = method.stripe_payment_method_id if method else None
    digest = cart_hash(user, items, stripe_pm_id)
    customer_id = ensure_stripe_customer(user)
    payment = _claim_payment(user, cart, digest, method, save_payment_method)

    if payment.status == "succeeded":
        return ProcessResult(payment, None, False)  # a double submit of a finished checkout
    claimed = False
    if payment.stripe_payment_intent_id is None:
        intent, claimed = _ensure_intent(payment, customer_id,
                                         claim_confirm=stripe_pm_id is not None)
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
        payment = _confirm_saved_card(payment, str(intent.id), stripe_pm_id, claimed=claimed)
    if payment.status == "failed":
        raise CardDeclined(payment.failure_message or "Your card was declined.",
                           decline_code=payment.failure_decline_code or payment.failure_code,
                           payload={"payment": payment_to_dict(payment)})
    return ProcessResult(payment, intent.client_secret, payment.status == "requires_action")


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


def checkout_token(session: MutableMapping[str, Any]) -> str:
    """Names this checkout attempt in the page's stored Idempotency-Keys; a new one after a
    purchase, so buying the same cart again later is a new attempt, not a replay."""
    token = session.get("checkout_token")
    if not isinstance(token, str) or not token:
        token = secrets.token_urlsafe(12)
        session["checkout_token"] = token
    return token


def finish_checkout(session: MutableMapping[str, Any], payment: Payment) -> None:
    """After a successful payment: empty the cart and start a new attempt."""
    if payment.status in ("succeeded", "processing"):
        clear_cart(session)
        session.pop("checkout_token", None)
