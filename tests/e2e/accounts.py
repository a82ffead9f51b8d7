"""A customer account with a history, made through the JSON API against the Stripe emulator.

`lived_in_account` (a fixture of every e2e test, see conftest.py) gives a customer with saved cards
and payments that are paid, refunded, partially refunded, failed and not completed, with their
receipts and refund notes issued and emailed by the worker, and an admin. Everything goes
through the routes API.md names (tokens, saved cards, process, refund), so it is what a real
customer and admin would leave behind.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
import stripe
from sqlalchemy import select

from payments_site.extensions import db
from payments_site.models import Payment
from tests.conftest import DEFAULT_PASSWORD, STRIPE_TEST_SECRET_KEY

VISA = "4242424242424242"
MASTERCARD = "5555555555554444"
# Stripe's test card that can be saved but whose charges are declined.
DECLINES_WHEN_CHARGED = "4000000000000341"


@dataclass
class LivedInAccount:
    customer: Any
    admin: Any
    cards: dict[str, str] = field(default_factory=dict)  # name -> Stripe pm id
    payments: dict[str, Payment] = field(default_factory=dict)  # kind -> payment

    def payment(self, kind: str) -> Payment:
        """The payment of that kind, as the database has it now."""
        payment = db.session.get(Payment, self.payments[kind].id, populate_existing=True)
        assert payment is not None
        return payment


class ApiClient:
    """Calls the JSON API with a Bearer token, as an outside client does."""

    def __init__(self, client: Any, user: Any) -> None:
        self.client = client
        response = client.post("/api/auth/token", json={"email": user.email,
                                                         "password": DEFAULT_PASSWORD})
        assert response.status_code == 200, response.get_json()
        self.headers = {"Authorization": f"Bearer {response.get_json()['token']}"}

    def post(self, path: str, body: dict[str, Any], expect: int) -> dict[str, Any]:
        response = self.client.post(path, json=body, headers=self.headers)
        assert response.status_code == expect, (path, body, response.get_json())
        return dict(response.get_json())


def _save_card(sdk: stripe.StripeClient, api: ApiClient, number: str,
               make_default: bool = False) -> str:
    method = sdk.v1.payment_methods.create({"type": "card", "card": {
        "number": number, "exp_month": 12, "exp_year": 2031, "cvc": "123"}})
    body = api.post("/api/payments/methods/save",
                    {"payment_method_id": method.id, "make_default": make_default}, 201)
    return str(body["payment_method"]["id"])


@pytest.fixture
def lived_in_account(app: Any, client: Any, emulator: Any, make_user: Callable[..., Any],
                     run_jobs: Callable[..., int]) -> LivedInAccount:
    from payments_site.services.catalog import create_product

    app.config["PAYMENT_LIMIT"] = app.config["REFUND_LIMIT"] = "1000 per minute"
    customer = make_user("sam@example.com", name="Sam Shopper")
    admin = make_user("admin@example.com", role="admin", name="Ada Admin")
    mug = create_product("Ceramic mug", 1999, "usd")
    beans = create_product("Espresso beans, 1 kg", 2450, "usd")
    kettle = create_product("Gooseneck kettle", 5900, "usd")

    sdk = stripe.StripeClient(STRIPE_TEST_SECRET_KEY, base_addresses={"api": emulator.url},
                              max_network_retries=0)
    shopper, staff = ApiClient(client, customer), ApiClient(client, admin)
    account = LivedInAccount(customer, admin)
    account.cards = {"visa": _save_card(sdk, shopper, VISA, make_default=True),
                     "mastercard": _save_card(sdk, shopper, MASTERCARD),
                     "declining": _save_card(sdk, shopper, DECLINES_WHEN_CHARGED)}

    def pay(kind: str, items: list[tuple[Any, int]], card: str | None, expect: int) -> None:
        body: dict[str, Any] = {"items": [{"product_id": p.id, "quantity": q}
                                          for p, q in items]}
        if card is not None:
            body["payment_method_id"] = account.cards[card]
        answer = shopper.post("/api/payments/process", body, expect)
        account.payments[kind] = db.session.scalar(
            select(Payment).where(Payment.public_id == answer["payment"]["id"]))

    pay("not_completed", [(mug, 1)], None, 201)
    pay("failed", [(mug, 3)], "declining", 402)
    pay("refunded", [(kettle, 1)], "visa", 201)
    pay("partially_refunded", [(beans, 2)], "mastercard", 201)
    pay("paid", [(mug, 2), (beans, 1)], "visa", 201)
    staff.post("/api/payments/refund", {"payment_id": account.payments["refunded"].public_id,
                                        "reason": "requested_by_customer"}, 202)
    staff.post("/api/payments/refund", {
        "payment_id": account.payments["partially_refunded"].public_id, "amount": 500,
        "reason": "requested_by_customer"}, 202)
    run_jobs()  # refunds sent to Stripe, receipts and refund notes issued and emailed

    expected = {"paid": "succeeded", "refunded": "succeeded",
                "partially_refunded": "succeeded", "failed": "failed",
                "not_completed": "requires_payment_method"}
    assert {kind: account.payment(kind).status for kind in expected} == expected
    assert account.payment("refunded").refund_status == "full"
    assert account.payment("partially_refunded").amount_refunded == 500
    return account
