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

Per-user card changes run under a lock on the user's row (PostgreSQL), so concurrent saves,
removals and webhooks cannot leave two defaults or lose one.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Mapping
from datetime import date
from typing import Any

from sqlalchemy import delete, select, update
from sqlalchemy.exc import IntegrityError

from payments_site import stripe_gateway
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
        # Redirect-based methods are excluded: cards (with in-page 3-D Secure) are what we save.
        {"customer": customer_id, "usage": "off_session",
         "automatic_payment_methods": {"enabled": True, "allow_redirects": "never"},
         "metadata": {"user_id": str(user.id)}},
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
    data = stripe_gateway.to_dict(intent)
    if data.get("customer") != customer_id:
        raise NotFound("No such setup intent.", param="setup_intent_id")
    status = data.get("status")
    if status != "succeeded":
        raise _setup_not_finished(status, data.get("last_setup_error"))
    pm = data.get("payment_method")
    if isinstance(pm, str):
        pm = stripe_gateway.to_dict(stripe_gateway.retrieve_payment_method(pm))
    if not isinstance(pm, Mapping):
        raise InvalidRequest("This setup intent has no card.", param="setup_intent_id")
    if pm.get("customer") is None:
        # The SetupIntent attached it to this customer, so it was detached since: as a
        # duplicate of a card already saved (a webhook got here first), or removed.
        fingerprint = (pm.get("card") or {}).get("fingerprint")
        kept = db.session.scalar(select(PaymentMethod).where(
            PaymentMethod.user_id == user.id, PaymentMethod.fingerprint == fingerprint))
        if kept is None:
            raise InvalidRequest("This card was removed. Please add it again.",
                                 param="setup_intent_id")
        return set_default(user, kept.stripe_payment_method_id) if make_default else kept
    pm = _ensure_attached(dict(pm), customer_id, param="setup_intent_id")
    return upsert_payment_method(user, pm, make_default=make_default)


def _setup_not_finished(status: Any, last_error: Any) -> DomainError:
    if isinstance(last_error, Mapping) and status in ("requires_payment_method", "canceled"):
        code = last_error.get("code")
        decline_code = last_error.get("decline_code") or code or "card_declined"
        return CardDeclined(
            stripe_gateway.friendly_decline_message(code, decline_code, None),
            decline_code=decline_code)
    if status == "requires_action":
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
        pm = stripe_gateway.to_dict(stripe_gateway.retrieve_payment_method(pm_id))
    except ResourceMissing as error:
        raise NotFound("No such payment method.", param="payment_method_id") from error
    pm = _ensure_attached(pm, customer_id, param="payment_method_id")
    return upsert_payment_method(user, pm, make_default=make_default)


def _ensure_attached(pm: dict[str, Any], customer_id: str, *, param: str) -> dict[str, Any]:
    if pm.get("type") != "card":
        raise InvalidRequest("Only cards can be saved.", param=param)
    owner = pm.get("customer")
    if owner is None:
        attached = stripe_gateway.attach_payment_method(
            str(pm["id"]), {"customer": customer_id},
            idempotency_key=f"attach-{pm['id']}-{customer_id}")
        return stripe_gateway.to_dict(attached)
    if owner != customer_id:
        raise NotFound("No such payment method.", param=param)
    return pm


def upsert_payment_method(user: User, stripe_pm: Any, *,
                          make_default: bool = False) -> PaymentMethod:
    """Store (or refresh) a card PaymentMethod for `user`; one row per fingerprint.

    The caller has checked that Stripe attached it to the user's customer (a PaymentMethod
    attached to a DIFFERENT customer is refused here as NotFound). The user's first card
    becomes the default; `make_default` makes this one the default.
    """
    pm = stripe_gateway.to_dict(stripe_pm)
    card = pm.get("card") or {}
    if pm.get("type") != "card" or not card:
        raise InvalidRequest("Only cards can be saved.", param="payment_method_id")
    owner = pm.get("customer")
    if owner is not None and user.stripe_customer_id and owner != user.stripe_customer_id:
        raise NotFound("No such payment method.", param="payment_method_id")
    for attempt in range(2):
        try:
            method, loser, default_changed = _upsert_locked(user, pm, card, make_default)
            db.session.commit()
            break
        except IntegrityError:
            # A concurrent save of the same card (webhook + page) won the insert: redo it,
            # which now takes the update path.
            db.session.rollback()
            if attempt:
                raise
        except DomainError:
            db.session.rollback()
            raise
    if loser is not None:
        _detach_quietly(loser)
    if default_changed or loser is not None:
        _sync_customer_default_quietly(user)
    return method


def _upsert_locked(user: User, pm: dict[str, Any], card: Mapping[str, Any],
                   make_default: bool) -> tuple[PaymentMethod, str | None, bool]:
    """(row, the PaymentMethod id to detach at Stripe or None, whether the default moved)."""
    _lock_user(user)
    pm_id = str(pm["id"])
    fields = {"brand": str(card.get("brand") or "unknown")[:32],
              "last4": str(card.get("last4") or "")[-4:],
              "exp_month": int(card.get("exp_month") or 0),
              "exp_year": int(card.get("exp_year") or 0)}
    # Stripe always fingerprints cards; the fallback only keeps the column honest.
    fingerprint = str(card.get("fingerprint") or f"pm:{pm_id}")[:64]
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
        elif (fields["exp_year"], fields["exp_month"]) > (method.exp_year, method.exp_month):
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
    return method, loser, default_changed


def _apply(method: PaymentMethod, fields: Mapping[str, Any]) -> None:
    for key, value in fields.items():
        setattr(method, key, value)


# --- default and removal ---------------------------------------------------------------------

def set_default(user: User, pm_id: str) -> PaymentMethod:
    """Make one of the user's cards the default, here and on the Stripe customer.

    Stripe is updated first, inside the locked transaction, so a failure changes nothing.
    """
    customer_id = ensure_stripe_customer(user)
    try:
        _lock_user(user)
        method = get_owned_method(user, pm_id)
        if not method.is_default:
            stripe_gateway.update_customer(
                customer_id, {"invoice_settings": {"default_payment_method": pm_id}})
            _make_default_locked(user, method)
    except DomainError:
        db.session.rollback()  # releases the lock; nothing changed
        raise
    db.session.commit()
    return method


def remove_method(user: User, pm_id: str) -> None:
    """Detach the card at Stripe, then delete its row; the newest remaining becomes default.

    Payments that used it keep their history (their link is set to NULL by the database).
    If Stripe cannot be reached the card stays saved and the error is raised.
    """
    ensure_stripe_customer(user)
    try:
        _lock_user(user)
        method = get_owned_method(user, pm_id)
        try:
            stripe_gateway.detach_payment_method(pm_id)
        except GatewayInvalidRequest as error:
            if not isinstance(error, ResourceMissing) and \
                    error.stripe_code not in _ALREADY_DETACHED:
                raise
            log.info("payment method was already detached at Stripe; removing the local row")
    except DomainError:
        db.session.rollback()  # releases the lock; the card stays saved
        raise
    promoted = _delete_locked(user, method)
    db.session.commit()
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


def _lock_user(user: User) -> None:
    """Serialize this user's card changes (row lock on PostgreSQL; SQLite has one writer)."""
    db.session.execute(select(User.id).where(User.id == user.id).with_for_update())


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
        stripe_gateway.update_customer(user.stripe_customer_id, {
            "invoice_settings": {"default_payment_method": method.stripe_payment_method_id}})
    except DomainError as error:
        log.warning("could not update the Stripe customer's default card: %s", error.code)


# --- webhooks --------------------------------------------------------------------------------

def sync_payment_method_attached(stripe_pm: dict[str, Any]) -> None:
    """`payment_method.attached`: save the card for the user whose customer it is attached to.

    The PaymentMethod is re-read from Stripe, so a late or replayed event for a card that
    has since been detached (removed, or a duplicate) does not bring it back.
    """
    try:
        current = stripe_gateway.to_dict(
            stripe_gateway.retrieve_payment_method(str(stripe_pm["id"])))
    except ResourceMissing:
        return
    customer_id = current.get("customer")
    if not customer_id or current.get("type") != "card":
        return
    user = db.session.scalar(select(User).where(User.stripe_customer_id == customer_id))
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
    user = db.session.get(User, method.user_id)
    if user is None:  # pragma: no cover - user_id is a non-null foreign key
        return
    _lock_user(user)
    # Re-read under the lock: a concurrent removal may have deleted it already.
    method = db.session.scalar(select(PaymentMethod).where(
        PaymentMethod.stripe_payment_method_id == stripe_pm_id).execution_options(
        populate_existing=True))
    if method is None:
        db.session.commit()
        return
    promoted = _delete_locked(user, method)
    db.session.commit()
    if promoted is not None:
        _sync_customer_default_quietly(user)
