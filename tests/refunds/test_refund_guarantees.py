"""Refund rules that each fail on their own mutant: a lost answer after Stripe refunded,
states that never move back, a race on the status, pending amounts kept in the reservation,
and disputed payments that Stripe will not refund."""

from __future__ import annotations

import time

from sqlalchemy import event, select, text

from payments_site import stripe_gateway
from payments_site.extensions import db
from payments_site.models import OutboundEmail, Payment, Refund
from payments_site.services import disputes, refunds
from tests.refunds.helpers import (
    charge_amount_refunded,
    fresh_payment,
    fresh_refund,
    inject_fault,
    paid_payment,
)


def test_a_refund_stripe_applied_whose_answer_was_lost_is_made_once(
        app, sdk, emulator, customer, admin_api, run_jobs):
    """(a) Stripe applies the refund and every answer of the first job is lost (the first
    after the refund was made, the retries' replays too); the job is retried later and must
    reach the same refund through the same idempotency key, not make a second one."""
    payment = paid_payment(sdk, customer, 3000)
    attempts = int(app.config["STRIPE_MAX_RETRIES"]) + 1
    inject_fault(emulator.url, method="POST", path_prefix="/v1/refunds", status=0,
                 after=True, times=attempts)
    refund_id = admin_api({"payment_id": payment.public_id, "amount": 1000}).get_json()[
        "refund"]["id"]
    run_jobs(include_scheduled=False)
    assert fresh_refund(refund_id).status == "pending"
    assert charge_amount_refunded(sdk, payment) == 1000  # Stripe did refund

    run_jobs()  # the scheduled retry of the job
    refund = fresh_refund(refund_id)
    assert refund.status == "succeeded" and refund.stripe_refund_id
    stripe_refunds = sdk.v1.refunds.list({"payment_intent": payment.stripe_payment_intent_id})
    assert [r.id for r in stripe_refunds.data] == [refund.stripe_refund_id]
    assert charge_amount_refunded(sdk, payment) == 1000 == fresh_payment(payment.id).amount_refunded


def test_an_old_state_never_moves_a_refund_back(app, sdk, customer, admin_api, run_jobs):
    """(c) A late event or a stale read says `pending` after the refund succeeded: the row
    and the payment's totals stay as Stripe's latest word left them."""
    payment = paid_payment(sdk, customer, 3000)
    refund_id = admin_api({"payment_id": payment.public_id, "amount": 1000}).get_json()[
        "refund"]["id"]
    run_jobs()
    refund = fresh_refund(refund_id)
    assert refund.status == "succeeded"
    current = stripe_gateway.retrieve_refund(str(refund.stripe_refund_id))
    stale = stripe_gateway.Refund(**{**current.__dict__, "status": "pending"})
    refunds.sync_refund_from_stripe(stale)
    assert fresh_refund(refund_id).status == "succeeded"
    fresh = fresh_payment(payment.id)
    assert (fresh.amount_refunded, fresh.refund_reserved) == (1000, 1000)


def test_a_status_moved_by_someone_else_meanwhile_is_not_overwritten(
        app, sdk, customer, admin_api, run_jobs):
    """(c) The race guard: between reading the refund as pending and writing `succeeded`,
    another worker fails it (Stripe failed it). The write must match nothing, so the
    refund stays failed and its amount is not counted as refunded."""
    payment = paid_payment(sdk, customer, 3000)
    refund_id = admin_api({"payment_id": payment.public_id, "amount": 1000}).get_json()[
        "refund"]["id"]
    refund = fresh_refund(refund_id)
    other = db.engine.connect()
    fired: list[bool] = []

    def another_worker_first(conn, cursor, statement, parameters, context, executemany):
        if not fired and statement.lstrip().upper().startswith("UPDATE REFUNDS") \
                and conn is not other:
            fired.append(True)
            other.execute(text("UPDATE refunds SET status = 'failed', "
                               "failure_reason = 'stripe: failed' WHERE id = :id"),
                          {"id": refund.id})
            other.commit()

    event.listen(db.engine, "before_cursor_execute", another_worker_first)
    try:
        moved = refunds._transition(refund, "succeeded")
    finally:
        event.remove(db.engine, "before_cursor_execute", another_worker_first)
        other.close()
    assert fired and moved is False
    assert fresh_refund(refund_id).status == "failed"
    assert fresh_payment(payment.id).amount_refunded == 0


def test_a_dashboard_refund_keeps_the_pending_refunds_reserved(app, sdk, customer, admin_api):
    """(d) A refund made on Stripe's dashboard is learned while ours is still pending: the
    recomputed reservation holds both, so nothing more than what remains can be asked."""
    payment = paid_payment(sdk, customer, 3000)
    ours = admin_api({"payment_id": payment.public_id, "amount": 1000}).get_json()["refund"]
    dashboard = sdk.v1.refunds.create({"payment_intent": payment.stripe_payment_intent_id,
                                       "amount": 500})
    refunds.sync_refund_from_stripe(stripe_gateway.retrieve_refund(dashboard.id))
    fresh = fresh_payment(payment.id)
    assert fresh_refund(ours["id"]).status == "pending"
    assert (fresh.amount_refunded, fresh.refund_reserved) == (500, 1500)
    assert fresh.refundable_amount == 1500
    too_much = admin_api({"payment_id": payment.public_id, "amount": 1600})
    assert too_much.status_code == 400
    assert too_much.get_json()["error"]["code"] == "amount_too_large"


def _disputed(sdk, payment: Payment) -> str:
    deadline = time.monotonic() + 10
    while True:
        found = sdk.v1.disputes.list({"payment_intent": payment.stripe_payment_intent_id}).data
        if found:
            return str(found[0].id)
        assert time.monotonic() < deadline, "the emulator opened no dispute"
        time.sleep(0.05)


def test_refunding_a_disputed_payment_is_refused_and_records_nothing(
        app, sdk, customer, admin, admin_api, login_as, run_jobs):
    payment = paid_payment(sdk, customer, 3000, number="4000000000000259")
    disputes.apply_dispute(_disputed(sdk, payment))
    emails_before = db.session.scalar(select(db.func.count(OutboundEmail.id)))

    response = admin_api({"payment_id": payment.public_id, "amount": 1000})
    assert response.status_code == 400
    error = response.get_json()["error"]
    assert error["code"] == "charge_disputed"
    assert error["message"].startswith("This payment is disputed: refunds are not possible")
    run_jobs()
    assert db.session.scalars(select(Refund)).all() == []
    fresh = fresh_payment(payment.id)
    assert (fresh.refund_reserved, fresh.amount_refunded) == (0, 0)
    assert db.session.scalar(select(db.func.count(OutboundEmail.id))) == emails_before
    assert charge_amount_refunded(sdk, payment) == 0

    page = login_as(admin)
    html = page.get(f"/admin/payments/{payment.public_id}").get_data(as_text=True)
    assert "Stripe does not allow refunds while the dispute is open" in html
    assert "Review refund" not in html
    posted = page.client.post(f"/admin/payments/{payment.public_id}/refund", data={
        "csrf_token": page.csrf_token, "amount": "10.00", "reason": "requested_by_customer"})
    assert posted.status_code == 400
    assert "This payment is disputed" in posted.get_data(as_text=True)
    assert db.session.scalars(select(Refund)).all() == []


def test_a_dispute_we_have_not_heard_of_yet_fails_the_refund_and_releases_it(
        app, sdk, customer, admin_api, run_jobs):
    """The dispute's event has not arrived when the admin refunds: Stripe's `charge_disputed`
    fails the refund with that reason, the reservation is released and the customer gets no
    email."""
    payment = paid_payment(sdk, customer, 3000, number="4000000000000259")
    _disputed(sdk, payment)
    refund_id = admin_api({"payment_id": payment.public_id, "amount": 1000}).get_json()[
        "refund"]["id"]
    run_jobs()
    refund = fresh_refund(refund_id)
    assert refund.status == "failed"
    assert (refund.failure_reason or "").startswith("charge_disputed: This payment is disputed")
    fresh = fresh_payment(payment.id)
    assert (fresh.refund_reserved, fresh.amount_refunded) == (0, 0)
    assert db.session.scalars(select(OutboundEmail).where(
        OutboundEmail.to_address == customer.email)).all() == []
    assert charge_amount_refunded(sdk, payment) == 0


def test_a_refund_whose_key_is_still_in_use_stays_pending_and_keeps_its_key(
        app, sdk, emulator, customer, admin_api, run_jobs):
    """Stripe is still running the first refund request when every retry of the job gets
    409 idempotency_key_in_use: the refund is neither failed nor sent again with a new key;
    the job's next run gets the one refund Stripe made."""
    payment = paid_payment(sdk, customer, 3000)
    app.config.update(STRIPE_TIMEOUT=0.5, STRIPE_MAX_RETRIES=1, STRIPE_RETRY_BASE_DELAY=0.01)
    app.extensions.pop("stripe_client", None)
    try:
        inject_fault(emulator.url, method="POST", path_prefix="/v1/refunds", status=None,
                     delay_s=2.0, after=True, times=1)
        refund_id = admin_api({"payment_id": payment.public_id, "amount": 1000}).get_json()[
            "refund"]["id"]
        run_jobs(include_scheduled=False)
        refund = fresh_refund(refund_id)
        assert (refund.status, refund.failure_reason) == ("pending", None)
        assert fresh_payment(payment.id).refund_reserved == 1000
        time.sleep(2.0)  # the first request ends at Stripe
        run_jobs()
    finally:
        app.extensions.pop("stripe_client", None)
    refund = fresh_refund(refund_id)
    assert refund.status == "succeeded"
    stripe_refunds = sdk.v1.refunds.list({"payment_intent": payment.stripe_payment_intent_id})
    assert [r.id for r in stripe_refunds.data] == [refund.stripe_refund_id]
    assert charge_amount_refunded(sdk, payment) == 1000


def test_a_retried_job_of_a_refund_stripe_has_follows_stripe(app, sdk, customer, admin_api,
                                                            run_jobs):
    """A job run again for a refund already sent (pending at Stripe: card …7726) asks Stripe
    for that refund instead of sending a new one, and applies what Stripe says now."""
    payment = paid_payment(sdk, customer, 2000, number="4000000000007726")
    refund_id = admin_api({"payment_id": payment.public_id, "amount": 800}).get_json()[
        "refund"]["id"]
    run_jobs()
    refund = fresh_refund(refund_id)
    assert refund.status == "pending" and refund.stripe_refund_id
    deadline = time.monotonic() + 10
    while sdk.v1.refunds.retrieve(str(refund.stripe_refund_id)).status != "succeeded":
        assert time.monotonic() < deadline
        time.sleep(0.1)
    again = refunds.submit_refund(refund.id)
    assert again is not None and again.status == "succeeded"
    assert fresh_payment(payment.id).amount_refunded == 800 == charge_amount_refunded(sdk, payment)
    assert len(sdk.v1.refunds.list({"payment_intent": payment.stripe_payment_intent_id}).data) \
        == 1


def test_a_refund_of_a_payment_without_an_intent_fails_and_releases(app, sdk, customer,
                                                                   admin_api, run_jobs):
    payment = paid_payment(sdk, customer, 3000)
    refund_id = admin_api({"payment_id": payment.public_id, "amount": 1000}).get_json()[
        "refund"]["id"]
    fresh = fresh_payment(payment.id)
    fresh.stripe_payment_intent_id = None
    db.session.commit()
    run_jobs()
    refund = fresh_refund(refund_id)
    assert (refund.status, refund.failure_reason) == (
        "failed", "The payment has no Stripe PaymentIntent to refund.")
    assert fresh_payment(payment.id).refund_reserved == 0
