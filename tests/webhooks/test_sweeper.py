"""The sweeper: lost work of every kind is queued again; one sweep per interval."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from flask import Flask
from flask.testing import FlaskCliRunner

from payments_site.extensions import db
from payments_site.models import IdempotencyKey, OutboundEmail, Receipt, utcnow
from payments_site.queues import get_queue
from payments_site.services import sweeper
from payments_site.services.emails import send_later


def test_sweep_requeues_lost_receipts_and_emails_and_purges_keys(
        app: Flask, make_payment: Any, customer: Any, run_jobs: Any, mail_sink: Any) -> None:
    payment = make_payment()
    from payments_site.services.payments import sync_payment_intent

    sync_payment_intent(str(payment.stripe_payment_intent_id))  # succeeded: receipt queued
    for name in ("receipts", "emails"):
        get_queue(name).empty()  # ...and lost with Redis
    payment.succeeded_at = utcnow() - timedelta(minutes=5)
    email = send_later(dedupe_key="test:lost", kind="test", to="someone@example.com",
                       subject="Hello", text_body="Lost once.")
    get_queue("emails").empty()
    email.created_at = utcnow() - timedelta(minutes=10)
    now = utcnow()
    db.session.add_all([
        IdempotencyKey(user_id=customer.id, key="old", request_hash="h", status="done",
                       created_at=now - timedelta(days=2), expires_at=now - timedelta(days=1)),
        IdempotencyKey(user_id=customer.id, key="new", request_hash="h", status="done",
                       created_at=now, expires_at=now + timedelta(days=1))])
    db.session.commit()

    counts = sweeper.run_sweep()
    assert counts["receipts"] == 1 and counts["emails"] == 1
    assert counts["idempotency_keys_purged"] == 1 and counts["webhook_events"] == 0
    assert counts["refunds"] == 0
    assert [k.key for k in db.session.query(IdempotencyKey).all()] == ["new"]
    run_jobs()
    assert db.session.query(Receipt).filter_by(payment_id=payment.id).count() == 1
    mail_sink.wait_for(2)  # the receipt and the lost email
    assert db.session.query(OutboundEmail).filter_by(status="sent").count() == 2
    # Done: nothing more to sweep.
    assert sweeper.run_sweep()["receipts"] == 0


def test_one_sweep_per_interval_across_workers(app: Flask) -> None:
    assert sweeper.run_sweep_if_due(30) is not None
    assert sweeper.run_sweep_if_due(30) is None  # another worker just swept


def test_periodic_sweeper_thread_runs_and_stops(app: Flask) -> None:
    thread = sweeper.start_periodic_sweeper(app, 1)
    try:
        import time

        from payments_site.queues import get_redis

        deadline = time.monotonic() + 5
        while not get_redis().exists(sweeper.LOCK_KEY) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert get_redis().exists(sweeper.LOCK_KEY)
    finally:
        thread.stop()
        thread.join(timeout=5)
    assert not thread.is_alive()


def test_burst_worker_sweeps_first(runner: FlaskCliRunner, make_payment: Any,
                                   client: Any, stripe_events: Any) -> None:
    from tests.webhooks.conftest import event_rows, post_event, raw

    payment = make_payment()
    post_event(client, raw(stripe_events.one("payment_intent.succeeded",
                                             payment.stripe_payment_intent_id)))
    get_queue("webhooks").empty()
    [row] = event_rows()
    row.received_at = utcnow() - timedelta(minutes=1)
    db.session.commit()
    result = runner.invoke(args=["worker", "--burst"])
    assert result.exit_code == 0, result.output
    assert [r.status for r in event_rows()] == ["processed"]
