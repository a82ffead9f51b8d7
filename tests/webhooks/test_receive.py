"""The webhook route: verify, store once, enqueue, answer (RELIABILITY 1, 2, 3, 6, 8, 27)."""

from __future__ import annotations

import json
import logging
import time
from typing import Any

import pytest
import redis
from flask import Flask
from flask.testing import FlaskClient

from payments_site.models import OutboundEmail, Receipt, WebhookEvent
from payments_site.queues import get_queue
from tests.conftest import WEBHOOK_SECRET, app_config
from tests.helpers import event_payload, sign_payload
from tests.webhooks.conftest import (
    WEBHOOK_PATH,
    add_fault,
    count,
    event_rows,
    faults,
    post_event,
    raw,
)


def _intent_event(event_id: str = "evt_test_1", intent_id: str = "pi_unknown") -> bytes:
    return event_payload("payment_intent.succeeded",
                         {"id": intent_id, "object": "payment_intent", "status": "succeeded"},
                         event_id)


def _nothing_stored_or_queued() -> None:
    assert event_rows() == []
    assert get_queue("webhooks").count == 0


def test_signed_event_is_stored_and_queued(client: FlaskClient) -> None:
    payload = _intent_event()
    response = post_event(client, payload)
    assert response.status_code == 200
    assert response.get_json() == {"received": True}
    [row] = event_rows()
    assert (row.stripe_event_id, row.type, row.status) == ("evt_test_1", "payment_intent.succeeded",
                                                           "pending")
    assert row.payload == payload.decode()  # the raw event, byte for byte
    assert row.api_version == "2024-06-20"
    assert row.enqueued_at is not None and row.attempts == 0
    assert get_queue("webhooks").job_ids == [f"webhook-{row.id}"]


@pytest.mark.parametrize("case", ["missing", "wrong_secret", "one_byte_changed", "garbage",
                                  "no_v1", "not_json"])
def test_bad_signature_is_rejected_and_nothing_stored(client: FlaskClient, case: str) -> None:
    """RELIABILITY 1: no signature, the wrong secret or a body changed by one byte → 400;
    nothing stored, nothing queued."""
    payload = _intent_event()
    headers = {"Stripe-Signature": sign_payload(payload, WEBHOOK_SECRET)}
    body = payload
    if case == "missing":
        headers = {}
    elif case == "wrong_secret":
        headers = {"Stripe-Signature": sign_payload(payload, "whsec_" + "x" * 32)}
    elif case == "one_byte_changed":
        body = payload.replace(b'"livemode": false', b'"livemode": falsE')
        assert body != payload and len(body) == len(payload)
    elif case == "garbage":
        headers = {"Stripe-Signature": "this is not a signature"}
    elif case == "no_v1":
        headers = {"Stripe-Signature": f"t={int(time.time())}"}
    elif case == "not_json":
        body = b"not json at all"
        headers = {"Stripe-Signature": sign_payload(body, WEBHOOK_SECRET)}
    response = client.post(WEBHOOK_PATH, data=body, content_type="application/json",
                           headers=headers)
    assert response.status_code == 400
    error = response.get_json()["error"]
    assert (error["code"], error["param"], error["message"]) == (
        "invalid_request", "Stripe-Signature",
        "The Stripe-Signature header is missing or invalid.")
    assert WEBHOOK_SECRET not in response.get_data(as_text=True)
    _nothing_stored_or_queued()


@pytest.mark.parametrize(("age", "accepted"), [(0, True), (299, True), (301, False),
                                               (-60, True), (-299, True), (-301, False),
                                               (-3600, False),
                                               (-10 * 365 * 86400, False)])
def test_timestamp_tolerance(client: FlaskClient, age: int, accepted: bool) -> None:
    """RELIABILITY 2: 299 s old passes, 301 s old fails; in the future the same 300 s hold
    (299 s ahead passes, 301 s ahead fails), and far in the future fails too."""
    payload = _intent_event()
    response = post_event(client, payload, timestamp=int(time.time()) - age)
    assert response.status_code == (200 if accepted else 400)
    assert len(event_rows()) == (1 if accepted else 0)


def test_two_secrets_during_rotation(app: Flask, client: FlaskClient) -> None:
    """RELIABILITY 3: while secrets rotate, an event signed with either is accepted."""
    new_secret = "whsec_" + "n" * 32
    app.config["STRIPE_WEBHOOK_SECRET"] = [WEBHOOK_SECRET, new_secret]
    assert post_event(client, _intent_event("evt_old"), secret=WEBHOOK_SECRET).status_code == 200
    assert post_event(client, _intent_event("evt_new"), secret=new_secret).status_code == 200
    other = "whsec_" + "o" * 32
    assert post_event(client, _intent_event("evt_other"), secret=other).status_code == 400
    assert [r.stripe_event_id for r in event_rows()] == ["evt_old", "evt_new"]


def test_unknown_event_type_is_acknowledged_ignored_and_logged(
        client: FlaskClient, caplog: pytest.LogCaptureFixture) -> None:
    """RELIABILITY 6: an unknown event type → 200 and a log line."""
    payload = event_payload("customer.tax_id.created", {"id": "txi_1", "object": "tax_id"},
                            "evt_unknown")
    with caplog.at_level(logging.INFO, logger="payments_site.services.webhooks"):
        response = post_event(client, payload)
    assert response.status_code == 200
    [row] = event_rows()
    assert row.status == "ignored" and row.processed_at is not None
    assert get_queue("webhooks").count == 0
    assert any("customer.tax_id.created" in r.getMessage() and "evt_unknown" in r.getMessage()
               for r in caplog.records)


def test_body_size_is_bounded(client: FlaskClient) -> None:
    obj = {"id": "pi_big", "object": "payment_intent", "description": "x" * (2 * 1024 * 1024)}
    payload = event_payload("payment_intent.succeeded", obj, "evt_big")
    response = post_event(client, payload)
    assert response.status_code == 413
    _nothing_stored_or_queued()


def test_route_only_verifies_stores_and_queues(client: FlaskClient, make_payment: Any,
                                               stripe_events: Any, emulator: Any,
                                               mail_sink: Any, run_jobs: Any) -> None:
    """No Stripe call, no PDF and no email on the request path (RELIABILITY 8)."""
    payment = make_payment()
    event = stripe_events.one("payment_intent.succeeded", payment.stripe_payment_intent_id)
    # Any call to Stripe during the request would consume this fault.
    add_fault(emulator, path_prefix="/v1", status=500, times=1)
    started = time.perf_counter()
    response = post_event(client, raw(event))
    elapsed = time.perf_counter() - started
    assert response.status_code == 200
    assert len(faults(emulator)) == 1, "the webhook request called Stripe"
    assert elapsed < 2  # generous; the route itself takes milliseconds
    assert count(Receipt) == 0 and count(OutboundEmail) == 0 and mail_sink.messages == []
    from payments_site.extensions import db

    db.session.refresh(payment)
    assert payment.status == "requires_payment_method"  # untouched until the worker runs

    requests_delete_faults(emulator)
    run_jobs()
    db.session.refresh(payment)
    assert payment.status == "succeeded"
    assert count(Receipt) == 1
    # The worker, not the request, emailed the receipt: exactly one message, with its PDF.
    [message] = mail_sink.wait_for(1)
    receipt = db.session.query(Receipt).one()
    assert message["Subject"].startswith(f"Receipt {receipt.number} ")
    [attachment] = list(message.iter_attachments())
    assert attachment.get_content() == receipt.pdf


def requests_delete_faults(emulator: Any) -> None:
    import requests

    requests.delete(f"{emulator.url}/_config/faults", timeout=5)


def test_redis_unreachable_still_acknowledges(app: Flask, client: FlaskClient) -> None:
    """RELIABILITY 25: the event is committed before the enqueue; a failed enqueue leaves it
    pending for the sweeper."""
    app.config["REDIS_URL"] = "redis://127.0.0.1:1/0"
    saved = app.extensions.pop("redis", None)
    try:
        response = post_event(client, _intent_event())
    finally:
        app.extensions.pop("redis", None)
        if saved is not None:
            app.extensions["redis"] = saved
    assert response.status_code == 200
    [row] = event_rows()
    assert row.status == "pending" and row.enqueued_at is None


def test_database_down_answers_5xx_so_stripe_retries(
        app: Flask, database_url: str, redis_url: str, emulator: Any, mail_server: Any,
        tmp_path: Any) -> None:
    """A second app instance whose database is unreachable (RELIABILITY 27)."""
    from payments_site import create_app

    config = app_config("postgresql://nobody@127.0.0.1:1/missing", redis_url, emulator.url,
                        mail_server.host, mail_server.port, str(tmp_path))
    dead = create_app(config)
    payload = _intent_event("evt_db_down")
    with dead.test_client() as dead_client:
        response = post_event(dead_client, payload)
    assert response.status_code >= 500
    body = response.get_data(as_text=True)
    assert "Traceback" not in body and "psycopg" not in body
    # Stripe redelivers to a healthy node later: nothing was lost.
    client = app.test_client()
    assert post_event(client, payload).status_code == 200
    assert [r.stripe_event_id for r in event_rows()] == ["evt_db_down"]
    assert redis.Redis.from_url(redis_url).ping()


def test_event_without_id_is_rejected(client: FlaskClient) -> None:
    payload = json.dumps({"object": "event", "type": "payment_intent.succeeded",
                          "data": {"object": {"id": "pi_1"}}}).encode()
    assert post_event(client, payload).status_code == 400
    assert count(WebhookEvent) == 0


@pytest.mark.parametrize(("event_id", "event_type", "accepted"), [
    ("e", "payment_intent.succeeded", True),
    ("evt_" + "x" * 251, "payment_intent.succeeded", True),  # 255 characters: the column's
    ("evt_" + "x" * 252, "payment_intent.succeeded", False),
    ("", "payment_intent.succeeded", False),
    ("evt_t", "x", True),
    ("evt_t", "x" * 100, True),  # 100 characters: the column's
    ("evt_t", "x" * 101, False),
    ("evt_t", "", False),
])
def test_event_id_and_type_must_fit_their_columns(client: FlaskClient, event_id: str,
                                                   event_type: str, accepted: bool) -> None:
    """An id or type that could not be stored (empty, or longer than its column) is a 400
    with the reason, before anything is written; one that fits is stored as sent."""
    response = post_event(client, event_payload(event_type, {"id": "x_1"}, event_id))
    if accepted:
        assert response.status_code == 200, response.get_json()
        [row] = event_rows()
        assert (row.stripe_event_id, row.type) == (event_id, event_type)
    else:
        assert response.status_code == 400
        assert response.get_json()["error"]["message"] == "The event has no valid id or type."
        assert count(WebhookEvent) == 0
