"""`flask webhooks replay|retry-failed` and `flask payments reconcile`."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import stripe
from flask.testing import FlaskClient, FlaskCliRunner

from payments_site.extensions import db
from payments_site.models import Payment, Receipt, Refund, utcnow
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


def _paid_and_recorded(make_payment: Any, days_old: int, **options: Any) -> Payment:
    """A payment Stripe charged and we recorded (no webhook), created `days_old` days ago."""
    from payments_site.services.payments import sync_payment_intent

    payment = make_payment(**options)
    sync_payment_intent(str(payment.stripe_payment_intent_id))
    get_queue("receipts").empty()  # its receipt is not what these tests are about
    payment = db.session.get_one(Payment, payment.id)
    assert payment.status == "succeeded" and payment.stripe_charge_id
    payment.created_at = utcnow() - timedelta(days=days_old)
    db.session.commit()
    return payment


def test_reconcile_applies_a_refund_made_on_stripe_to_an_old_payment(
        runner: FlaskCliRunner, make_payment: Any, sc: stripe.StripeClient, customer: Any,
        run_jobs: Any, mail_sink: Any) -> None:
    """Refunded on Stripe's side yesterday, 10 days after the payment; the webhook never came."""
    old = _paid_and_recorded(make_payment, days_old=10, amount=3000)
    untouched = _paid_and_recorded(make_payment, days_old=10)
    stripe_refund = sc.v1.refunds.create({"payment_intent": old.stripe_payment_intent_id,
                                          "amount": 700})

    result = runner.invoke(args=["payments", "reconcile"])
    assert result.exit_code == 0, result.output
    lines = result.output.strip().splitlines()
    assert f"{old.public_id}: amount_refunded 0 -> 700" in lines
    assert any(line.startswith(f"{old.public_id}: new refund ref_")
               and line.endswith("700 succeeded") for line in lines), lines
    assert not any(untouched.public_id in line for line in lines)
    assert lines[-1].startswith("checked 1 payment(s)") and "1 changed, 0 error(s)" in lines[-1]

    db.session.expire_all()
    assert db.session.get_one(Payment, old.id).amount_refunded == 700
    [refund] = db.session.query(Refund).all()
    assert (refund.payment_id, refund.stripe_refund_id, refund.amount, refund.status) == \
        (old.id, stripe_refund.id, 700, "succeeded")
    # The customer hears about it like any other refund: the refund note by email.
    run_jobs()
    [message] = mail_sink.wait_for(1)
    assert message["To"] == customer.email and message["Subject"].startswith("Refund note CN-")

    again = runner.invoke(args=["payments", "reconcile"])
    assert again.exit_code == 0 and "1 payment(s)" in again.output and "0 changed" in again.output
    assert db.session.query(Refund).count() == 1


def test_reconcile_reports_a_dispute_whose_webhook_was_lost(
        runner: FlaskCliRunner, make_payment: Any, make_user: Any, mail_sink: Any,
        run_jobs: Any) -> None:
    admin = make_user("ops@example.com", role="admin")
    disputed = _paid_and_recorded(make_payment, days_old=10, card="4000000000000259")
    assert disputed.stripe_dispute_id is None

    result = runner.invoke(args=["payments", "reconcile"])
    assert result.exit_code == 0, result.output
    db.session.expire_all()
    payment = db.session.get_one(Payment, disputed.id)
    assert payment.stripe_dispute_id and payment.dispute_status == "needs_response"
    assert (f"{payment.public_id}: dispute None -> {payment.stripe_dispute_id} (needs_response)"
            in result.output.splitlines())
    run_jobs()
    [alert] = mail_sink.wait_for(1)
    assert alert["To"] == admin.email and payment.public_id in alert["Subject"]
    assert "0 changed" in runner.invoke(args=["payments", "reconcile"]).output


def test_a_payment_fixed_by_reconcile_gets_its_receipt(
        runner: FlaskCliRunner, make_payment: Any, customer: Any, run_jobs: Any,
        mail_sink: Any) -> None:
    payment = make_payment()  # Stripe charged it; no webhook, no return to the site
    result = runner.invoke(args=["payments", "reconcile"])
    assert f"{payment.public_id}: status requires_payment_method -> succeeded" in result.output
    run_jobs()
    [receipt] = db.session.query(Receipt).filter_by(payment_id=payment.id).all()
    [message] = mail_sink.wait_for(1)
    assert message["To"] == customer.email
    assert message["Subject"].startswith(f"Receipt {receipt.number} ")
    [attachment] = list(message.iter_attachments())
    assert attachment.get_content() == receipt.pdf
