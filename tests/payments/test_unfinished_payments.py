"""Payments nobody finished: "Not completed" while they can be retried, canceled after the TTL.

The sweeper cancels the PaymentIntent at Stripe first and then follows Stripe's answer, so a
row never reads canceled while its intent could still be paid; an intent the customer paid
at the last moment is recorded as paid instead.
"""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select

from payments_site.extensions import db
from payments_site.models import Payment, utcnow
from payments_site.services import payments as payments_service
from payments_site.services.sweeper import run_sweep, sweep_unfinished_payments
from tests.payments.conftest import VISA


def _new_card_payment(shopper, mug, quantity=1):
    body = shopper.post("/api/payments/process", json={
        "items": [{"product_id": mug.id, "quantity": quantity}]}).get_json()
    return db.session.scalar(select(Payment).where(Payment.public_id == body["payment"]["id"]))


def _age(payment, hours):
    db.session.execute(Payment.__table__.update().where(Payment.id == payment.id)
                       .values(created_at=utcnow() - timedelta(hours=hours)))
    db.session.commit()


def _reload(payment):
    db.session.expire_all()
    return db.session.get(Payment, payment.id)


def test_an_unfinished_payment_is_canceled_at_stripe_after_a_day(shopper, mug, sc):
    payment = _new_card_payment(shopper, mug)
    fresh = _new_card_payment(shopper, mug, quantity=2)
    assert sweep_unfinished_payments() == 0  # too young
    _age(payment, 25)
    assert sweep_unfinished_payments() == 1
    payment, fresh = _reload(payment), _reload(fresh)
    assert payment.status == "canceled" and fresh.status == "requires_payment_method"
    intent = sc.v1.payment_intents.retrieve(payment.stripe_payment_intent_id)
    assert intent.status == "canceled" and intent.cancellation_reason == "abandoned"
    assert sweep_unfinished_payments() == 0  # nothing left to do: safe to run again


def test_a_payment_paid_at_the_last_moment_is_recorded_paid_not_canceled(shopper, mug, sc,
                                                                         run_jobs):
    payment = _new_card_payment(shopper, mug)
    pm = sc.v1.payment_methods.create({"type": "card", "card": {
        "number": VISA, "exp_month": 12, "exp_year": 2030, "cvc": "123"}})
    # The customer pays; our row has not heard of it yet (no webhook, no return page).
    sc.v1.payment_intents.confirm(payment.stripe_payment_intent_id, {"payment_method": pm.id})
    _age(payment, 25)
    sweep_unfinished_payments()
    payment = _reload(payment)
    assert payment.status == "succeeded"
    assert sc.v1.payment_intents.retrieve(payment.stripe_payment_intent_id).status == \
        "succeeded"


def test_a_lost_answer_after_stripe_canceled_still_ends_canceled(shopper, mug, sc, fault):
    """The connection drops after Stripe canceled the intent: the retried call (same key)
    gets the saved answer, and the row ends canceled."""
    payment = _new_card_payment(shopper, mug)
    _age(payment, 30)
    fault(path_prefix=f"/v1/payment_intents/{payment.stripe_payment_intent_id}/cancel",
          status=0, after=True)
    sweep_unfinished_payments()
    payment = _reload(payment)
    assert payment.status == "canceled"
    assert sc.v1.payment_intents.retrieve(payment.stripe_payment_intent_id).status == "canceled"


def test_stripe_unreachable_leaves_the_payment_for_the_next_sweep(shopper, mug, fault, app):
    app.config["STRIPE_MAX_RETRIES"] = 0
    payment = _new_card_payment(shopper, mug)
    _age(payment, 30)
    fault(path_prefix="/v1/payment_intents/", status=503, times=5)
    assert run_sweep()["unfinished_payments"] == 0
    assert _reload(payment).status == "requires_payment_method"


def test_flagged_payments_are_canceled_at_once_and_hidden_meanwhile(shopper, customer, mug, sc):
    payment = _new_card_payment(shopper, mug)
    db.session.execute(Payment.__table__.update().values(cancel_requested=True))
    db.session.commit()
    page = shopper.get("/account/payments").get_data(as_text=True)
    assert payment.public_id not in page
    assert sweep_unfinished_payments() == 1
    payment = _reload(payment)
    assert payment.status == "canceled"
    assert sc.v1.payment_intents.retrieve(payment.stripe_payment_intent_id).status == "canceled"


def test_a_payment_without_an_intent_is_canceled_only_when_none_can_exist(shopper, customer,
                                                                          mug):
    payment = Payment(user_id=customer.id, amount=1999, currency="usd", cart_hash="x",
                      status="requires_payment_method", needs_reconcile=False,
                      created_at=utcnow() - timedelta(days=2))
    maybe = Payment(user_id=customer.id, amount=1999, currency="usd", cart_hash="y",
                    status="requires_payment_method", needs_reconcile=True,
                    created_at=utcnow() - timedelta(days=2))
    db.session.add_all([payment, maybe])
    db.session.commit()
    sweep_unfinished_payments()
    assert _reload(payment).status == "canceled"
    # Its create may have reached Stripe: reconcile records that intent first.
    assert _reload(maybe).status == "requires_payment_method"


def test_history_hides_canceled_by_default_and_shows_them_with_the_filter(shopper, mug):
    kept = _new_card_payment(shopper, mug)
    gone = _new_card_payment(shopper, mug, quantity=2)
    _age(gone, 25)
    sweep_unfinished_payments()
    default = shopper.get("/account/payments").get_data(as_text=True)
    assert kept.public_id in default and gone.public_id not in default
    filtered = shopper.get("/account/payments?status=canceled").get_data(as_text=True)
    assert gone.public_id in filtered and kept.public_id not in filtered
    # The JSON API lists every payment unless asked for a status.
    api = shopper.get("/api/payments/history").get_json()
    assert {p["id"] for p in api["data"]} == {kept.public_id, gone.public_id}


def test_can_retry_follows_status_age_and_flag(shopper, mug, app):
    payment = _new_card_payment(shopper, mug)
    assert payments_service.can_retry(payment)
    app.config["UNFINISHED_PAYMENT_TTL"] = 60
    _age(payment, 1)
    assert not payments_service.can_retry(_reload(payment))


def test_a_saved_error_answer_to_the_cancel_is_resolved_by_reading_the_intent(shopper, mug,
                                                                             sc, fault):
    """Stripe canceled the intent but its 500 answer is saved under the cancel's key and
    replayed to every retry: the intent itself says it is canceled, and so does the row."""
    payment = _new_card_payment(shopper, mug)
    _age(payment, 30)
    fault(path_prefix=f"/v1/payment_intents/{payment.stripe_payment_intent_id}/cancel",
          status=500, after=True)
    assert sweep_unfinished_payments() == 1
    assert _reload(payment).status == "canceled"
