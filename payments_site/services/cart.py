"""The session cart: what a visitor means to buy, kept in their signed session cookie.

A cart belongs to one person. One filled while signed out is taken over at sign-in (add to
cart, then log in to pay); one filled by somebody else is dropped at sign-in, and signing out
drops it, so a shared browser never carries one customer's cart into another's checkout.
"""

from __future__ import annotations

from collections.abc import MutableMapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select

from payments_site.errors import InvalidRequest, NotFound
from payments_site.extensions import db
from payments_site.models import Product
from payments_site.services.pricing import MAX_QUANTITY, CartLine, total_problem

CART_KEY = "cart"
OWNER_KEY = "cart_owner"
RESUME_KEY = "checkout_resume"
Session = MutableMapping[str, Any]


def session_cart(session: Session) -> dict[int, int]:
    """{product_id: quantity}, ignoring anything malformed in the cookie."""
    raw = session.get(CART_KEY) or {}
    cart: dict[int, int] = {}
    if isinstance(raw, dict):
        for key, value in raw.items():
            if str(key).isdigit() and isinstance(value, int) and 1 <= value <= MAX_QUANTITY:
                cart[int(key)] = value
    return cart


def _store(session: Session, cart: dict[int, int], owner_id: int | None) -> None:
    session[CART_KEY] = {str(k): v for k, v in cart.items()}
    if owner_id is not None:
        session[OWNER_KEY] = owner_id
    session.pop(RESUME_KEY, None)  # the cart changed: it is no longer the resumed payment's


def add_to_cart(session: Session, product_id: int, quantity: int,
                owner_id: int | None) -> Product:
    """Add a product; the cart stays in one currency and each line at most 99."""
    product = db.session.get(Product, product_id)
    if product is None or not product.active:
        raise NotFound("No such product.")
    cart = session_cart(session)
    if cart:
        currencies = set(db.session.scalars(select(Product.currency).where(
            Product.id.in_(list(cart)))))
        if currencies - {product.currency}:
            raise InvalidRequest("Your cart is in another currency. Check out first, or "
                                 "remove those items.", param="product_id")
    cart[product.id] = min(cart.get(product.id, 0) + quantity, MAX_QUANTITY)
    _store(session, cart, owner_id)
    return product


def set_cart_quantity(session: Session, product_id: int, quantity: int,
                      owner_id: int | None) -> None:
    """Set a line's quantity; 0 removes it."""
    cart = session_cart(session)
    if quantity <= 0:
        cart.pop(product_id, None)
    elif product_id in cart:
        cart[product_id] = min(quantity, MAX_QUANTITY)
    _store(session, cart, owner_id)


def replace_cart(session: Session, items: list[tuple[int, int]], owner_id: int) -> None:
    """The cart becomes exactly these lines (resuming a payment that was not completed)."""
    _store(session, {product_id: quantity for product_id, quantity in items}, owner_id)


def clear_cart(session: Session) -> None:
    for key in (CART_KEY, OWNER_KEY, RESUME_KEY):
        session.pop(key, None)


def claim_cart(session: Session, user_id: int) -> None:
    """At sign-in: keep a cart filled while signed out or by this user; drop anybody else's."""
    owner = session.get(OWNER_KEY)
    if owner is not None and owner != user_id:
        clear_cart(session)
    elif session.get(CART_KEY):
        session[OWNER_KEY] = user_id


@dataclass(frozen=True)
class CartSummary:
    lines: list[CartLine]
    currency: str | None
    total: int
    problem: str | None

    def as_items(self) -> list[tuple[int, int]]:
        return [(line.product.id, line.quantity) for line in self.lines]


def cart_summary(session: Session, user_id: int) -> CartSummary:
    """The signed-in user's cart priced from the catalog (unavailable products dropped).

    A cart that belongs to someone else is never shown or charged: it is emptied.
    """
    owner = session.get(OWNER_KEY)
    if owner is not None and owner != user_id:
        clear_cart(session)
    cart = session_cart(session)
    found = {product.id: product for product in db.session.scalars(
        select(Product).where(Product.id.in_(list(cart))))} if cart else {}
    lines = [CartLine(found[product_id], quantity) for product_id, quantity in cart.items()
             if product_id in found and found[product_id].active]
    if len(lines) != len(cart):
        _store(session, {line.product.id: line.quantity for line in lines}, user_id)
    total = sum(line.total for line in lines)
    currencies = {line.product.currency for line in lines}
    currency = lines[0].product.currency if lines else None
    problem = None
    if len(currencies) > 1:
        problem = "All items in one payment must share one currency."
    elif lines and currency:
        problem = total_problem(total, currency)
    return CartSummary(lines, currency, total, problem)
