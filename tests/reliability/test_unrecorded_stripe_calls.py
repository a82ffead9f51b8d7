"""RELIABILITY 15 and 27: a Stripe call whose answer was lost is found again by reconcile.

The emulator lets the request take effect and then drops the connection (`after: true`), on
every attempt the gateway makes, so the checkout answers 503 while Stripe holds an intent
for our payment. The customer walks away. The operator's `flask payments reconcile` must
then tie that intent to its payment: every PaymentIntent maps to exactly one payment.
"""

from __future__ import annotations

import requests

from payments_site.extensions import db
from payments_site.models import Payment
from tests.security.flows import bearer, sdk


def _lose_every_answer(emulator_url: str, prefix: str) -> None:
    requests.post(f"{emulator_url}/_config/faults", json={
        "method": "POST", "path_prefix": prefix, "status": 0, "after": True, "times": 20},
        timeout=5).raise_for_status()


def test_lost_create_answer_marks_the_payment_unknown(app, client, emulator, customer, product,
                                                      api_token):
    """RELIABILITY 15: retries exhausted → 503, the payment flagged for reconciliation."""
    app.config["PAYMENT_LIMIT"] = "1000 per minute"
    _lose_every_answer(emulator.url, "/v1/payment_intents")
    response = client.post("/api/payments/process", headers=bearer(api_token(customer)),
                           json={"items": [{"product_id": product.id, "quantity": 1}]})
    assert response.status_code == 503
    assert response.get_json()["error"]["code"] == "payment_provider_unavailable"
    payment = db.session.query(Payment).one()
    assert payment.needs_reconcile is True
    assert payment.status == "requires_payment_method"
    # Stripe did create it (only the answer was lost); it carries our payment's id.
    intents = sdk(emulator.url).v1.payment_intents.list().data
    assert [i.metadata.to_dict().get("payment_id") for i in intents] == [payment.public_id]


def test_the_customer_trying_again_gets_the_same_intent(app, client, emulator, customer,
                                                        product, api_token):
    """RELIABILITY 15: the next attempt re-uses the payment and Stripe's intent (same key)."""
    app.config["PAYMENT_LIMIT"] = "1000 per minute"
    auth = bearer(api_token(customer))
    body = {"items": [{"product_id": product.id, "quantity": 1}]}
    _lose_every_answer(emulator.url, "/v1/payment_intents")
    assert client.post("/api/payments/process", headers=auth, json=body).status_code == 503
    requests.delete(f"{emulator.url}/_config/faults", timeout=5).raise_for_status()
    response = client.post("/api/payments/process", headers=auth, json=body)
    assert response.status_code == 201, response.get_json()
    intents = sdk(emulator.url).v1.payment_intents.list().data
    assert len(intents) == 1
    assert response.get_json()["payment"]["stripe_payment_intent_id"] == intents[0].id
    assert db.session.query(Payment).one().needs_reconcile is False


def test_reconcile_records_an_intent_whose_answer_was_lost(app, client, emulator, customer,
                                                           product, api_token, runner):
    """RELIABILITY 15: an intent whose create answer was lost is recorded once the operator
    reconciles (the database-down half of 27 is tests/payments/test_database_down.py)."""
    app.config["PAYMENT_LIMIT"] = "1000 per minute"
    _lose_every_answer(emulator.url, "/v1/payment_intents")
    response = client.post("/api/payments/process", headers=bearer(api_token(customer)),
                           json={"items": [{"product_id": product.id, "quantity": 1}]})
    assert response.status_code == 503
    requests.delete(f"{emulator.url}/_config/faults", timeout=5).raise_for_status()

    result = runner.invoke(args=["payments", "reconcile"])
    assert result.exit_code == 0, result.output

    db.session.expire_all()
    payment = db.session.query(Payment).one()
    intents = sdk(emulator.url).v1.payment_intents.list().data
    assert len(intents) == 1
    assert payment.stripe_payment_intent_id == intents[0].id
    assert payment.needs_reconcile is False
