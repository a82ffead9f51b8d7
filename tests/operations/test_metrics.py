"""GET /metrics: who may read it, and that each thing that happens moves the right metric.

Every figure is read the way Prometheus reads it (a scrape of /metrics, parsed with
prometheus_client's own parser), before and after the action.
"""

from __future__ import annotations

import json
import re
import socket
import time

from payments_site import jobs
from payments_site.extensions import db
from payments_site.models import OutboundEmail, Payment
from payments_site.services import receipts
from payments_site.services.payments import sync_payment_intent
from tests.conftest import WEBHOOK_SECRET
from tests.helpers import sign_payload
from tests.operations.conftest import METRICS_TOKEN

PROCESS = "/api/payments/process"
WEBHOOK = "/api/webhooks/stripe"


def _pay(shopper, mug, pm_id, quantity=1):
    return shopper.post(PROCESS, json={"items": [{"product_id": mug.id, "quantity": quantity}],
                                       "payment_method_id": pm_id})


def _signed_event(client, event_id, event_type, obj, *, created=None, secret=WEBHOOK_SECRET):
    payload = json.dumps({"id": event_id, "object": "event", "type": event_type,
                          "api_version": "2024-06-20",
                          "created": int(time.time()) if created is None else created,
                          "livemode": False, "data": {"object": obj}}).encode()
    return client.post(WEBHOOK, data=payload, content_type="application/json",
                       headers={"Stripe-Signature": sign_payload(payload, secret)})


# --- who may read it --------------------------------------------------------------------------

def test_without_a_token_setting_metrics_does_not_exist(app, client):
    app.config["METRICS_TOKEN"] = None
    assert client.get("/metrics").status_code == 404
    assert client.get("/metrics", headers={"Authorization": "Bearer anything"}).status_code \
        == 404


def test_metrics_answers_only_the_operators_token(app, client):
    app.config["METRICS_TOKEN"] = METRICS_TOKEN
    for headers in ({}, {"Authorization": "Bearer wrong-token"},
                    {"Authorization": f"Basic {METRICS_TOKEN}"},
                    {"Authorization": f"Bearer {METRICS_TOKEN}x"},
                    {"Authorization": "Bearer "}):
        response = client.get("/metrics", headers=headers)
        assert response.status_code == 401, headers
        assert "payments_" not in response.get_data(as_text=True)
    good = client.get("/metrics", headers={"Authorization": f"Bearer {METRICS_TOKEN}"})
    assert good.status_code == 200
    assert "payments_http_request_duration_seconds" in good.get_data(as_text=True)


# --- checkouts ------------------------------------------------------------------------------

def test_a_checkout_counts_succeeded_captured_and_its_stripe_calls(
        scrape, shopper, customer, mug, make_card):
    pm_id = make_card(customer)
    before = scrape()
    response = _pay(shopper, mug, pm_id, quantity=2)
    assert response.status_code == 201, response.get_json()
    after = scrape()

    amount = response.get_json()["payment"]["amount"]
    assert amount == 3998
    assert after.value("payments_checkouts_total", outcome="succeeded", currency="usd") - \
        before.value("payments_checkouts_total", outcome="succeeded", currency="usd") == 1
    assert after.value("payments_captured_minor_units_total", currency="usd") - \
        before.value("payments_captured_minor_units_total", currency="usd") == amount
    for operation in ("payment_intents.create", "payment_intents.confirm"):
        assert after.value("payments_stripe_request_duration_seconds_count",
                           operation=operation) - \
            before.value("payments_stripe_request_duration_seconds_count",
                         operation=operation) == 1, operation
    # The request itself, by its route template and status class.
    assert after.value("payments_http_request_duration_seconds_count", method="POST",
                       route=PROCESS, status="2xx") - \
        before.value("payments_http_request_duration_seconds_count", method="POST",
                     route=PROCESS, status="2xx") == 1


def test_a_decline_counts_declined_and_the_stripe_error(scrape, shopper, customer, mug,
                                                         make_card):
    pm_id = make_card(customer, "4000000000000002", attach=False)
    before = scrape()
    response = _pay(shopper, mug, pm_id)
    assert response.status_code == 402, response.get_json()
    # The same decline read again (a webhook, a sync) is the same checkout: counted once.
    assert sync_payment_intent(
        response.get_json()["payment"]["stripe_payment_intent_id"]).status == "failed"
    after = scrape()

    def moved(name, **labels):
        return after.value(name, **labels) - before.value(name, **labels)

    assert moved("payments_checkouts_total", outcome="declined", currency="usd") == 1
    assert moved("payments_checkouts_total", outcome="succeeded", currency="usd") == 0
    assert moved("payments_captured_minor_units_total", currency="usd") == 0
    assert moved("payments_stripe_errors_total", operation="payment_intents.confirm",
                 error="CardError") == 1
    assert moved("payments_http_request_duration_seconds_count", method="POST",
                 route=PROCESS, status="4xx") == 1


def test_a_stripe_failure_is_retried_and_counted(scrape, shopper, customer, mug, make_card,
                                                 fault):
    pm_id = make_card(customer)
    fault(status=500, times=1, path_prefix="/v1/payment_intents")
    before = scrape()
    assert _pay(shopper, mug, pm_id).status_code == 201
    after = scrape()
    assert after.value("payments_stripe_retries_total", operation="payment_intents.create") - \
        before.value("payments_stripe_retries_total", operation="payment_intents.create") == 1
    assert after.value("payments_stripe_errors_total", operation="payment_intents.create",
                       error="APIError") - \
        before.value("payments_stripe_errors_total", operation="payment_intents.create",
                     error="APIError") == 1


# --- webhooks -------------------------------------------------------------------------------

def test_a_webhook_and_its_duplicate_move_received_duplicates_outcome_and_lag(
        scrape, client, shopper, customer, mug, make_card, run_jobs):
    response = _pay(shopper, mug, make_card(customer))
    intent_id = response.get_json()["payment"]["stripe_payment_intent_id"]
    run_jobs()
    before = scrape()

    obj = {"id": intent_id, "object": "payment_intent", "status": "succeeded"}
    created = int(time.time()) - 5  # created at Stripe five seconds ago
    assert _signed_event(client, "evt_metrics_1", "payment_intent.succeeded", obj,
                         created=created).status_code == 200
    run_jobs()
    middle = scrape()
    assert _signed_event(client, "evt_metrics_1", "payment_intent.succeeded", obj,
                         created=created).status_code == 200
    run_jobs()
    after = scrape()

    received = "payments_webhooks_received_total"
    assert middle.value(received, type="payment_intent.succeeded") - \
        before.value(received, type="payment_intent.succeeded") == 1
    assert after.value(received, type="payment_intent.succeeded") - \
        before.value(received, type="payment_intent.succeeded") == 2
    assert middle.value("payments_webhook_duplicates_total") == \
        before.value("payments_webhook_duplicates_total")
    assert after.value("payments_webhook_duplicates_total") - \
        middle.value("payments_webhook_duplicates_total") == 1
    processed = "payments_webhooks_processed_total"
    assert after.value(processed, outcome="processed") - \
        before.value(processed, outcome="processed") == 1  # the duplicate was not run
    lag_count = "payments_webhook_lag_seconds_count"
    assert after.value(lag_count) - before.value(lag_count) == 1
    lag_sum = after.value("payments_webhook_lag_seconds_sum") - \
        before.value("payments_webhook_lag_seconds_sum")
    assert 5 <= lag_sum < 120
    # Five seconds old: in the 10 s bucket, not in the 2.5 s one.
    assert after.value("payments_webhook_lag_seconds_bucket", le="10.0") - \
        before.value("payments_webhook_lag_seconds_bucket", le="10.0") == 1
    assert after.value("payments_webhook_lag_seconds_bucket", le="2.5") - \
        before.value("payments_webhook_lag_seconds_bucket", le="2.5") == 0
    # The worker's jobs, by queue and outcome.
    assert after.value("payments_jobs_total", queue="webhooks", outcome="succeeded") - \
        before.value("payments_jobs_total", queue="webhooks", outcome="succeeded") == 1


def test_a_bad_signature_counts_a_verification_failure_and_stores_nothing(scrape, client):
    before = scrape()
    response = _signed_event(client, "evt_forged", "payment_intent.succeeded",
                             {"id": "pi_forged", "object": "payment_intent"},
                             secret="whsec_" + "x" * 32)
    assert response.status_code == 400
    after = scrape()
    assert after.value("payments_webhook_verification_failures_total") - \
        before.value("payments_webhook_verification_failures_total") == 1
    assert after.value("payments_webhooks_received_total") == \
        before.value("payments_webhooks_received_total")


def test_an_unknown_event_type_is_counted_as_other(scrape, client):
    before = scrape()
    response = _signed_event(client, "evt_unknown_type", "some.new_type.v9",
                             {"id": "obj_1", "object": "thing"})
    assert response.status_code == 200
    after = scrape()
    assert after.value("payments_webhooks_received_total", type="other") - \
        before.value("payments_webhooks_received_total", type="other") == 1
    assert "some.new_type.v9" not in after.text


# --- refunds and emails ---------------------------------------------------------------------

def test_a_refund_counts_the_refunded_amount(scrape, client, shopper, customer, admin, mug,
                                              make_card, api_token, run_jobs):
    response = _pay(shopper, mug, make_card(customer), quantity=2)
    payment_id = response.get_json()["payment"]["id"]
    run_jobs()
    before = scrape()
    token = api_token(admin)
    refund = client.post("/api/payments/refund", json={"payment_id": payment_id,
                                                       "amount": 1500},
                         headers={"Authorization": f"Bearer {token}"})
    assert refund.status_code in (200, 201, 202), refund.get_json()
    run_jobs()
    after = scrape()
    assert after.value("payments_refunded_minor_units_total", currency="usd") - \
        before.value("payments_refunded_minor_units_total", currency="usd") == 1500
    # An over-refund is refused and moves nothing.
    again = client.post("/api/payments/refund", json={"payment_id": payment_id,
                                                      "amount": 999999},
                        headers={"Authorization": f"Bearer {token}"})
    assert again.status_code == 400
    run_jobs()
    assert scrape().value("payments_refunded_minor_units_total", currency="usd") == \
        after.value("payments_refunded_minor_units_total", currency="usd")


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_a_failed_email_counts_and_waits_in_the_gauge(app, scrape, shopper, customer, mug,
                                                       make_card, run_jobs):
    response = _pay(shopper, mug, make_card(customer))
    payment = db.session.scalar(db.select(Payment).where(
        Payment.public_id == response.get_json()["payment"]["id"]))
    app.config["MAIL_MAX_ATTEMPTS"] = 1
    app.config["MAIL_PORT"] = _closed_port()
    before = scrape()
    assert before.value("payments_failed_emails") == 0
    receipts.issue_payment_receipt(payment.id)
    run_jobs()
    after = scrape()
    failed = db.session.scalars(db.select(OutboundEmail).where(
        OutboundEmail.status == "failed")).all()
    assert len(failed) == 1
    assert after.value("payments_emails_total", outcome="failed") - \
        before.value("payments_emails_total", outcome="failed") == 1
    assert after.value("payments_emails_total", outcome="sent") == \
        before.value("payments_emails_total", outcome="sent")
    assert after.value("payments_failed_emails") == 1


# --- queues and labels --------------------------------------------------------------------------

def test_queue_depth_and_oldest_age_are_read_at_scrape_time(scrape, run_jobs):
    run_jobs()
    empty = scrape()
    assert empty.value("payments_queue_depth", queue="emails") == 0
    assert empty.value("payments_queue_oldest_job_age_seconds", queue="emails") == 0
    assert jobs.send_email(987654) is True  # a job nobody has run yet
    time.sleep(1.1)
    waiting = scrape()
    assert waiting.value("payments_queue_depth", queue="emails") == 1
    assert waiting.value("payments_queue_oldest_job_age_seconds", queue="emails") >= 1
    assert {"webhooks", "payments", "receipts", "emails"} <= {
        s.labels["queue"] for s in waiting.samples if s.name == "payments_queue_depth"}


def test_labels_hold_no_ids_emails_or_raw_paths(scrape, shopper, customer, mug, make_card,
                                                 run_jobs):
    response = _pay(shopper, mug, make_card(customer))
    payment_id = response.get_json()["payment"]["id"]
    assert shopper.get(f"/account/payments/{payment_id}").status_code == 200
    assert shopper.get("/no/such/page/12345").status_code == 404
    run_jobs()
    text = scrape().text
    assert payment_id not in text and customer.email not in text
    assert "/no/such/page" not in text
    assert not re.search(r"\b(pi|pm|cus|ch|re)_[A-Za-z0-9]{6,}", text)
    assert 'route="/account/payments/<payment_id>"' in text
    assert 'route="unmatched"' in text
