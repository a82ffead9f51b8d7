"""Pricing a cart from the catalog: the only source of amounts, in one currency."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass

from sqlalchemy import bindparam, select

from payments_site.errors import InvalidRequest
from payments_site.extensions import db
from payments_site.models import Product
from payments_site.money import (
    MAXIMUM_CHARGE,
    InvalidAmount,
    format_money,
    minimum_charge,
    require_amount_step,
)

MAX_QUANTITY = 99
MAX_LINES = 50


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


# Built once (the ids travel as a parameter): every checkout reuses the compiled statement.
_PRODUCTS_BY_ID = select(Product).where(Product.id.in_(bindparam("ids", expanding=True)))


def price_items(items: list[tuple[int, int]]) -> PricedCart:
    """The cart priced from the catalog (the only source of amounts), in one currency.

    `items` is [(product_id, quantity)], each product once (400 naming the line otherwise).
    """
    lines: list[CartLine] = []
    seen: set[int] = set()
    for index, (product_id, _) in enumerate(items):
        if product_id in seen:
            raise InvalidRequest("Each product may appear once; set its quantity instead.",
                                 param=f"items[{index}].product_id")
        seen.add(product_id)
    # One query for the whole cart, not one per line.
    found = {product.id: product for product in db.session.scalars(
        _PRODUCTS_BY_ID, {"ids": [product_id for product_id, _ in items]})}
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


def cart_hash(user_id: int, items: list[tuple[int, int]], payment_method_id: str | None) -> str:
    """What makes two submits the same purchase: who, which products how many, which card."""
    canonical = json.dumps({"user": user_id, "items": sorted(items),
                            "payment_method": payment_method_id or ""}, sort_keys=True)
    return hashlib.sha256(canonical.encode()).hexdigest()


def same_items(first: list[tuple[int, int]], second: list[tuple[int, int]]) -> bool:
    """Whether two carts hold the same products in the same quantities."""
    return sorted(first) == sorted(second)
