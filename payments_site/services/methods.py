"""Saved cards: SetupIntents, attaching, one row per card (fingerprint), the default card.

Only Stripe's ids and display fields (brand, last4, expiry, fingerprint) are stored here;
card data only ever goes from the browser to Stripe.

Ownership: a card is the caller's when Stripe says its `customer` is the caller's Stripe
customer (the SetupIntent's or the PaymentMethod's), never because the client says so.

Duplicates: a customer has at most one row per card fingerprint. When a second
PaymentMethod with a known fingerprint arrives, the one with the LATER expiry wins (a
reissued card keeps working) and on a tie the card already saved wins (so a replayed or late
event cannot flip anything). The local row keeps its id (payments that reference it keep
their link), and the losing PaymentMethod is detached at Stripe after our commit, so the
customer's card list at Stripe matches ours. A webhook for that detach finds no row: no-op.

Per-user card changes run under the customer's lock (`db.lock_customer`), so concurrent
saves, removals and webhooks cannot leave two defaults or lose one.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from datetime import date

from sqlalchemy import delete, select, update
from sqlalchemy.exc import IntegrityError

from payments_site import stripe_gateway
from payments_site.db import lock_customer, unit_of_work
from payments_site.errors import CardDeclined, DomainError, InvalidRequest, NotFound
from payments_site.extensions import db
from payments_site.models import PaymentMethod, User
from payments_site.services.customers import ensure_stripe_customer
from payments_site.stripe_gateway import GatewayInvalidRequest, ResourceMissing

log = logging.getLogger(__name__)

# Stripe's answers to "detach" that mean the card is already gone from the customer.
_ALREADY_DETACHED = frozenset({"payment_method_unexpected_state", "resource_missing"})


# --- reading -----------------------------------------------------------------------------------

def list_methods(user: User) -> list[PaymentMethod]:
    """The user's cards, the default first, then newest first."""
    return list(db.session.scalars(
        select(PaymentMethod).where(PaymentMethod.user_id == user.id)
        .order_by(PaymentMethod.is_default.desc(), PaymentMethod.created_at.desc(),
                  PaymentMethod.id.desc())))


def get_owned_method(user: User, stripe_pm_id: str) -> PaymentMethod:
    """The user's saved card with this Stripe id; NotFound for unknown or someone else's."""
    method = db.session.scalar(select(PaymentMethod).where(
        PaymentMethod.stripe_payment_method_id == stripe_pm_id,
        PaymentMethod.user_id == user.id))
    if method is None:
        raise NotFound("No such saved card.", param="payment_method_id")
    return method


def default_method(user: User) -> PaymentMethod | None:
    return db.session.scalar(select(PaymentMethod).where(
        PaymentMethod.user_id == user.id, PaymentMethod.is_default.is_(True)))


def expiry_status(method: PaymentMethod, today: date | None = None) -> str | None:
    """'expired', 'expiring_soon' (it stops working within two months) or None.

    A card works until the end of its expiry month, so a card expiring this month or next
    has at most two months left.
    """
    today = today or date.today()
    months_left = (method.exp_year * 12 + method.exp_month) - (today.year * 12 + today.month)
    if months_left < 0:
        return "expired"
    if months_left <= 1:
        return "expiring_soon"
    return None


# --- saving ------------------------------------------------------------------------------------

def create_setup_intent(user: User) -> str:
    """A SetupIntent for the user's Stripe customer; returns its client_secret for Stripe.js."""
    customer_id = ensure_stripe_customer(user)
    intent = stripe_gateway.create_setup_intent(
        customer_id=customer_id, user_id=user.id,
        # A fresh intent per request; the key only makes OUR retries of this call safe.
        idempotency_key=f"setup-intent-{user.id}-{uuid.uuid4().hex}")
    return str(intent.client_secret)


def save_from_setup_intent(user: User, setup_intent_id: str,
                           make_default: bool = False) -> PaymentMethod:
    """Save the card a succeeded SetupIntent of the user's customer set up.

    NotFound for an unknown SetupIntent or another customer's; CardDeclined when the setup
    was declined or failed authentication; InvalidRequest while it is not finished.
    """
    customer_id = ensure_stripe_customer(user)
    try:
        intent = stripe_gateway.retrieve_setup_intent(setup_intent_id)
    except ResourceMissing as error:
        raise NotFound("No such setup intent.", param="setup_intent_id") from error
    if intent.customer_id != customer_id:
        raise NotFound("No such setup intent.", param="setup_intent_id")
    if intent.status != "succeeded":
        raise _setup_not_finished(intent)
    pm = intent.payment_method
    if pm is None and intent.payment_method_id is not None:
        pm = stripe_gateway.retrieve_payment_method(intent.payment_method_id)
    if pm is None:
        raise InvalidRequest("This setup intent has no card.", param="setup_intent_id")
    if pm.customer_id is None:
        # The SetupIntent attached it to this customer, so it was detached since: as a
        # duplicate of a card already saved (a webhook got here first), or removed.
        fingerprint = pm.card.fingerprint if pm.card else None
        kept = db.session.scalar(select(PaymentMethod).where(
            PaymentMethod.user_id == user.id, PaymentMethod.fingerprint == fingerprint))
        if kept is None:
            raise InvalidRequest("This card was removed. Please add it again.",
                                 param="setup_intent_id")
        return set_default(user, kept.stripe_payment_method_id) if make_default else kept
    pm = _ensure_attached(pm, customer_id, param="setup_intent_id")
    return upsert_payment_method(user, pm, make_default=make_default)


def _setup_not_finished(intent: stripe_gateway.SetupIntent) -> DomainError:
    error = intent.last_setup_error
    if error is not None and intent.status in ("requires_payment_method", "canceled"):
        decline_code = error.decline_code or error.code or "card_declined"
        return CardDeclined(
            stripe_gateway.friendly_decline_message(error.code, decline_code, None),
            decline_code=decline_code)
    if intent.status == "requires_action":
        return InvalidRequest("Your bank still needs you to confirm this card. Complete the "
                              "check and try again.", param="setup_intent_id")
    return InvalidRequest("This card has not been set up yet.", param="setup_intent_id")


def save_payment_method(user: User, pm_id: str, make_default: bool = False) -> PaymentMethod:
    """Save a PaymentMethod: attach it to the user's customer if it is attached to no one.

    NotFound for an unknown id or a card attached to another customer; CardDeclined when
    Stripe's verification on attach declines it.
    """
    customer_id = ensure_stripe_customer(user)
    try:
        pm = stripe_gateway.retrieve_payment_method(pm_id)
    except ResourceMissing as error:
        raise NotFound("No such payment method.", param="payment_method_id") from error
    pm = _ensure_attached(pm, customer_id, param="payment_method_id")
    return upsert_payment_method(user, pm, make_default=make_default)


def _ensure_attached(pm: stripe_gateway.PaymentMethod, customer_id: str, *,
                     param: str) -> stripe_gateway.PaymentMethod:
    if pm.type != "card":
        raise InvalidRequest("Only cards can be saved.", param=param)
    if pm.customer_id is None:
        return stripe_gateway.attach_payment_method(
            pm.id, customer_id=customer_id, idempotency_key=f"attach-{pm.id}-{customer_id}")
    if pm.customer_id != customer_id:
        raise NotFound("No such payment method.", param=param)
    return pm


@dataclass(frozen=True)
class _Stored:
    """What storing a card did: the row, the PaymentMethod to detach at Stripe (a duplicate
    that lost), and whether the default card changed."""

    method: PaymentMethod
    loser: str | None
    default_changed: bool


def upsert_payment_method(user: User, pm: stripe_gateway.PaymentMethod, *,
                          make_default: bool = False) -> PaymentMethod:
    """Store (or refresh) a card PaymentMethod for `user`; one row per fingerprint.

    The caller has checked that Stripe attached it to the user's customer (a PaymentMethod
    attached to a DIFFERENT customer is refused here as NotFound). The user's first card
    becomes the default; `make_default` makes this one the default.
    """
    card = pm.card
    if pm.type != "card" or card is None:
        raise InvalidRequest("Only cards can be saved.", param="payment_method_id")
    if pm.customer_id is not None and user.stripe_customer_id and \
            pm.customer_id != user.stripe_customer_id:
        raise NotFound("No such payment method.", param="payment_method_id")
    for attempt in range(2):
        try:
            with unit_of_work():
                lock_customer(user.id)
                stored = _store_card(user, pm.id, card, make_default)
            break
        except IntegrityError:
            # A concurrent save of the same card (webhook + page) won the insert: redo it,
            # which now takes the update path.
            if attempt:
                raise
    if stored.loser is not None:
        _detach_quietly(stored.loser)
    if stored.default_changed or stored.loser is not None:
        _sync_customer_default_quietly(user)
    return stored.method


def _store_card(user: User, pm_id: str, card: stripe_gateway.Card,
                make_default: bool) -> _Stored:
    """The row for this card, inserted or updated (part of the caller's locked unit of work)."""
    fields: dict[str, str | int] = {
        "brand": (card.brand or "unknown")[:32], "last4": (card.last4 or "")[-4:],
              "exp_month": card.exp_month, "exp_year": card.exp_year}
    # Stripe always fingerprints cards; the fallback only keeps the column honest.
    fingerprint = (card.fingerprint or f"pm:{pm_id}")[:64]
    loser: str | None = None
    method = db.session.scalar(select(PaymentMethod).where(
        PaymentMethod.stripe_payment_method_id == pm_id))
    if method is not None and method.user_id != user.id:
        raise NotFound("No such payment method.", param="payment_method_id")
    if method is None:
        method = db.session.scalar(select(PaymentMethod).where(
            PaymentMethod.user_id == user.id, PaymentMethod.fingerprint == fingerprint))
        if method is None:
            method = PaymentMethod(user_id=user.id, stripe_payment_method_id=pm_id,
                                   fingerprint=fingerprint, is_default=False, **fields)
            db.session.add(method)
            db.session.flush()
        elif (card.exp_year, card.exp_month) > (method.exp_year, method.exp_month):
            loser = method.stripe_payment_method_id
            method.stripe_payment_method_id = pm_id
            _apply(method, fields)
        else:
            loser = pm_id
    else:
        _apply(method, fields)
    default_changed = False
    if make_default or default_method(user) is None:
        default_changed = not method.is_default
        _make_default_locked(user, method)
    return _Stored(method, loser, default_changed)


def _apply(method: PaymentMethod, fields: dict[str, str | int]) -> None:
    for key, value in fields.items():
        setattr(method, key, value)


# --- default and removal ---------------------------------------------------------------------

def set_default(user: User, pm_id: str) -> PaymentMethod:
    """Make one of the user's cards the default, here and on the Stripe customer.

    Stripe is updated first, inside the locked transaction, so a failure changes nothing.
    """
    customer_id = ensure_stripe_customer(user)
    with unit_of_work():
        lock_customer(user.id)
        method = get_owned_method(user, pm_id)
        if not method.is_default:
            stripe_gateway.set_default_payment_method(customer_id, pm_id)
            _make_default_locked(user, method)
    return method


def remove_method(user: User, pm_id: str) -> None:
    """Detach the card at Stripe, then delete its row; the newest remaining becomes default.

    Payments that used it keep their history (their link is set to NULL by the database).
    If Stripe cannot be reached the card stays saved and the error is raised.
    """
    ensure_stripe_customer(user)
    with unit_of_work():
        lock_customer(user.id)
        method = get_owned_method(user, pm_id)
        try:
            stripe_gateway.detach_payment_method(pm_id)
        except GatewayInvalidRequest as error:
            if not isinstance(error, ResourceMissing) and \
                    error.stripe_code not in _ALREADY_DETACHED:
                raise
            log.info("payment method was already detached at Stripe; removing the local row")
        promoted = _delete_locked(user, method)
    if promoted is not None:
        _sync_customer_default_quietly(user)


def _delete_locked(user: User, method: PaymentMethod) -> PaymentMethod | None:
    """Delete the row; if it was the default, promote the newest remaining card (returned)."""
    was_default = method.is_default
    db.session.execute(delete(PaymentMethod).where(PaymentMethod.id == method.id))
    db.session.expunge(method)
    if not was_default:
        return None
    successor = db.session.scalar(
        select(PaymentMethod).where(PaymentMethod.user_id == user.id)
        .order_by(PaymentMethod.created_at.desc(), PaymentMethod.id.desc()).limit(1))
    if successor is not None:
        _make_default_locked(user, successor)
    return successor


def _make_default_locked(user: User, method: PaymentMethod) -> None:
    # One statement, so no moment (and no concurrent reader) sees two defaults.
    db.session.execute(update(PaymentMethod).where(PaymentMethod.user_id == user.id)
                       .values(is_default=PaymentMethod.id == method.id)
                       .execution_options(synchronize_session=False))
    db.session.flush()
    for row in db.session.identity_map.values():
        if isinstance(row, PaymentMethod) and row.user_id == user.id:
            db.session.expire(row, ["is_default"])


def _detach_quietly(pm_id: str) -> None:
    try:
        stripe_gateway.detach_payment_method(pm_id)
    except DomainError as error:
        # Already detached is fine; anything else leaves a harmless extra card at Stripe.
        if getattr(error, "stripe_code", None) not in _ALREADY_DETACHED:
            log.warning("could not detach duplicate payment method %s: %s", pm_id,
                        error.code)


def _sync_customer_default_quietly(user: User) -> None:
    """Point the Stripe customer's invoice default at our default card (best effort)."""
    method = default_method(user)
    if method is None or not user.stripe_customer_id:
        return
    try:
        stripe_gateway.set_default_payment_method(user.stripe_customer_id,
                                                  method.stripe_payment_method_id)
    except DomainError as error:
        log.warning("could not update the Stripe customer's default card: %s", error.code)


# --- webhooks --------------------------------------------------------------------------------

def sync_payment_method(payment_method_id: str) -> None:
    """Apply a card's CURRENT state at Stripe (`payment_method.*`, `setup_intent.succeeded`):
    saved for the user whose customer it is attached to, forgotten once detached.

    The PaymentMethod is re-read from Stripe, so an attach and a detach delivered out of
    order agree, and a late or replayed event for a card that has since been detached
    (removed, or a duplicate) does not bring it back.
    """
    try:
        current = stripe_gateway.retrieve_payment_method(payment_method_id)
    except ResourceMissing:
        sync_payment_method_detached(payment_method_id)
        return
    if current.customer_id is None:
        sync_payment_method_detached(payment_method_id)
        return
    if current.type != "card":
        return
    user = db.session.scalar(select(User).where(User.stripe_customer_id == current.customer_id))
    if user is None:
        log.info("payment_method.attached for a customer that is not one of our users")
        return
    try:
        upsert_payment_method(user, current)
    except NotFound:
        log.warning("payment_method.attached for a card stored for another user; ignored")


def sync_payment_method_detached(stripe_pm_id: str) -> None:
    """`payment_method.detached`: forget the card; promote a new default if needed."""
    method = db.session.scalar(select(PaymentMethod).where(
        PaymentMethod.stripe_payment_method_id == stripe_pm_id))
    if method is None:
        return
    user = db.session.get_one(User, method.user_id)
    with unit_of_work():
        lock_customer(user.id)
        # Re-read under the lock: a concurrent removal may have deleted it already.
        method = db.session.scalar(select(PaymentMethod).where(
            PaymentMethod.stripe_payment_method_id == stripe_pm_id).execution_options(
            populate_existing=True))
        promoted = _delete_locked(user, method) if method is not None else None
    if promoted is not None:
        _sync_customer_default_quietly(user)
