"""The webhook before, during or after the customer's return: fulfilment once (RELIABILITY 11)."""

from __future__ import annotations

import threading
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from payments_site.extensions import db
from payments_site.models import OutboundEmail, Payment, Receipt
from payments_site.services.checkout import complete_checkout
from tests.webhooks.conftest import count, event_rows, post_event, raw, wait_until


def _return_from_stripe(app: Flask, payment_id: int) -> str:
    """What /checkout/complete does when the browser comes back (its own app context)."""
    with app.app_context():
        payment = db.session.get_one(Payment, payment_id)
        return complete_checkout(payment.user, payment.public_id,
                                 payment.stripe_payment_intent_id).status


@pytest.mark.parametrize("order", ["webhook_first", "return_first"])
def test_fulfilment_once_in_either_order(app: Flask, client: FlaskClient, make_payment: Any,
                                         stripe_events: Any, run_jobs: Any, mail_sink: Any,
                                         order: str) -> None:
    """RELIABILITY 11: the webhook before or after the browser's return → one receipt, one email."""
    payment = make_payment()
    event = stripe_events.one("payment_intent.succeeded", payment.stripe_payment_intent_id)
    if order == "webhook_first":
        post_event(client, raw(event))
        run_jobs()
        assert _return_from_stripe(app, payment.id) == "succeeded"
    else:
        assert _return_from_stripe(app, payment.id) == "succeeded"
        post_event(client, raw(event))
    run_jobs()
    assert [r.status for r in event_rows()] == ["processed"]
    assert count(Receipt, Receipt.payment_id == payment.id) == 1
    mail_sink.wait_for(1)
    assert count(OutboundEmail) == 1 and len(mail_sink.messages) == 1


def test_fulfilment_once_when_webhook_and_return_race(
        app: Flask, emulator_webhook: Any, make_payment: Any, background_worker: None,
        mail_sink: Any) -> None:
    """RELIABILITY 11: the emulator delivers while the customer's return re-reads the intent,
    over and over."""
    emulator_webhook(duplicate=3)
    payments = [make_payment() for _ in range(5)]
    threads = [threading.Thread(target=_return_from_stripe, args=(app, p.id)) for p in payments]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    wait_until(lambda: count(Receipt) == 5, timeout=60, message="five receipts")
    wait_until(lambda: len(mail_sink.messages) >= 5, timeout=60, message="five emails")
    assert count(OutboundEmail) == 5
    assert len({m["Message-ID"] for m in mail_sink.messages}) == len(mail_sink.messages) == 5
