"""Three-decimal currencies (BHD, JOD, KWD, OMR, TND): Stripe only takes amounts ending in 0.

Each place an amount enters (a product's price, a checkout total, a refund) refuses one that
Stripe would refuse, before any row exists or Stripe is called.
"""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from payments_site.errors import InvalidRequest
from payments_site.extensions import db
from payments_site.models import Payment, Product, Refund
from payments_site.money import InvalidAmount, amount_step, require_amount_step
from payments_site.services.catalog import create_product
from tests.payments.conftest import intents_of
from tests.refunds.helpers import charge_amount_refunded, paid_payment


def _count(model) -> int:
    db.session.expire_all()
    return int(db.session.scalar(select(func.count()).select_from(model)) or 0)


@pytest.mark.parametrize("currency", ["bhd", "JOD", "kwd", "omr", "tnd"])
def test_three_decimal_amounts_must_end_in_zero(currency):
    assert amount_step(currency) == 10
    require_amount_step(1230, currency)
    with pytest.raises(InvalidAmount, match=r"multiple of 10 minor units \(0\.010 "):
        require_amount_step(1235, currency)


@pytest.mark.parametrize("currency", ["usd", "jpy", "eur"])
def test_other_currencies_take_any_whole_minor_unit(currency):
    assert amount_step(currency) == 1
    require_amount_step(1235, currency)


def test_a_product_price_stripe_would_refuse_is_400(app):
    with pytest.raises(InvalidRequest) as refused:
        create_product("Dates", 1235, "kwd")
    assert refused.value.status == 400 and refused.value.param == "amount"
    assert "KWD amounts must be a multiple of 10" in refused.value.message
    assert _count(Product) == 0
    assert create_product("Dates", 1230, "kwd").unit_amount == 1230
    assert create_product("Mug", 1235, "usd").unit_amount == 1235


def test_cli_refuses_a_three_decimal_price_not_ending_in_zero(runner):
    refused = runner.invoke(args=["products", "create", "--name", "Oud", "--amount", "12345",
                                  "--currency", "BHD"])
    assert refused.exit_code != 0
    assert "BHD amounts must be a multiple of 10 minor units (0.010 BHD)" in refused.output
    assert _count(Product) == 0
    accepted = runner.invoke(args=["products", "create", "--name", "Oud", "--amount", "12340",
                                   "--currency", "BHD"])
    assert accepted.exit_code == 0, accepted.output
    product = db.session.get(Product, int(accepted.output.strip()))
    assert (product.unit_amount, product.currency) == (12340, "bhd")


def test_checkout_refuses_a_total_stripe_would_refuse_before_any_row(shopper, customer, sc):
    # A price stored before the rule was enforced at creation (or written by hand).
    legacy = Product(name="Saffron", unit_amount=1235, currency="omr")
    db.session.add(legacy)
    db.session.commit()
    response = shopper.post("/api/payments/process", json={
        "items": [{"product_id": legacy.id, "quantity": 1}]})
    assert response.status_code == 400
    error = response.get_json()["error"]
    assert (error["code"], error["param"]) == ("invalid_request", "items")
    assert "OMR amounts must be a multiple of 10" in error["message"]
    assert _count(Payment) == 0
    assert intents_of(sc, customer) == []
    # The checkout page says so instead of offering a payment form that cannot work.
    shopper.client.post("/cart/add", data={"product_id": legacy.id, "quantity": "1",
                                           "csrf_token": shopper.csrf_token})
    page = shopper.get("/checkout").get_data(as_text=True)
    assert "OMR amounts must be a multiple of 10" in page
    assert 'id="payment-element"' not in page


def test_checkout_charges_a_three_decimal_total_ending_in_zero(shopper, customer, sc):
    dates = create_product("Dates", 1230, "kwd")
    response = shopper.post("/api/payments/process", json={
        "items": [{"product_id": dates.id, "quantity": 3}]})
    assert response.status_code == 201, response.get_json()
    payment = response.get_json()["payment"]
    assert (payment["amount"], payment["currency"]) == (3690, "kwd")
    intent = sc.v1.payment_intents.retrieve(payment["stripe_payment_intent_id"])
    assert (intent.amount, intent.currency) == (3690, "kwd")


def _refund(client, api_token, admin, body):
    return client.post("/api/payments/refund", json=body,
                       headers={"Authorization": f"Bearer {api_token(admin)}"})


@pytest.mark.parametrize("amount", [1235, 1, 4999])
def test_a_refund_stripe_would_refuse_is_400_and_reserves_nothing(
        client, customer, admin, api_token, sc, amount):
    payment = paid_payment(sc, customer, amount=5000, currency="bhd")
    response = _refund(client, api_token, admin, {"payment_id": payment.public_id,
                                                  "amount": amount})
    assert response.status_code == 400
    error = response.get_json()["error"]
    assert (error["code"], error["param"]) == ("invalid_request", "amount")
    assert "BHD amounts must be a multiple of 10" in error["message"]
    assert _count(Refund) == 0
    db.session.refresh(payment)
    assert payment.refund_reserved == 0
    assert charge_amount_refunded(sc, payment) == 0


def test_a_three_decimal_refund_ending_in_zero_is_accepted(client, customer, admin, api_token,
                                                           sc, run_jobs):
    payment = paid_payment(sc, customer, amount=5000, currency="bhd")
    response = _refund(client, api_token, admin, {"payment_id": payment.public_id,
                                                  "amount": 1230})
    assert response.status_code == 202, response.get_json()
    run_jobs()
    assert charge_amount_refunded(sc, payment) == 1230


def test_the_admin_refund_form_explains_the_three_decimal_rule(customer, admin, login_as, sc):
    payment = paid_payment(sc, customer, amount=5000, currency="jod")
    session = login_as(admin)
    response = session.client.post(f"/admin/payments/{payment.public_id}/refund",
                                   data={"amount": "1.235", "reason": "duplicate",
                                         "csrf_token": session.csrf_token})
    assert response.status_code == 400
    assert "JOD amounts must be a multiple of 10 minor units (0.010 JOD)" in \
        response.get_data(as_text=True)
    assert _count(Refund) == 0
