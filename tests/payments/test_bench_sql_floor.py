"""The bench's `/checkout-with-sql` view runs checkout's money-rule SQL on the bare driver.

`make bench` compares the app's checkout with it, so its statements must stay those of the
app's tables as migrations change them, and must leave the rows a checkout leaves: a view
whose SQL failed, or quietly did less, would make the app look slower than it is.
"""

from __future__ import annotations

import importlib
import json
from collections.abc import Iterator
from types import ModuleType
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import select

from payments_site.extensions import db
from payments_site.models import IdempotencyKey, Payment, PaymentItem


@pytest.fixture
def floor(app: Flask, monkeypatch: pytest.MonkeyPatch) -> Iterator[ModuleType]:
    url = app.config["SQLALCHEMY_DATABASE_URI"]
    if not url.startswith("postgresql"):
        pytest.skip("the view speaks PostgreSQL's driver only")
    monkeypatch.setenv("DATABASE_URL", url)
    monkeypatch.setenv("STRIPE_SECRET_KEY", app.config["STRIPE_SECRET_KEY"])
    monkeypatch.setenv("STRIPE_API_BASE", app.config["STRIPE_API_BASE"])
    import bench.floor_app

    module = importlib.reload(bench.floor_app)
    try:
        yield module
    finally:
        for connection in getattr(module._local, "pair", ()):
            connection.close()


def _pay(floor: ModuleType, user: Any, products: list[int], payment_method: str | None
         ) -> tuple[int, dict[str, Any]]:
    response = floor.app.test_client().post("/checkout-with-sql", json={
        "amount": 1999, "customer": user.stripe_customer_id, "user_id": user.id,
        "products": products, "payment_method": payment_method})
    return response.status_code, response.get_json() or {}


def _rows() -> tuple[Payment, list[PaymentItem], IdempotencyKey]:
    db.session.expire_all()
    payment = db.session.scalars(select(Payment)).one()
    items = list(db.session.scalars(select(PaymentItem)))
    claim = db.session.scalars(select(IdempotencyKey)).one()
    return payment, items, claim


def test_a_new_card_leaves_the_rows_a_checkout_leaves(floor, customer, mug, make_card, sc):
    make_card(customer)  # the customer exists at Stripe, as the bench's do
    status, answer = _pay(floor, customer, [mug.id], None)
    assert status == 201, answer
    assert answer["client_secret"] and answer["status"] == "requires_payment_method"
    payment, items, claim = _rows()
    assert payment.user_id == customer.id and payment.amount == 1999
    assert payment.stripe_payment_intent_id == answer["id"]
    assert payment.needs_reconcile is False and payment.status == "requires_payment_method"
    assert payment.checkout_attempt is not None  # named by its key, as the app's are
    assert [(i.product_id, i.name, i.unit_amount) for i in items] == [
        (mug.id, mug.name, mug.unit_amount)]
    assert (claim.status, claim.response_status) == ("done", 201)
    assert json.loads(claim.response_body) == answer
    assert sc.v1.payment_intents.retrieve(answer["id"]).customer == customer.stripe_customer_id


def test_a_saved_card_is_claimed_confirmed_and_recorded(floor, customer, mug, make_card, sc):
    pm_id = make_card(customer)
    status, answer = _pay(floor, customer, [mug.id], pm_id)
    assert status == 201, answer
    assert answer["status"] == "succeeded"
    payment, _items, claim = _rows()
    assert (payment.status, payment.confirm_attempts) == ("succeeded", 1)
    assert payment.payment_method_id is not None and payment.stripe_charge_id
    assert payment.stripe_payment_intent_id == answer["id"]
    assert claim.status == "done"
    charges = sc.v1.charges.list({"customer": customer.stripe_customer_id}).data
    assert [c.id for c in charges] == [payment.stripe_charge_id]


def test_an_unknown_saved_card_is_a_404_kept_under_the_key(floor, customer, mug, make_card,
                                                           sc):
    """As the app answers it: no payment, nothing at Stripe, the 404 stored with the claim,
    and the view's connection left with no transaction open (the next checkout works)."""
    make_card(customer)
    status, answer = _pay(floor, customer, [mug.id], "pm_not_saved")
    assert (status, answer) == (404, {"error": "No such payment method."})
    db.session.expire_all()
    assert db.session.scalars(select(Payment)).all() == []
    claim = db.session.scalars(select(IdempotencyKey)).one()
    assert (claim.status, claim.response_status) == ("done", 404)
    assert sc.v1.payment_intents.list({"customer": customer.stripe_customer_id}).data == []
    status, answer = _pay(floor, customer, [mug.id], None)
    assert status == 201, answer
