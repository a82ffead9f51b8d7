"""The same event delivered again, or many times at once: one row, effects once (RELIABILITY 4)."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any

import requests
from flask.testing import FlaskClient
from sqlalchemy import select

from payments_site.extensions import db
from payments_site.models import AuditLog, OutboundEmail, Payment, Receipt, WebhookEvent
from payments_site.queues import get_queue
from tests.conftest import WEBHOOK_SECRET
from tests.helpers import sign_payload
from tests.webhooks.conftest import (
    WEBHOOK_PATH,
    count,
    event_rows,
    post_event,
    raw,
    wait_until,
)


def test_same_event_twice_in_a_row(client: FlaskClient, make_payment: Any, stripe_events: Any,
                                   run_jobs: Any, mail_sink: Any) -> None:
    """RELIABILITY 4: the same event id twice in a row → one row, effects once, both 2xx."""
    payment = make_payment()
    payload = raw(stripe_events.one("payment_intent.succeeded",
                                    payment.stripe_payment_intent_id))
    assert post_event(client, payload).status_code == 200
    assert post_event(client, payload).status_code == 200
    assert len(event_rows()) == 1
    assert get_queue("webhooks").count == 1  # the duplicate queued nothing
    run_jobs()
    assert post_event(client, payload).status_code == 200  # after processing, too
    run_jobs()
    [row] = event_rows()
    assert row.status == "processed" and row.attempts == 1
    db.session.refresh(payment)
    assert payment.status == "succeeded"
    assert count(Receipt, Receipt.payment_id == payment.id) == 1
    mail_sink.wait_for(1)
    assert count(OutboundEmail, OutboundEmail.payment_id == payment.id) == 1
    assert len(mail_sink.messages) == 1


def test_ten_concurrent_copies(live_server: Any, make_payment: Any, stripe_events: Any,
                               run_jobs: Any, mail_sink: Any) -> None:
    """RELIABILITY 4: ten copies at once over real HTTP: all 2xx, one row, one receipt,
    one email."""
    payment = make_payment()
    payload = raw(stripe_events.one("payment_intent.succeeded",
                                    payment.stripe_payment_intent_id))
    headers = {"Stripe-Signature": sign_payload(payload, WEBHOOK_SECRET),
               "Content-Type": "application/json"}

    def deliver(_: int) -> int:
        return requests.post(live_server.url + WEBHOOK_PATH, data=payload, headers=headers,
                             timeout=10).status_code

    with ThreadPoolExecutor(max_workers=10) as pool:
        statuses = list(pool.map(deliver, range(10)))
    assert statuses == [200] * 10
    assert len(event_rows()) == 1
    run_jobs()
    db.session.refresh(payment)
    assert payment.status == "succeeded"
    assert count(Receipt, Receipt.payment_id == payment.id) == 1
    mail_sink.wait_for(1)
    assert count(OutboundEmail) == 1 and len(mail_sink.messages) == 1


def test_emulator_duplicates_every_event(emulator_webhook: Any, make_payment: Any,
                                         background_worker: None, sc: Any,
                                         mail_sink: Any, admin: Any) -> None:
    """RELIABILITY 4: Stripe's own redelivery (here: every event sent 4 times) for a paid,
    refunded and disputed payment: one row per event id, every effect once."""
    emulator_webhook(duplicate=4)
    paid = make_payment()
    disputed = make_payment(card="4000000000000259")
    sc.v1.refunds.create({"payment_intent": paid.stripe_payment_intent_id, "amount": 500})
    expected_ids = {e.id for e in sc.v1.events.list({"limit": 100}).data}

    def settled() -> bool:
        rows = event_rows()
        return {r.stripe_event_id for r in rows} >= expected_ids and all(
            r.status in ("processed", "ignored") for r in rows)

    wait_until(settled, timeout=60, message="every event processed")
    rows = event_rows()
    assert len(rows) == len({r.stripe_event_id for r in rows}) == len(expected_ids)
    assert all(r.attempts <= 1 for r in rows)
    wait_until(lambda: count(Receipt) == 3, message="two receipts and a refund note")
    db.session.expire_all()
    paid_row = db.session.get(Payment, paid.id)
    disputed_row = db.session.get(Payment, disputed.id)
    assert paid_row is not None and disputed_row is not None
    assert (paid_row.status, paid_row.amount_refunded) == ("succeeded", 500)
    assert disputed_row.stripe_dispute_id is not None
    assert count(AuditLog, AuditLog.action == "dispute.opened") == 1
    # Receipt x2, refund note x1, dispute alert x1 (one admin): each sent once.
    wait_until(lambda: len(mail_sink.messages) >= 4, message="four emails")
    assert count(OutboundEmail) == 4
    ids = [m["Message-ID"] for m in mail_sink.messages]
    assert len(ids) == len(set(ids)) == 4
    assert db.session.scalar(select(WebhookEvent).where(WebhookEvent.status == "failed")) is None
