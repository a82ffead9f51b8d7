"""RELIABILITY 9, 10, 16 and 21 through the public API over real HTTP (the live server).

Concurrency here is real: many threads, many connections, one threaded server, the real
database's locks. Stripe's side is read back from the emulator with the official SDK.
"""

from __future__ import annotations

import threading
import uuid
from typing import Any

import pytest
import requests

from tests.security.flows import bearer, sdk

VISA = "4242424242424242"


@pytest.fixture
def limits_off(app):
    app.config["PAYMENT_LIMIT"] = "100000 per minute"


def saved_card(emulator_url: str, user: Any, number: str = VISA) -> str:
    """A card attached to the user's Stripe customer and recorded, as the cards page leaves it."""
    from payments_site import stripe_gateway
    from payments_site.services.customers import ensure_stripe_customer
    from payments_site.services.methods import upsert_payment_method

    sc = sdk(emulator_url)
    customer_id = ensure_stripe_customer(user)
    method = sc.v1.payment_methods.create({"type": "card", "card": {
        "number": number, "exp_month": 12, "exp_year": 2030, "cvc": "123"}})
    method = sc.v1.payment_methods.attach(method.id, {"customer": customer_id})
    upsert_payment_method(user, stripe_gateway.retrieve_payment_method(method.id))
    return str(method.id)


def stripe_side(emulator_url: str, user: Any) -> tuple[list[Any], list[Any]]:
    """(PaymentIntents, succeeded charges) of this user's Stripe customer."""
    from payments_site.extensions import db

    db.session.refresh(user)
    sc = sdk(emulator_url)
    intents = [i for i in sc.v1.payment_intents.list({"limit": 100}).data
               if i.customer == user.stripe_customer_id]
    charges = [c for c in sc.v1.charges.list({"limit": 100}).data
               if c.customer == user.stripe_customer_id and c.status == "succeeded"]
    return intents, charges


def hammer(url: str, token: str, body: dict[str, Any], count: int,
           key: str | None) -> list[requests.Response]:
    headers = bearer(token)
    if key is not None:
        headers["Idempotency-Key"] = key
    barrier = threading.Barrier(count)
    responses: list[requests.Response] = []
    lock = threading.Lock()

    def submit() -> None:
        barrier.wait()
        response = requests.post(f"{url}/api/payments/process", json=body, headers=headers,
                                 timeout=60)
        with lock:
            responses.append(response)

    threads = [threading.Thread(target=submit) for _ in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return responses


@pytest.mark.parametrize("with_key", [True, False])
def test_fifty_concurrent_submits_make_one_intent_and_one_charge(
        app, emulator, live_server, customer, product, api_token, limits_off, with_key):
    """RELIABILITY 9: 50 concurrent submits of one checkout → 1 PaymentIntent, ≤ 1 charge."""
    from payments_site.extensions import db
    from payments_site.models import Payment

    card = saved_card(emulator.url, customer)
    token = api_token(customer)
    body = {"items": [{"product_id": product.id, "quantity": 2}], "payment_method_id": card}
    responses = hammer(live_server.url, token, body, 50,
                       f"checkout-{uuid.uuid4().hex}" if with_key else None)
    statuses = sorted({r.status_code for r in responses})
    assert set(statuses) <= {201, 409}, statuses  # 409: the same key still running
    assert any(r.status_code == 201 for r in responses)
    payment_ids = {r.json()["payment"]["id"] for r in responses if r.status_code == 201}
    assert len(payment_ids) == 1
    intents, charges = stripe_side(emulator.url, customer)
    assert len(intents) == 1
    assert len(charges) == 1
    db.session.expire_all()
    assert db.session.query(Payment).count() == 1
    assert db.session.query(Payment).one().status == "succeeded"


def test_same_key_replays_and_other_body_is_422(app, client, emulator, customer, product,
                                                api_token, limits_off):
    """RELIABILITY 10: same key + same body → the identical stored response; other body → 422."""
    card = saved_card(emulator.url, customer)
    headers = {**bearer(api_token(customer)), "Idempotency-Key": "order-7"}
    body = {"items": [{"product_id": product.id, "quantity": 1}], "payment_method_id": card}
    first = client.post("/api/payments/process", json=body, headers=headers)
    again = client.post("/api/payments/process", json=body, headers=headers)
    assert first.status_code == again.status_code == 201
    assert first.get_json() == again.get_json()
    other = client.post("/api/payments/process", headers=headers, json={
        "items": [{"product_id": product.id, "quantity": 3}], "payment_method_id": card})
    assert other.status_code == 422
    assert other.get_json()["error"]["code"] == "idempotency_key_reused"
    intents, charges = stripe_side(emulator.url, customer)
    assert (len(intents), len(charges)) == (1, 1)


@pytest.mark.parametrize(("number", "decline_code"), [
    ("4000000000000341", "card_declined"),
])
def test_a_declined_saved_card_is_402_with_a_friendly_message(
        app, client, emulator, customer, product, api_token, limits_off, number, decline_code):
    """RELIABILITY 16: a decline → 402 card_declined, a message a customer can act on, the
    payment beside the error, and nothing charged."""
    card = saved_card(emulator.url, customer, number)
    response = client.post("/api/payments/process", headers=bearer(api_token(customer)), json={
        "items": [{"product_id": product.id, "quantity": 1}], "payment_method_id": card})
    assert response.status_code == 402, response.get_json()
    body = response.get_json()
    assert body["error"]["code"] == "card_declined"
    assert body["error"].get("decline_code")
    message = body["error"]["message"]
    assert "declined" in message.lower() and "stripe" not in message.lower()
    assert body["payment"]["status"] == "failed"
    assert stripe_side(emulator.url, customer)[1] == []


@pytest.mark.parametrize(("number", "code", "words"), [
    ("4000000000000002", "generic_decline", "declined"),  # card_declined, generic
    ("4000000000009995", "insufficient_funds", "insufficient funds"),
    ("4000000000000069", "expired_card", "expired"),
    ("4000000000000127", "incorrect_cvc", "security code"),
])
def test_new_card_declines_leave_the_payment_failed_with_the_reason(
        app, client, emulator, customer, product, api_token, limits_off, number, code, words):
    """RELIABILITY 16: card_declined, insufficient_funds, expired_card, incorrect_cvc on a new
    card (confirmed by Stripe.js) → the payment page shows it failed, with a friendly text."""
    from tests.conftest import STRIPE_TEST_PUBLISHABLE_KEY

    token = api_token(customer)
    response = client.post("/api/payments/process", headers=bearer(token), json={
        "items": [{"product_id": product.id, "quantity": 1}]})
    assert response.status_code == 201
    created = response.get_json()
    secret = created["client_secret"]
    confirm = requests.post(
        f"{emulator.url}/v1/payment_intents/{secret.split('_secret_')[0]}/confirm", data={
            "key": STRIPE_TEST_PUBLISHABLE_KEY, "client_secret": secret,
            "payment_method_data[type]": "card", "payment_method_data[card][number]": number,
            "payment_method_data[card][exp_month]": "12",
            "payment_method_data[card][exp_year]": "2031",
            "payment_method_data[card][cvc]": "123"}, timeout=10)
    assert confirm.status_code == 402
    # The return page (or the webhook) re-reads the intent: the row must say why.
    page = client.get(f"/checkout/complete?payment={created['payment']['id']}",
                      headers=bearer(token))
    assert page.status_code == 200
    payment = client.get(f"/api/payments/{created['payment']['id']}",
                         headers=bearer(token)).get_json()["payment"]
    assert payment["status"] == "failed"
    assert payment["failure"] and payment["failure"]["message"]
    assert payment["failure"]["code"] == code
    assert words in payment["failure"]["message"].lower()


@pytest.mark.parametrize("success", [True, False])
def test_three_d_secure_success_and_failure_are_both_handled(
        app, client, emulator, customer, product, api_token, limits_off, success):
    """RELIABILITY 16: 3DS required → requires_action; completing it succeeds, failing it
    leaves the payment failed (and no charge)."""
    from tests.conftest import STRIPE_TEST_PUBLISHABLE_KEY

    card = saved_card(emulator.url, customer, "4000002760003184")
    token = api_token(customer)
    response = client.post("/api/payments/process", headers=bearer(token), json={
        "items": [{"product_id": product.id, "quantity": 1}], "payment_method_id": card})
    assert response.status_code == 201, response.get_json()
    body = response.get_json()
    assert body["requires_action"] is True
    assert body["payment"]["status"] == "requires_action"
    secret = body["client_secret"]
    done = requests.post(
        f"{emulator.url}/v1/payment_intents/{secret.split('_secret_')[0]}/_authenticate",
        params={"success": "true" if success else "false"},
        data={"key": STRIPE_TEST_PUBLISHABLE_KEY, "client_secret": secret}, timeout=10)
    assert done.status_code == 200
    page = client.get(f"/checkout/complete?payment={body['payment']['id']}",
                      headers=bearer(token))
    assert page.status_code == 200
    payment = client.get(f"/api/payments/{body['payment']['id']}",
                         headers=bearer(token)).get_json()["payment"]
    assert payment["status"] == ("succeeded" if success else "failed")
    assert len(stripe_side(emulator.url, customer)[1]) == (1 if success else 0)


@pytest.mark.parametrize("quantity", [0, -1, 1.5, "1e3", "2", 10**12, None, True, [1]])
def test_bad_quantities_are_400_and_nothing_is_created(app, client, emulator, customer,
                                                       product, api_token, limits_off,
                                                       quantity):
    """RELIABILITY 21: quantity 0, negative, fractional, "1e3", huge (and other non-integers)
    → 400 invalid_request; no payment, no PaymentIntent."""
    from payments_site.extensions import db
    from payments_site.models import Payment

    response = client.post("/api/payments/process", headers=bearer(api_token(customer)), json={
        "items": [{"product_id": product.id, "quantity": quantity}]})
    assert response.status_code == 400, (quantity, response.get_json())
    assert response.get_json()["error"]["code"] == "invalid_request"
    assert db.session.query(Payment).count() == 0
    assert stripe_side(emulator.url, customer)[0] == []


def test_client_amount_currency_and_status_are_ignored(app, client, emulator, customer,
                                                       product, api_token, limits_off):
    """RELIABILITY 21: the price comes from the catalog, whatever the client sends."""
    card = saved_card(emulator.url, customer)
    response = client.post("/api/payments/process", headers=bearer(api_token(customer)), json={
        "items": [{"product_id": product.id, "quantity": 2, "unit_amount": 1}],
        "payment_method_id": card, "amount": 1, "currency": "jpy", "status": "succeeded"})
    assert response.status_code == 201
    payment = response.get_json()["payment"]
    assert (payment["amount"], payment["currency"]) == (2 * 1999, "usd")
    intents, charges = stripe_side(emulator.url, customer)
    assert [(i.amount, i.currency) for i in intents] == [(3998, "usd")]
    assert [c.amount for c in charges] == [3998]


def _fault(emulator_url: str, **spec: Any) -> None:
    requests.post(f"{emulator_url}/_config/faults", json={
        "method": "POST", "path_prefix": "/v1/payment_intents", **spec},
        timeout=5).raise_for_status()


@pytest.mark.parametrize("spec", [
    {"status": 500, "times": 2},                          # 5xx
    {"status": 0, "times": 2},                            # connection reset
    {"status": 0, "after": True, "times": 2},             # reset after Stripe acted
    {"status": 500, "delay_s": 7.0, "times": 1},          # timeout (client waits 5 s)
])
def test_faults_on_create_are_retried_into_one_intent(app, client, emulator, customer,
                                                      product, api_token, limits_off, spec):
    """RELIABILITY 13: timeout / reset / 5xx on create → retried with the same idempotency
    key; exactly one PaymentIntent, and the payment knows it."""
    from payments_site.extensions import db
    from payments_site.models import Payment

    card = saved_card(emulator.url, customer)
    _fault(emulator.url, **spec)
    response = client.post("/api/payments/process", headers=bearer(api_token(customer)), json={
        "items": [{"product_id": product.id, "quantity": 1}], "payment_method_id": card})
    assert response.status_code == 201, response.get_json()
    intents, charges = stripe_side(emulator.url, customer)
    assert len(intents) == 1 and len(charges) == 1
    db.session.expire_all()
    assert db.session.query(Payment).one().stripe_payment_intent_id == intents[0].id


def test_stripe_429_backs_off_then_gives_a_clear_try_again(app, client, emulator, customer,
                                                           product, api_token, limits_off):
    """RELIABILITY 14: Stripe's 429 → bounded backoff; past it the customer gets 503 "try
    again", nothing is charged or half-done, and trying again later pays once."""
    import time

    card = saved_card(emulator.url, customer)
    auth = bearer(api_token(customer))
    body = {"items": [{"product_id": product.id, "quantity": 1}], "payment_method_id": card}
    _fault(emulator.url, status=429, times=2)
    assert client.post("/api/payments/process", headers=auth, json=body).status_code == 201

    body = {"items": [{"product_id": product.id, "quantity": 2}], "payment_method_id": card}
    _fault(emulator.url, status=429, times=50)
    started = time.monotonic()
    response = client.post("/api/payments/process", headers=auth, json=body)
    assert time.monotonic() - started < 10, "the backoff is not bounded"
    assert response.status_code == 503, response.get_json()
    error = response.get_json()["error"]
    assert error["code"] == "payment_provider_unavailable"
    assert "try again" in error["message"].lower()
    assert len(stripe_side(emulator.url, customer)[1]) == 1  # only the first payment charged

    requests.delete(f"{emulator.url}/_config/faults", timeout=5).raise_for_status()
    response = client.post("/api/payments/process", headers=auth, json=body)
    assert response.status_code == 201 and response.get_json()["payment"]["status"] == \
        "succeeded"
    intents, charges = stripe_side(emulator.url, customer)
    assert (len(intents), len(charges)) == (2, 2)
