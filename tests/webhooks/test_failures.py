"""A failing handler: error recorded, writes rolled back, retried with backoff (RELIABILITY 7)."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
import requests
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select, update

from payments_site import stripe_gateway
from payments_site.extensions import db
from payments_site.models import AuditLog, Payment, WebhookEvent, utcnow
from payments_site.services import audit, sweeper, webhooks
from tests.helpers import event_payload
from tests.webhooks.conftest import add_fault, count, event_rows, post_event, raw


def _clear_faults(emulator: Any) -> None:
    requests.delete(f"{emulator.url}/_config/faults", timeout=5)


@pytest.fixture
def writes_then_calls_stripe() -> Iterator[str]:
    """A handler registered like any other that writes first, then re-reads from Stripe."""
    event_type = "test.writes_then_calls_stripe"

    @webhooks.handles(event_type)
    def handler(event: dict[str, Any]) -> None:
        payment = db.session.get_one(Payment, int(event["data"]["object"]["payment"]))
        payment.dispute_status = "half-written"
        audit.record("test.partial", actor=None, payment=payment)
        db.session.flush()
        stripe_gateway.retrieve_payment_intent(str(payment.stripe_payment_intent_id))

    yield event_type
    webhooks.HANDLERS.pop(event_type, None)


def test_failure_rolls_back_records_and_retries(
        app: Flask, client: FlaskClient, emulator: Any, make_payment: Any, run_jobs: Any,
        writes_then_calls_stripe: str) -> None:
    """RELIABILITY 7: a failing handler's writes are rolled back, the error is recorded on the
    event, and a later retry succeeds."""
    payment = make_payment()
    payload = event_payload(writes_then_calls_stripe,
                            {"id": "obj_1", "payment": payment.id}, "evt_partial")
    # Stripe answers 500 to every attempt the gateway makes (1 + STRIPE_MAX_RETRIES).
    add_fault(emulator, method="GET", path_prefix="/v1/payment_intents", status=500,
              times=int(app.config["STRIPE_MAX_RETRIES"]) + 1)
    assert post_event(client, payload).status_code == 200
    before = utcnow()
    run_jobs()

    [row] = event_rows()
    assert row.status == "failed" and row.attempts == 1
    assert row.last_error is not None and "ProviderError" in row.last_error
    assert row.next_attempt_at is not None
    assert before + timedelta(seconds=25) < row.next_attempt_at < utcnow() + \
        timedelta(seconds=35)
    db.session.refresh(payment)
    assert payment.dispute_status is None  # the half-done work was rolled back
    assert count(AuditLog, AuditLog.action == "test.partial") == 0

    # Not due yet: the sweeper leaves it alone.
    assert sweeper.sweep_webhook_events() == 0
    # Once due, the sweeper queues it and the retry succeeds (Stripe is fine again).
    assert sweeper.sweep_webhook_events(now=utcnow() + timedelta(seconds=31)) == 1
    run_jobs()
    [row] = event_rows()
    assert (row.status, row.attempts, row.last_error, row.next_attempt_at) == \
        ("processed", 2, None, None)
    db.session.refresh(payment)
    assert payment.dispute_status == "half-written"
    assert count(AuditLog, AuditLog.action == "test.partial") == 1


def test_gives_up_after_max_attempts_then_operator_retries(
        app: Flask, client: FlaskClient, emulator: Any, make_payment: Any, run_jobs: Any,
        stripe_events: Any, runner: Any) -> None:
    """RELIABILITY 7: after the last attempt the event stays failed until an operator retries it."""
    app.config["WEBHOOK_MAX_ATTEMPTS"] = 3
    payment = make_payment(card="4000000000000259")
    dispute_event = stripe_events.one("charge.dispute.created")
    add_fault(emulator, method="GET", path_prefix="/v1/disputes", status=503, times=1000)
    assert post_event(client, raw(dispute_event)).status_code == 200
    run_jobs()
    now = utcnow()
    delays = []
    for _ in range(2):
        [row] = event_rows()
        assert row.status == "failed" and row.next_attempt_at is not None
        delays.append(row.next_attempt_at - now)
        now = row.next_attempt_at + timedelta(seconds=1)
        assert sweeper.sweep_webhook_events(now=now) == 1
        run_jobs()
    assert delays[1] > delays[0]  # backoff grows
    [row] = event_rows()
    assert (row.status, row.attempts, row.next_attempt_at) == ("failed", 3, None)
    assert "ProviderUnavailable" in (row.last_error or "") or "ProviderError" in (
        row.last_error or "")
    # Given up: no automatic sweep takes it any more, however late it is.
    assert sweeper.sweep_webhook_events(now=utcnow() + timedelta(days=30)) == 0
    db.session.refresh(payment)
    assert payment.stripe_dispute_id is None

    _clear_faults(emulator)
    result = runner.invoke(args=["webhooks", "retry-failed", "--inline"])
    assert result.exit_code == 0, result.output
    assert "1 processed" in result.output
    [row] = event_rows()
    assert (row.status, row.attempts) == ("processed", 4)
    db.session.refresh(payment)
    assert payment.stripe_dispute_id == dispute_event["data"]["object"]["id"]


def test_handler_for_unknown_local_payment_fails_visibly(
        client: FlaskClient, make_payment: Any, stripe_events: Any, run_jobs: Any) -> None:
    """A dispute on a charge we have no payment for is not silently dropped."""
    payment = make_payment(card="4000000000000259")
    db.session.delete(payment)
    db.session.commit()
    assert post_event(client, raw(stripe_events.one("charge.dispute.created"))).status_code \
        == 200
    run_jobs()
    [row] = event_rows()
    assert row.status == "failed"
    assert "DisputedPaymentUnknown" in (row.last_error or "")


@pytest.fixture
def counted() -> Iterator[tuple[str, list[dict[str, Any]]]]:
    """A handler that records each run, with the claim's lease as the handler sees it."""
    event_type = "test.counted"
    runs: list[dict[str, Any]] = []

    @webhooks.handles(event_type)
    def handler(event: dict[str, Any]) -> None:
        row = db.session.scalars(select(WebhookEvent).where(
            WebhookEvent.stripe_event_id == event["id"])).one()
        assert row.next_attempt_at is not None
        runs.append({"status": row.status,
                     "lease": (row.next_attempt_at - utcnow()).total_seconds()})

    yield event_type, runs
    webhooks.HANDLERS.pop(event_type, None)


def test_a_claim_whose_worker_died_is_taken_over_once_its_lease_ends(
        app: Flask, client: FlaskClient, counted: tuple[str, list[dict[str, Any]]]) -> None:
    """A worker holds an event for WEBHOOK_PROCESSING_LEASE (here 900 s): while the lease
    runs nobody else runs it; once it has run out (the worker died) the next job takes it
    over, and once processed no copy of the job runs it again."""
    app.config["WEBHOOK_PROCESSING_LEASE"] = 900
    event_type, runs = counted
    assert post_event(client, event_payload(event_type, {"id": "obj_1"}, "evt_lease")) \
        .status_code == 200
    [row] = event_rows()

    def claimed_by_a_worker(lease_ends_in: timedelta) -> None:
        db.session.execute(update(WebhookEvent).where(WebhookEvent.id == row.id).values(
            status="processing", attempts=1, next_attempt_at=utcnow() + lease_ends_in))
        db.session.commit()

    claimed_by_a_worker(timedelta(seconds=60))
    assert webhooks.process_event(row.id) == "processing"
    assert runs == []

    claimed_by_a_worker(timedelta(seconds=-1))
    assert webhooks.process_event(row.id) == "processed"
    [run] = runs
    assert run["status"] == "processing" and 890 < run["lease"] <= 900
    [row] = event_rows()
    assert (row.status, row.attempts, row.next_attempt_at) == ("processed", 2, None)

    assert webhooks.process_event(row.id) == "processed"
    assert len(runs) == 1


@pytest.mark.parametrize("error", [RuntimeError("x" * 3000),
                                   stripe_gateway.ResourceMissing("y" * 3000)])
def test_a_failure_with_a_long_message_is_still_recorded(
        app: Flask, client: FlaskClient, caplog: pytest.LogCaptureFixture,
        error: Exception) -> None:
    """However long the error's text, it is cut to the column (2,000 characters), so the
    failure is recorded on its own event (the others untouched) and the event retried,
    given up or ignored, never left stuck `processing`; the operator's log says which event,
    which attempt and why (with the traceback for an unexpected error)."""
    app.config["WEBHOOK_MAX_ATTEMPTS"] = 2
    event_type = "test.long_failure"

    @webhooks.handles(event_type)
    def handler(event: dict[str, Any]) -> None:
        raise error

    def other_event() -> tuple[str, int, str | None, str | None]:
        [other] = [r for r in event_rows() if r.stripe_event_id == "evt_other"]
        return other.status, other.attempts, other.reason, other.last_error

    try:
        for event_id in ("evt_long", "evt_other"):
            assert post_event(client, event_payload(event_type, {"id": "obj_1"}, event_id)) \
                .status_code == 200
        [row] = [r for r in event_rows() if r.stripe_event_id == "evt_long"]
        with caplog.at_level(logging.WARNING, logger="payments_site.services.webhooks"):
            assert webhooks.process_event(row.id) == "failed"
        [row] = [r for r in event_rows() if r.stripe_event_id == "evt_long"]
        assert row.status == "failed" and row.next_attempt_at is not None
        assert len(row.last_error or "") == 2000
        assert (row.last_error or "").startswith(f"{type(error).__name__}: ")
        assert other_event() == ("pending", 0, None, None)
        [logged] = [r for r in caplog.records if "evt_long" in r.getMessage()]
        assert logged.getMessage() == \
            f"webhook evt_long ({event_type}) failed on attempt 1: {row.last_error}"
        unexpected = not isinstance(error, stripe_gateway.ResourceMissing)
        assert bool(logged.exc_info) is unexpected
        caplog.clear()
        if unexpected:
            with caplog.at_level(logging.WARNING, logger="payments_site.services.webhooks"):
                assert webhooks.process_event(row.id) == "failed"
            [row] = [r for r in event_rows() if r.stripe_event_id == "evt_long"]
            assert (row.status, row.attempts, row.next_attempt_at) == ("failed", 2, None)
            assert f"webhook evt_long ({event_type}) failed on attempt 2; giving up: " \
                f"{row.last_error}" in caplog.messages
        if isinstance(error, stripe_gateway.ResourceMissing):
            # The re-check finds nothing either: ignored with its reason, the error kept.
            with caplog.at_level(logging.WARNING, logger="payments_site.services.webhooks"):
                assert webhooks.process_event(row.id) == "ignored"
            [row] = [r for r in event_rows() if r.stripe_event_id == "evt_long"]
            reason = webhooks.UNAPPLIABLE[stripe_gateway.ResourceMissing]
            assert row.status == "ignored" and row.next_attempt_at is None
            assert row.reason == reason and row.processed_at is not None
            assert len(row.last_error or "") == 2000
            assert other_event() == ("pending", 0, None, None)
            assert f"webhook evt_long ({event_type}) ignored after a re-check: {reason}" in \
                caplog.messages
    finally:
        webhooks.HANDLERS.pop(event_type, None)


def test_an_operator_replays_an_ignored_event_and_a_missing_row_is_said(
        client: FlaskClient, caplog: pytest.LogCaptureFixture,
        counted: tuple[str, list[dict[str, Any]]]) -> None:
    """A job holds its event as `processing` while the handler runs. An event that ended
    `ignored` (or `processed`) is never run again by a job, only by an operator's replay;
    a job for a row that no longer exists says so."""
    event_type, runs = counted
    assert post_event(client, event_payload(event_type, {"id": "obj_1"}, "evt_replay")) \
        .status_code == 200
    [row] = event_rows()
    assert webhooks.process_event(row.id) == "processed"
    assert [run["status"] for run in runs] == ["processing"]

    for final in ("ignored", "processed"):
        db.session.execute(update(WebhookEvent).where(WebhookEvent.id == row.id).values(
            status=final))
        db.session.commit()
        assert webhooks.process_event(row.id) == final
        assert len(runs) == 1
    for final in ("ignored", "processed"):
        db.session.execute(update(WebhookEvent).where(WebhookEvent.id == row.id).values(
            status=final))
        db.session.commit()
        assert webhooks.replay_event("evt_replay", actor=None).status == "processed"
    assert len(runs) == 3

    with caplog.at_level(logging.WARNING, logger="payments_site.services.webhooks"):
        assert webhooks.process_event(row.id + 1000) == "missing"
    assert caplog.messages == [f"webhook event row {row.id + 1000} does not exist"]
