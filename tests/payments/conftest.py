"""Fixtures for the checkout and payments tests: saved cards, faults, a shopper."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import requests
import stripe
from flask import Flask

VISA = "4242424242424242"
# Test card -> Stripe's decline_code (0002's error code is card_declined, decline_code generic).
DECLINES = {
    "4000000000000002": "generic_decline",
    "4000000000009995": "insufficient_funds",
    "4000000000000069": "expired_card",
    "4000000000000127": "incorrect_cvc",
}
THREE_DS = "4000002760003184"


@pytest.fixture(autouse=True)
def generous_rate_limit(app: Flask) -> None:
    # These tests submit many payments per minute on purpose; the limit has its own test.
    app.config["PAYMENT_LIMIT"] = "10000 per minute"


@pytest.fixture
def make_card(sc: stripe.StripeClient) -> Callable[..., str]:
    """make_card(user, number, attach=True) -> a saved card's pm id: attached to the user's Stripe
    customer and recorded as a PaymentMethod row, as the saved-cards flow leaves it."""
    from payments_site import stripe_gateway
    from payments_site.services.customers import ensure_stripe_customer
    from payments_site.services.methods import upsert_payment_method

    def create(user: Any, number: str = VISA, *, attach: bool = True) -> str:
        customer_id = ensure_stripe_customer(user)
        pm = sc.v1.payment_methods.create({"type": "card", "card": {
            "number": number, "exp_month": 12, "exp_year": 2030, "cvc": "123"}})
        if attach:
            pm = sc.v1.payment_methods.attach(pm.id, {"customer": customer_id})
        # Without attaching: a saved card that declines now (Stripe refuses to attach cards
        # that decline, so this is how a once-good card that now fails looks to us).
        upsert_payment_method(user, stripe_gateway.retrieve_payment_method(pm.id))
        return str(pm.id)

    return create


@pytest.fixture
def fault(emulator: Any) -> Callable[..., None]:
    """fault(status=, times=, path_prefix=, method=, delay_s=, after=): the next matching
    requests to the emulator fail that way."""

    def add(**spec: Any) -> None:
        body = {"method": "POST", "path_prefix": "/v1/payment_intents", **spec}
        requests.post(f"{emulator.url}/_config/faults", json=body, timeout=5).raise_for_status()

    return add


@pytest.fixture
def mug(product: Any) -> Any:
    return product


@pytest.fixture
def shopper(customer: Any, login_as: Callable[..., Any]) -> Any:
    return login_as(customer)


def intents_of(sc: stripe.StripeClient, user: Any) -> list[Any]:
    from payments_site.extensions import db

    db.session.refresh(user)
    if not user.stripe_customer_id:
        return []
    return list(sc.v1.payment_intents.list({"customer": user.stripe_customer_id,
                                            "limit": 100}).data)
