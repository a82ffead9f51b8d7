"""Late and reordered events end in Stripe's state (RELIABILITY 5)."""

from __future__ import annotations

import copy
import random
from typing import Any

import stripe
from flask.testing import FlaskClient

from payments_site.extensions import db
from payments_site.models import OutboundEmail, Payment, Receipt, Refund
from tests.webhooks.conftest import count, event_rows, post_event, raw, wait_until


def _deliver_and_process(client: FlaskClient, run_jobs: Any, event: dict[str, Any]) -> None:
    assert post_event(client, raw(event)).status_code == 200
    run_jobs()


def _assert_matches_stripe(payment: Payment, sc: stripe.StripeClient) -> None:
    db.session.expire_all()
    local = db.session.get_one(Payment, payment.id)
    intent = sc.v1.payment_intents.retrieve(str(local.stripe_payment_intent_id),
                                            {"expand": ["latest_charge"]})
    charge: Any = intent.latest_charge
    assert local.status == intent.status
    assert local.stripe_charge_id == charge.id
    assert local.amount_refunded == charge.amount_refunded
    stripe_refunds = {r.id: r for r in sc.v1.refunds.list({"charge": charge.id}).data}
    local_refunds = db.session.query(Refund).filter_by(payment_id=local.id).all()
    assert {r.stripe_refund_id for r in local_refunds} == set(stripe_refunds)
    for refund in local_refunds:
        assert refund.amount == stripe_refunds[str(refund.stripe_refund_id)].amount
        assert refund.status == stripe_refunds[str(refund.stripe_refund_id)].status


def test_refund_before_success_and_processing_after_success(
        client: FlaskClient, make_payment: Any, stripe_events: Any, sc: stripe.StripeClient,
        run_jobs: Any, mail_sink: Any) -> None:
    """RELIABILITY 5: `charge.refunded` before `succeeded`, a stale `processing` after it → the
    local payment and refunds equal Stripe's."""
    payment = make_payment()
    intent_id = str(payment.stripe_payment_intent_id)
    refund = sc.v1.refunds.create({"payment_intent": intent_id, "amount": 700})
    succeeded = stripe_events.one("payment_intent.succeeded", intent_id)
    charge_refunded = stripe_events.one("charge.refunded")
    refund_created = stripe_events.one("refund.created", refund.id)
    # A stale `processing` snapshot of the same intent, delivered last (Stripe does not
    # promise order): genuinely signed, its content older than what we already applied.
    processing = copy.deepcopy(succeeded)
    processing["id"] = "evt_late_processing"
    processing["type"] = "payment_intent.processing"
    processing["data"]["object"]["status"] = "processing"

    _deliver_and_process(client, run_jobs, charge_refunded)  # the refund first
    _assert_matches_stripe(payment, sc)  # the handler brought the payment up to date
    _deliver_and_process(client, run_jobs, refund_created)
    _deliver_and_process(client, run_jobs, succeeded)
    _deliver_and_process(client, run_jobs, processing)  # late and stale
    _assert_matches_stripe(payment, sc)
    db.session.expire_all()
    local = db.session.get_one(Payment, payment.id)
    assert (local.status, local.amount_refunded, local.refund_status) == \
        ("succeeded", 700, "partial")
    assert all(r.status == "processed" for r in event_rows())
    # Fulfilment once: a receipt and a refund note, each emailed once.
    assert count(Receipt, Receipt.payment_id == payment.id, Receipt.series == "receipt") == 1
    assert count(Receipt, Receipt.payment_id == payment.id,
                 Receipt.series == "refund_note") == 1
    mail_sink.wait_for(2)
    assert count(OutboundEmail) == 2


def test_every_order_of_a_payments_events_converges(
        client: FlaskClient, make_payment: Any, stripe_events: Any, sc: stripe.StripeClient,
        run_jobs: Any) -> None:
    """RELIABILITY 5: several payments, two refunds each, all events delivered shuffled and
    twice."""
    payments = [make_payment(amount=3000) for _ in range(3)]
    for payment in payments:
        for amount in (1000, 500):
            sc.v1.refunds.create({"payment_intent": payment.stripe_payment_intent_id,
                                  "amount": amount})
    events = stripe_events.all() * 2
    random.Random(5).shuffle(events)
    for event in events:
        assert post_event(client, raw(event)).status_code == 200
        if random.Random(len(event["id"])).random() < 0.5:
            run_jobs()
    run_jobs()
    for payment in payments:
        _assert_matches_stripe(payment, sc)
        assert count(Receipt, Receipt.payment_id == payment.id) == 3  # receipt + 2 notes
    assert len(event_rows()) == len(events) // 2


def test_emulator_shuffled_and_duplicated_delivery(
        emulator_webhook: Any, make_payment: Any, sc: stripe.StripeClient,
        background_worker: None) -> None:
    """The emulator itself reorders and repeats deliveries to the live server."""
    emulator_webhook(duplicate=3, shuffle=True, shuffle_window_s=1.0)
    payments = [make_payment(amount=2500) for _ in range(4)]
    for payment in payments[:2]:
        sc.v1.refunds.create({"payment_intent": payment.stripe_payment_intent_id,
                              "amount": 900})
    expected = {e.id for e in sc.v1.events.list({"limit": 100}).data}

    def settled() -> bool:
        rows = event_rows()
        return {r.stripe_event_id for r in rows} >= expected and all(
            r.status in ("processed", "ignored") for r in rows)

    wait_until(settled, timeout=60, message="every event processed")
    for payment in payments:
        _assert_matches_stripe(payment, sc)
    wait_until(lambda: count(Receipt) == 6, message="4 receipts and 2 refund notes")
