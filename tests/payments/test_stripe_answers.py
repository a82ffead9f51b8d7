"""What Stripe says about its own answers: a saved 500 is final for its key, 409 means the
key's first request still runs, and Radar's verdicts reach the customer and the admin.

Each runs end to end: the real SDK against the emulator, whose fault injector acts inside
its idempotency layer (an `after: true` 500 is saved under the key and replayed with
`Stripe-Should-Retry: false`; a delay holds the key, so a retry gets 409).
"""

from __future__ import annotations

import logging
import time

import pytest
import stripe
from sqlalchemy import select

from payments_site import stripe_gateway
from payments_site.extensions import db
from payments_site.models import Payment
from payments_site.services import payments
from tests.payments.conftest import intents_of

_RETRY_LOG = "stripe payment_intents.create failed"


def _payment() -> Payment:
    db.session.expire_all()
    payment = db.session.scalar(select(Payment))
    assert payment is not None
    return payment


def _pay_new_card(sc: stripe.StripeClient, intent_id: str, number: str = "4242424242424242"
                  ) -> None:
    pm = sc.v1.payment_methods.create({"type": "card", "card": {
        "number": number, "exp_month": 12, "exp_year": 2030, "cvc": "123"}})
    sc.v1.payment_intents.confirm(intent_id, {"payment_method": pm.id})


def test_a_saved_500_for_the_create_fails_the_payment_and_the_retry_uses_a_new_key(
        app, shopper, customer, mug, sc, fault, caplog, runner):
    """Stripe made the intent and saved a 500 as the answer: every retry with that key gets
    the same 500 (`Stripe-Should-Retry: false`), so the gateway does not retry, the payment
    fails with plain words, the customer's next try makes a new intent with a new key and
    pays once, and reconcile cancels the intent the failed create left behind."""
    app.config["STRIPE_RETRY_BASE_DELAY"] = 0.01
    body = {"items": [{"product_id": mug.id, "quantity": 1}], "checkout_attempt": "a" * 24}
    fault(status=500, after=True, times=1)
    with caplog.at_level(logging.WARNING, logger="payments_site.stripe_gateway"):
        response = shopper.post("/api/payments/process", json=body)
    assert response.status_code == 502, response.get_json()
    assert response.get_json()["error"]["message"] == (
        "We could not start this payment, and nothing was charged. Please try again.")
    assert not [r for r in caplog.records if _RETRY_LOG in r.getMessage()
                and "retry" in r.getMessage()]  # Stripe said a retry could only replay
    payment = _payment()
    assert (payment.status, payment.create_attempts, payment.stripe_payment_intent_id) == \
        ("failed", 1, None)
    left_behind = intents_of(sc, customer)
    assert [i.metadata["payment_id"] for i in left_behind] == [payment.public_id]

    # The customer tries again (same page, same attempt): a new key, a new intent, paid once.
    again = shopper.post("/api/payments/process", json=body)
    assert again.status_code == 201, again.get_json()
    new_intent = again.get_json()["payment"]["stripe_payment_intent_id"]
    assert again.get_json()["payment"]["id"] == payment.public_id
    assert new_intent != left_behind[0].id
    _pay_new_card(sc, new_intent)
    html = shopper.get(f"/checkout/complete?payment={payment.public_id}").get_data(
        as_text=True)
    assert "Your payment was successful" in html
    assert _payment().status == "succeeded"

    result = runner.invoke(args=["payments", "reconcile"])
    assert result.exit_code == 0, result.output
    assert (f"{payment.public_id}: Stripe saved a 500 for its PaymentIntent create; canceled "
            f"{left_behind[0].id} that it left unconfirmed; the payment is succeeded with "
            f"{new_intent}") in result.output
    assert sc.v1.payment_intents.retrieve(left_behind[0].id).status == "canceled"
    charges = sc.v1.charges.list({"customer": customer.stripe_customer_id}).data
    assert len(charges) == 1 and charges[0].payment_intent == new_intent
    # The canceled leftover is never followed: the payment stays paid.
    assert payments.sync_payment_intent(left_behind[0].id) is None
    assert _payment().status == "succeeded"
    # A second reconcile finds nothing more to do for it.
    second = runner.invoke(args=["payments", "reconcile"])
    assert payment.public_id not in second.output


def test_reconcile_says_what_it_did_for_a_failed_create_nobody_retried(
        app, shopper, customer, mug, sc, fault, runner):
    fault(status=500, after=True, times=1)
    response = shopper.post("/api/payments/process", json={
        "items": [{"product_id": mug.id, "quantity": 1}]})
    assert response.status_code == 502
    payment = _payment()
    [leftover] = intents_of(sc, customer)
    result = runner.invoke(args=["payments", "reconcile"])
    assert result.exit_code == 0, result.output
    assert (f"{payment.public_id}: Stripe saved a 500 for its PaymentIntent create; canceled "
            f"{leftover.id} that it left unconfirmed; the customer can try again with a new "
            "key") in result.output
    # Its payment_intent.canceled event re-reads the leftover: never adopted by the payment.
    assert payments.sync_payment_intent(leftover.id) is None
    payment = _payment()
    assert (payment.status, payment.needs_reconcile, payment.stripe_payment_intent_id) == \
        ("failed", False, None)
    # Still retryable by the customer: history offers Try again.
    page = shopper.get(f"/account/payments/{payment.public_id}").get_data(as_text=True)
    assert "Try again" in page


def test_the_key_in_use_is_still_in_flight_not_a_failure(app, shopper, customer, mug, sc,
                                                         fault):
    """The first create still runs at Stripe when our retries give up (409
    idempotency_key_in_use): the client is told to try again in a moment, the payment keeps
    its key, and the next try gets that same intent."""
    app.config["STRIPE_TIMEOUT"] = 0.5
    app.config["STRIPE_MAX_RETRIES"] = 1
    app.config["STRIPE_RETRY_BASE_DELAY"] = 0.01
    app.extensions.pop("stripe_client", None)
    body = {"items": [{"product_id": mug.id, "quantity": 1}]}
    try:
        fault(status=None, delay_s=2.0, after=True, times=1)
        response = shopper.post("/api/payments/process", json=body)
    finally:
        app.extensions.pop("stripe_client", None)
    assert response.status_code == 503, response.get_json()
    assert response.get_json()["error"]["message"] == (
        "This payment step is still being processed. Please try again in a moment.")
    payment = _payment()
    assert (payment.status, payment.create_attempts, payment.needs_reconcile) == \
        ("requires_payment_method", 0, True)
    assert len(intents_of(sc, customer)) <= 1
    time.sleep(2.0)  # the first request finishes
    again = shopper.post("/api/payments/process", json=body)
    assert again.status_code == 201, again.get_json()
    [intent] = intents_of(sc, customer)
    assert again.get_json()["payment"]["stripe_payment_intent_id"] == intent.id
    assert _payment().create_attempts == 0


@pytest.mark.parametrize(("header", "status", "retried"), [
    ("false", 500, False), ("true", 400, True), (None, 500, True), (None, 400, False),
    ("false", 409, False)])
def test_stripe_should_retry_wins_both_ways(header, status, retried):
    """The header decides when Stripe sends it; without it, 5xx and 409 are retried."""
    headers = {"stripe-should-retry": header} if header else {}
    error_class = stripe.InvalidRequestError if status == 400 else stripe.APIError
    if error_class is stripe.InvalidRequestError:
        error = error_class("refused", None, http_status=status, headers=headers)
    else:
        error = error_class("failed", http_status=status, headers=headers)
    assert stripe_gateway._is_retryable(error) is retried


def test_radar_block_is_a_plain_decline_and_the_admin_sees_the_risk(
        app, shopper, customer, admin, login_as, mug, make_card, sc):
    pm_id = make_card(customer, "4000000000004954", attach=False)
    response = shopper.post("/api/payments/process", json={
        "items": [{"product_id": mug.id, "quantity": 1}], "payment_method_id": pm_id})
    assert response.status_code == 402, response.get_json()
    error = response.get_json()["error"]
    assert error["message"] == "Your card was declined. Try another card, or contact your bank."
    assert "fraud" not in error["message"].lower() and "radar" not in error["message"].lower()
    payment = _payment()
    assert (payment.status, payment.outcome_type, payment.risk_level, payment.risk_score) == \
        ("failed", "blocked", "highest", 95)
    page = shopper.get(f"/account/payments/{payment.public_id}").get_data(as_text=True)
    assert "Your card was declined. Try another card, or contact your bank." in page
    assert "blocked" not in page and "highest" not in page  # Stripe's words stay on admin pages
    detail = login_as(admin).get(f"/admin/payments/{payment.public_id}").get_data(as_text=True)
    assert "risk level <strong>highest</strong>, score 95" in detail
    assert '<span class="mono">blocked</span>' in detail


def test_velocity_decline_tells_the_customer_to_wait(shopper, customer, mug, make_card):
    pm_id = make_card(customer, "4000000000006975", attach=False)
    response = shopper.post("/api/payments/process", json={
        "items": [{"product_id": mug.id, "quantity": 1}], "payment_method_id": pm_id})
    assert response.status_code == 402
    assert response.get_json()["error"]["message"] == (
        "Your card was declined because it has been used too many times recently. Wait a "
        "while or use another card.")
    payment = _payment()
    assert (payment.outcome_type, payment.failure_decline_code) == \
        ("issuer_declined", "card_velocity_exceeded")


def test_elevated_risk_is_paid_and_flagged_for_the_admin(shopper, customer, admin, login_as,
                                                         mug, sc):
    """9235: Stripe lets it through (Radar's default rules block only the highest risk); the
    admin's list and page flag the elevated risk."""
    body = shopper.post("/api/payments/process", json={
        "items": [{"product_id": mug.id, "quantity": 1}]}).get_json()
    _pay_new_card(sc, body["payment"]["stripe_payment_intent_id"], "4000000000009235")
    shopper.get(f"/checkout/complete?payment={body['payment']['id']}")
    payment = _payment()
    assert (payment.status, payment.risk_level, payment.risk_score, payment.outcome_type) == \
        ("succeeded", "elevated", 70, "authorized")
    admin_session = login_as(admin)
    listing = admin_session.get("/admin/payments").get_data(as_text=True)
    assert 'data-risk-level="elevated">Risk elevated (70)' in listing
