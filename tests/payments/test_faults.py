"""Stripe failing: retried with the same idempotency key, never a duplicate intent."""

from __future__ import annotations

import logging
import re

import requests
from sqlalchemy import select

from payments_site.extensions import db
from payments_site.models import Payment
from payments_site.services.catalog import create_product
from tests.payments.conftest import intents_of


def test_5xx_on_create_is_retried_with_the_same_key(shopper, customer, mug, sc, fault):
    """The first create takes effect and its answer is lost, the next fails with a 500 before
    reaching Stripe: only a retry with the SAME idempotency key gets the first intent back
    instead of a new one. (A 500 Stripe answers after acting is saved under the key and
    replayed to every retry: https://docs.stripe.com/api/idempotent_requests.)"""
    fault(status=0, after=True, times=1)
    fault(status=500, times=1)
    response = shopper.post("/api/payments/process", json={
        "items": [{"product_id": mug.id, "quantity": 1}]})
    assert response.status_code == 201, response.get_json()
    payment = response.get_json()["payment"]
    intents = sc.v1.payment_intents.list({"limit": 100}).data
    assert [i.metadata["payment_id"] for i in intents] == [payment["id"]]
    assert intents[0].id == payment["stripe_payment_intent_id"]


def test_a_lost_response_after_create_does_not_duplicate(shopper, customer, mug, sc, fault):
    # Stripe creates the intent, then the connection drops before we hear back; our retry
    # with the same key must get that same intent, not a second one.
    fault(status=0, after=True, times=1)
    fault(status=503, after=True, times=1)
    response = shopper.post("/api/payments/process", json={
        "items": [{"product_id": mug.id, "quantity": 1}]})
    assert response.status_code == 201, response.get_json()
    intents = intents_of(sc, customer)
    assert len(intents) == 1
    assert intents[0].id == response.get_json()["payment"]["stripe_payment_intent_id"]


def test_timeouts_are_retried(app, shopper, customer, mug, sc, fault):
    """The first create takes effect but answers after the client gave up; while it still
    runs, Stripe answers a retry with the same key 409 idempotency_key_in_use, so the retries
    back off until it has finished and then get its intent."""
    app.config["STRIPE_TIMEOUT"] = 0.5
    app.config["STRIPE_RETRY_BASE_DELAY"] = 0.3  # the last retry comes after the 1 s hold
    app.extensions.pop("stripe_client", None)
    try:
        fault(status=None, delay_s=1.0, after=True, times=1)
        response = shopper.post("/api/payments/process", json={
            "items": [{"product_id": mug.id, "quantity": 1}]})
    finally:
        app.extensions.pop("stripe_client", None)
    assert response.status_code == 201, response.get_json()
    assert len(intents_of(sc, customer)) == 1


def test_exhausted_retries_mark_the_payment_and_the_next_attempt_reconciles(
        shopper, customer, mug, sc, fault, emulator):
    body = {"items": [{"product_id": mug.id, "quantity": 1}]}
    fault(status=0, after=True, times=10)  # created at Stripe, every answer lost
    response = shopper.post("/api/payments/process", json=body)
    assert response.status_code == 503
    assert response.get_json()["error"]["code"] == "payment_provider_unavailable"
    row = db.session.scalar(select(Payment))
    db.session.refresh(row)
    assert row.needs_reconcile is True and row.stripe_payment_intent_id is None
    assert requests.delete(f"{emulator.url}/_config/faults", timeout=5).ok
    again = shopper.post("/api/payments/process", json=body)
    assert again.status_code == 201
    assert again.get_json()["payment"]["id"] == row.public_id
    db.session.refresh(row)
    assert row.needs_reconcile is False
    intents = intents_of(sc, customer)
    assert [i.id for i in intents] == [row.stripe_payment_intent_id]


_RETRY_LINE = re.compile(r"stripe payment_intents\.create failed \(\w+, http (\d+)\); "
                         r"retry (\d+) in ([\d.]+)s")


def _retries(caplog) -> list[tuple[int, int, float]]:
    """(http status, retry number, chosen delay) from the gateway's retry log lines."""
    found = []
    for record in caplog.records:
        match = _RETRY_LINE.search(record.getMessage())
        if match:
            found.append((int(match[1]), int(match[2]), float(match[3])))
    return found


def test_429_backs_off_longer_than_5xx_then_succeeds(app, shopper, customer, mug, sc, fault,
                                                     caplog):
    """A 429 is retried with its own, longer backoff: every wait after a 429 is longer than
    any wait after a 5xx at the same retry (read from the gateway's log of the delay it
    chose, not from a clock)."""
    base = 0.05
    app.config["STRIPE_RETRY_BASE_DELAY"] = base
    other = create_product("Tea towel", 900, "usd")
    with caplog.at_level(logging.WARNING, logger="payments_site.stripe_gateway"):
        fault(status=500, times=2)
        assert shopper.post("/api/payments/process", json={
            "items": [{"product_id": other.id, "quantity": 1}]}).status_code == 201
        server_errors = _retries(caplog)
        caplog.clear()
        fault(status=429, times=2)
        response = shopper.post("/api/payments/process", json={
            "items": [{"product_id": mug.id, "quantity": 1}]})
        rate_limited = _retries(caplog)
    assert response.status_code == 201, response.get_json()
    assert [(s, n) for s, n, _ in server_errors] == [(500, 1), (500, 2)]
    assert [(s, n) for s, n, _ in rate_limited] == [(429, 1), (429, 2)]
    tolerance = 0.005  # the log rounds to 0.01 s
    for (_, n, after_5xx), (_, _, after_429) in zip(server_errors, rate_limited, strict=True):
        ceiling_5xx = base * 2 ** (n - 1)
        assert after_5xx <= ceiling_5xx + tolerance
        assert after_429 >= 2 * ceiling_5xx - tolerance > after_5xx
    assert len(intents_of(sc, customer)) == 2  # one per checkout, none from the retries


def test_429_waits_at_least_what_retry_after_asks(app, shopper, customer, mug, sc, fault,
                                                 caplog):
    """Stripe's 429 says how long to wait (`Retry-After`, one second from the emulator, as the
    official SDK honours it): our own backoff, tiny here, never cuts that short."""
    app.config["STRIPE_RETRY_BASE_DELAY"] = 0.01
    with caplog.at_level(logging.WARNING, logger="payments_site.stripe_gateway"):
        fault(status=429, times=1)
        response = shopper.post("/api/payments/process", json={
            "items": [{"product_id": mug.id, "quantity": 1}]})
        waits = _retries(caplog)
    assert response.status_code == 201, response.get_json()
    assert [(status, n) for status, n, _ in waits] == [(429, 1)]
    assert waits[0][2] >= 1.0
    assert len(intents_of(sc, customer)) == 1


def test_confirm_failing_leaves_no_second_charge(shopper, customer, mug, make_card, sc, fault):
    pm_id = make_card(customer)
    body = {"items": [{"product_id": mug.id, "quantity": 1}], "payment_method_id": pm_id}
    # The confirm charges the card, then its answer is lost twice (a 500 answered after the
    # charge would be saved under the key and replayed: Stripe's idempotency).
    fault(path_prefix="/v1/payment_intents/", status=0, after=True, times=2)
    response = shopper.post("/api/payments/process", json=body)
    assert response.status_code == 201, response.get_json()
    assert response.get_json()["payment"]["status"] == "succeeded"
    charges = sc.v1.charges.list({"customer": customer.stripe_customer_id}).data
    assert len(charges) == 1


def test_a_create_stripe_refuses_is_not_left_for_reconcile(shopper, customer, mug, sc, runner):
    """Stripe answers the create with a definite 400 (the customer was deleted on Stripe's
    side): nothing was made, so the payment is not flagged as unknown and reconcile has no
    intent to look for; the caller gets a clear error, not a 5xx."""
    first = shopper.post("/api/payments/process", json={
        "items": [{"product_id": mug.id, "quantity": 1}]})
    assert first.status_code == 201
    db.session.refresh(customer)
    sc.v1.customers.delete(customer.stripe_customer_id)

    response = shopper.post("/api/payments/process", json={
        "items": [{"product_id": mug.id, "quantity": 2}]})
    assert 400 <= response.status_code < 500, response.get_json()
    assert set(response.get_json()["error"]) >= {"code", "message"}
    db.session.expire_all()
    refused = db.session.scalars(select(Payment).where(
        Payment.stripe_payment_intent_id.is_(None))).all()
    assert len(refused) == 1 and refused[0].amount == 2 * mug.unit_amount
    assert refused[0].needs_reconcile is False
    result = runner.invoke(args=["payments", "reconcile"])
    assert result.exit_code == 0, result.output
    assert refused[0].public_id not in result.output
