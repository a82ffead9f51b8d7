"""The catalog: products a customer can buy, and looking them up for a cart."""

from __future__ import annotations

from sqlalchemy import select

from payments_site.db import unit_of_work
from payments_site.errors import InvalidRequest
from payments_site.extensions import db
from payments_site.models import Product
from payments_site.money import (
    MAXIMUM_CHARGE,
    InvalidAmount,
    InvalidCurrency,
    normalize_currency,
    require_amount_step,
)


def active_products() -> list[Product]:
    return list(db.session.scalars(select(Product).where(Product.active.is_(True))
                                   .order_by(Product.id)))


def create_product(name: str, amount: int, currency: str, description: str = "") -> Product:
    """Add a product; InvalidRequest (400, the CLI's error) for a price Stripe cannot charge."""
    name = (name or "").strip()
    if not name:
        raise InvalidRequest("A product needs a name.", param="name")
    if not 0 < amount <= MAXIMUM_CHARGE:
        raise InvalidRequest("amount must be a positive integer of minor units.",
                             param="amount")
    try:
        currency = normalize_currency(currency)
    except InvalidCurrency as error:
        raise InvalidRequest(str(error), param="currency") from error
    try:
        # Refused here, not by Stripe at checkout after the customer's payment row exists.
        require_amount_step(amount, currency)
    except InvalidAmount as error:
        raise InvalidRequest(str(error), param="amount") from error
    product = Product(name=name[:200], unit_amount=amount, currency=currency,
                      description=description)
    with unit_of_work():
        db.session.add(product)
    return product
