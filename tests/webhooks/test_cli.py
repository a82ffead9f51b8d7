"""`flask webhooks replay|retry-failed` and `flask payments reconcile`."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import stripe
from flask.testing import FlaskClient, FlaskCliRunner

from payments_site.extensions import db
from payments_site.models import Payment, Refund, utcnow
from payments_site.queues import get_queue
from tests.webhooks.conftest import event_rows, post_event, raw


def test_replay_processes_one_event_now(client: FlaskClient, runner: FlaskCliRunner,
                                        make_payment: Any, stripe_events: Any) -> None:
    payment = make_payment()
    event = stripe_events.one("payment_intent.succeeded", payment.stripe_payment_intent_id)
    post_event(client, raw(event))
    result = runner.invoke(args=["webhooks", "replay", event["id"]])
    assert result.exit_code == 0, result.output
    assert f"{event['id']} payment_intent.succeeded: processed (attempts: 1)" in result.output
    db.session.refresh(payment)
    assert payment.status == "succeeded"

    unknown = runner.invoke(args=["webhooks", "replay", "evt_missing"])
    assert unknown.exit_code != 0 and "no stored webhook event evt_missing" in unknown.output


def test_retry_failed_queues_pending_and_failed(client: FlaskClient, runner: FlaskCliRunner,
                                                make_payment: Any, stripe_events: Any,
                                                run_jobs: Any) -> None:
    payment = make_payment()
    post_event(client, raw(stripe_events.one("payment_intent.succeeded",
                                             payment.stripe_payment_intent_id)))
    get_queue("webhooks").empty()  # the job was lost (Redis flushed, say)
    result = runner.invoke(args=["webhooks", "retry-failed"])
    assert result.exit_code == 0, result.output
    assert "queued 1 event(s)" in result.output
    # Queued already: running it again does not queue a second copy.
    assert "queued 0 event(s)" in runner.invoke(args=["webhooks", "retry-failed"]).output
    run_jobs()
    assert [r.status for r in event_rows()] == ["processed"]


def test_reconcile_fixes_what_differs(runner: FlaskCliRunner, make_payment: Any,
                                      sc: stripe.StripeClient) -> None:
    """No webhooks at all: reconcile alone brings payments and refunds in line with Stripe."""
    paid = make_payment()
    refunded = make_payment(amount=3000)
    stripe_refund = sc.v1.refunds.create({"payment_intent": refunded.stripe_payment_intent_id,
                                          "amount": 1200})
    old = make_payment()
    old.created_at = utcnow() - timedelta(days=30)
    db.session.commit()

    result = runner.invoke(args=["payments", "reconcile"])
    assert result.exit_code == 0, result.output
    lines = result.output.strip().splitlines()
    assert f"{paid.public_id}: status requires_payment_method -> succeeded" in lines
    assert f"{refunded.public_id}: amount_refunded 0 -> 1200" in lines
    assert any(line.startswith(f"{refunded.public_id}: new refund ref_") and "1200" in line
               for line in lines)
    assert not any(old.public_id in line for line in lines)
    assert lines[-1].startswith("checked 2 payment(s)") and "2 changed, 0 error(s)" in lines[-1]
    db.session.expire_all()
    assert db.session.get_one(Payment, refunded.id).amount_refunded == 1200
    [refund] = db.session.query(Refund).all()
    assert (refund.stripe_refund_id, refund.status) == (stripe_refund.id, "succeeded")

    # In line now: a second run changes nothing; --since reaches older payments.
    again = runner.invoke(args=["payments", "reconcile"])
    assert "0 changed" in again.output
    since = (utcnow() - timedelta(days=40)).date().isoformat()
    wider = runner.invoke(args=["payments", "reconcile", "--since", since])
    assert f"{old.public_id}: status requires_payment_method -> succeeded" in wider.output
    assert "checked 3 payment(s)" in wider.output
    assert runner.invoke(args=["payments", "reconcile", "--since", "yesterday"]).exit_code == 2
