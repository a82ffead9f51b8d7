"""Events nobody can apply stop retrying: real public payloads (tests/fixtures/stripe_events/)
whose object Stripe does not have, or a dispute on a charge of no payment of ours, are
re-checked once and then `ignored` with their reason, shown on the admin webhooks page."""

from __future__ import annotations

import copy
import json
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import stripe
from flask.testing import FlaskClient

from payments_site.extensions import db
from payments_site.models import WebhookEvent, utcnow
from payments_site.services import sweeper, webhooks
from tests.webhooks.conftest import event_rows, post_event

FIXTURES = Path(__file__).parent.parent / "fixtures" / "stripe_events"
MISSING = ("Stripe has no such object (resource_missing): it is not in this account, or it "
           "was deleted")
NOT_OURS = "the dispute is on a charge of no payment of ours"


def _fixture(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((FIXTURES / name).read_text())
    return data


def _event(event_id: str, event_type: str, data: dict[str, Any]) -> bytes:
    """The source's `data` in Stripe's event envelope (an automatic event: no request)."""
    return json.dumps({"id": event_id, "object": "event", "type": event_type,
                       "api_version": "2026-10-28.endive", "created": int(time.time()),
                       "livemode": False, "pending_webhooks": 1,
                       "request": {"id": None, "idempotency_key": None},
                       "data": data}).encode()


def _deliver_and_run(client: FlaskClient, run_jobs: Any, payload: bytes) -> WebhookEvent:
    assert post_event(client, payload).status_code == 200
    run_jobs(include_scheduled=False)
    [row] = event_rows()
    return row


def _recheck_is_last(row: WebhookEvent, reason: str, error: str) -> None:
    """First run: failed, one re-check due RETRY_DELAYS[0] later. The re-check: ignored with
    the reason, and never due again."""
    assert (row.status, row.attempts, row.reason) == ("failed", 1, None)
    assert error in (row.last_error or "")
    assert row.next_attempt_at is not None
    assert row.next_attempt_at <= utcnow() + timedelta(seconds=webhooks.RETRY_DELAYS[0])
    due = sweeper.due_webhook_events(utcnow() + timedelta(seconds=webhooks.RETRY_DELAYS[0] + 1))
    assert due == [row.id]

    assert webhooks.process_event(row.id) == "ignored"
    [row] = event_rows()
    assert (row.status, row.attempts, row.reason) == ("ignored", 2, reason)
    assert row.next_attempt_at is None and row.processed_at is not None
    assert sweeper.due_webhook_events(utcnow() + timedelta(days=2)) == []
    assert sweeper.due_webhook_events(utcnow() + timedelta(days=2), everything=True) == []


def test_a_charge_refunded_of_another_account_is_ignored_after_one_recheck(
        app, client, run_jobs):
    """pay-rails/pay's charge.refunded: its PaymentIntent is not in our Stripe account."""
    payload = _event("evt_pay_charge_refunded", "charge.refunded",
                     _fixture("pay_charge_refunded.json"))
    row = _deliver_and_run(client, run_jobs, payload)
    _recheck_is_last(row, MISSING, "ResourceMissing")


def test_a_dispute_stripe_does_not_have_is_ignored_after_one_recheck(app, client, run_jobs):
    """stripe/openapi's example dispute: no such dispute in our account."""
    payload = _event("evt_openapi_dispute", "charge.dispute.created",
                     _fixture("openapi_dispute.json"))
    row = _deliver_and_run(client, run_jobs, payload)
    _recheck_is_last(row, MISSING, "ResourceMissing")


def test_a_dispute_on_a_charge_that_is_not_ours_is_ignored_with_its_reason(
        app, client, run_jobs, sc: stripe.StripeClient, admin, login_as):
    """A real dispute (the emulator opens one on 0259) on a charge no payment of ours made,
    delivered as the public example dispute with its id and charge replaced."""
    method = sc.v1.payment_methods.create({"type": "card", "card": {
        "number": "4000000000000259", "exp_month": 12, "exp_year": 2030, "cvc": "123"}})
    intent = sc.v1.payment_intents.create({"amount": 1000, "currency": "usd",
                                           "payment_method": method.id, "confirm": True,
                                           "allowed_payment_method_types": ["card"]})
    deadline = time.monotonic() + 10
    while not (found := sc.v1.disputes.list({"payment_intent": intent.id}).data):
        assert time.monotonic() < deadline, "the emulator opened no dispute"
        time.sleep(0.05)
    data = copy.deepcopy(_fixture("openapi_dispute.json"))
    data["object"].update(id=found[0].id, charge=str(intent.latest_charge),
                          payment_intent=intent.id)
    row = _deliver_and_run(client, run_jobs, _event("evt_dispute_not_ours",
                                                    "charge.dispute.created", data))
    _recheck_is_last(row, NOT_OURS, "DisputedPaymentUnknown")

    page = login_as(admin)
    html = page.get("/admin/webhooks?status=ignored").get_data(as_text=True)
    assert "evt_dispute_not_ours" in html and NOT_OURS in html
    assert "evt_dispute_not_ours" not in page.get("/admin/webhooks?status=failed").get_data(
        as_text=True)


def test_an_event_that_applies_on_its_recheck_is_processed(app, client, run_jobs, sc,
                                                           make_payment):
    """The re-check is a real one: an object that exists by then is applied, not ignored."""
    payment = make_payment()
    intent = sc.v1.payment_intents.retrieve(str(payment.stripe_payment_intent_id))
    data = {"object": {"id": "pi_not_yet", "object": "payment_intent"}}
    row = _deliver_and_run(client, run_jobs, _event("evt_late", "payment_intent.succeeded",
                                                    data))
    assert row.status == "failed"
    # The event's object "appears" (here: the payload is the real intent's on the re-check).
    stored = db.session.get_one(WebhookEvent, row.id)
    stored.payload = _event("evt_late", "payment_intent.succeeded",
                            {"object": {"id": intent.id, "object": "payment_intent"}}).decode()
    db.session.commit()
    assert webhooks.process_event(row.id) == "processed"
    [row] = event_rows()
    assert (row.status, row.reason) == ("processed", None)


def test_unhandled_types_say_why_they_are_ignored(app, client):
    payload = _event("evt_plan", "plan.created", {"object": {"id": "price_1", "object": "plan"}})
    assert post_event(client, payload).status_code == 200
    [row] = event_rows()
    assert (row.status, row.reason) == ("ignored", "no handler for this event type")
