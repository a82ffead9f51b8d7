"""Stripe wins: outages retry, rejections fail and release, syncs match Stripe's totals."""

from __future__ import annotations

import time

from sqlalchemy import select

from payments_site import stripe_gateway
from payments_site.extensions import db
from payments_site.models import AuditLog, Refund
from payments_site.services import refunds
from tests.refunds.helpers import (
    charge_amount_refunded,
    fresh_payment,
    fresh_refund,
    inject_fault,
    paid_payment,
)


def test_stripe_unavailable_keeps_refund_pending_then_retry_succeeds(
        app, sdk, emulator, customer, admin_api, run_jobs):
    payment = paid_payment(sdk, customer, 3000)
    # More failures than one job's gateway retries (STRIPE_MAX_RETRIES + 1 attempts).
    attempts = int(app.config["STRIPE_MAX_RETRIES"]) + 1
    inject_fault(emulator.url, method="POST", path_prefix="/v1/refunds", status=500,
                 times=attempts)
    refund_id = admin_api({"payment_id": payment.public_id, "amount": 1000}).get_json()[
        "refund"]["id"]
    run_jobs(include_scheduled=False)  # the first run fails; RQ schedules a retry
    refund = fresh_refund(refund_id)
    assert (refund.status, refund.stripe_refund_id) == ("pending", None)
    assert fresh_payment(payment.id).refund_reserved == 1000
    assert charge_amount_refunded(sdk, payment) == 0

    run_jobs()  # the scheduled retry
    refund = fresh_refund(refund_id)
    assert refund.status == "succeeded"
    assert fresh_payment(payment.id).amount_refunded == 1000
    # One refund on Stripe, whatever the retries (same idempotency key).
    assert len(sdk.v1.refunds.list({"payment_intent": payment.stripe_payment_intent_id}).data) \
        == 1
    assert charge_amount_refunded(sdk, payment) == 1000


def test_stripe_rejection_fails_refund_and_releases_reservation(
        app, sdk, customer, admin_api, run_jobs):
    payment = paid_payment(sdk, customer, 3000)
    # Stripe will refuse: the PaymentIntent has no successful charge.
    unpaid = sdk.v1.payment_intents.create({"amount": 3000, "currency": "usd",
                                            "allowed_payment_method_types": ["card"]})
    payment.stripe_payment_intent_id = unpaid.id
    db.session.commit()
    refund_id = admin_api({"payment_id": payment.public_id, "amount": 1000}).get_json()[
        "refund"]["id"]
    assert fresh_payment(payment.id).refund_reserved == 1000
    run_jobs()
    run_jobs()
    refund = fresh_refund(refund_id)
    assert refund.status == "failed"
    assert "charge" in (refund.failure_reason or "")
    fresh = fresh_payment(payment.id)
    assert (fresh.refund_reserved, fresh.amount_refunded) == (0, 0)  # released once
    assert fresh.refundable_amount == 3000
    failed_audits = db.session.scalars(select(AuditLog).where(
        AuditLog.action == "refund.failed")).all()
    assert len(failed_audits) == 1
    # Releasing again (a duplicate job or webhook) changes nothing.
    refunds.fail_refund(refund, "again")
    assert fresh_payment(payment.id).refund_reserved == 0


def test_refund_made_on_stripe_dashboard_is_learned(app, sdk, customer, admin_api,
                                                    run_jobs):
    payment = paid_payment(sdk, customer, 3000)
    # Someone refunds 2500 on Stripe's dashboard; we still think all 3000 remain.
    sdk.v1.refunds.create({"payment_intent": payment.stripe_payment_intent_id,
                           "amount": 2500})
    refund_id = admin_api({"payment_id": payment.public_id, "amount": 1000}).get_json()[
        "refund"]["id"]
    run_jobs()
    assert fresh_refund(refund_id).status == "failed"  # Stripe: amount_too_large
    fresh = fresh_payment(payment.id)
    external = [r for r in fresh.refunds if r.created_by_id is None]
    assert len(external) == 1 and external[0].amount == 2500
    assert external[0].status == "succeeded"
    assert fresh.amount_refunded == 2500 == charge_amount_refunded(sdk, payment)
    assert fresh.refund_reserved == 2500


def test_sync_charge_refunds_matches_stripe_and_is_idempotent(app, sdk, customer,
                                                              admin_api, run_jobs):
    payment = paid_payment(sdk, customer, 4000)
    admin_api({"payment_id": payment.public_id, "amount": 1000})
    run_jobs()
    sdk.v1.refunds.create({"payment_intent": payment.stripe_payment_intent_id,
                           "amount": 700, "reason": "duplicate"})
    for _ in range(2):
        synced = refunds.sync_charge_refunds(str(payment.stripe_charge_id))
        assert sorted(r.amount for r in synced) == [700, 1000]
    fresh = fresh_payment(payment.id)
    assert len(fresh.refunds) == 2
    assert fresh.amount_refunded == 1700 == charge_amount_refunded(sdk, payment)
    assert fresh.refund_reserved == 1700


def test_webhook_before_worker_finds_row_by_metadata(app, sdk, customer, admin_api):
    payment = paid_payment(sdk, customer, 3000)
    refund_id = admin_api({"payment_id": payment.public_id, "amount": 900}).get_json()[
        "refund"]["id"]
    # The refund reaches Stripe (as the job would), but the job dies before saving the id.
    stripe_refund = sdk.v1.refunds.create(
        {"payment_intent": payment.stripe_payment_intent_id, "amount": 900,
         "metadata": {"refund_id": refund_id}},
        {"idempotency_key": f"refund-{refund_id}"})
    synced = refunds.sync_refund_from_stripe(stripe_gateway.retrieve_refund(stripe_refund.id))
    assert synced is not None and synced.public_id == refund_id
    assert synced.stripe_refund_id == stripe_refund.id and synced.status == "succeeded"
    assert len(fresh_payment(payment.id).refunds) == 1
    # The retried job now finds the refund settled and does nothing more.
    refunds.submit_refund(synced.id)
    assert fresh_payment(payment.id).amount_refunded == 900 == charge_amount_refunded(sdk, payment)


def test_unknown_refund_is_ignored(app):
    elsewhere = stripe_gateway.Refund(id="re_elsewhere", status="succeeded", amount=100,
                                      currency="usd", reason=None, failure_reason=None,
                                      payment_intent_id="pi_not_ours", charge_id="ch_not_ours",
                                      our_refund_id=None)
    assert refunds.sync_refund_from_stripe(elsewhere) is None
    assert db.session.scalar(select(Refund)) is None


def test_refund_that_fails_after_succeeding_gives_the_amount_back(app, sdk, customer,
                                                                  admin_api, run_jobs):
    # 4000000000005126: Stripe reports the refund succeeded, then fails it a moment later.
    payment = paid_payment(sdk, customer, 3000, number="4000000000005126")
    refund_id = admin_api({"payment_id": payment.public_id, "amount": 3000}).get_json()[
        "refund"]["id"]
    run_jobs()
    refund = fresh_refund(refund_id)
    assert refund.status == "succeeded"
    assert fresh_payment(payment.id).amount_refunded == 3000
    deadline = time.monotonic() + 10
    while sdk.v1.refunds.retrieve(str(refund.stripe_refund_id)).status != "failed":
        assert time.monotonic() < deadline
        time.sleep(0.1)
    synced = refunds.sync_charge_refunds(str(payment.stripe_charge_id))
    assert [r.status for r in synced] == ["failed"]
    fresh = fresh_payment(payment.id)
    assert (fresh.amount_refunded, fresh.refund_reserved, fresh.refund_status) == \
        (0, 0, "none")
    assert charge_amount_refunded(sdk, payment) == 0
    assert fresh.refundable_amount == 3000


def test_pending_refund_follows_stripe(app, sdk, customer, admin_api, run_jobs):
    # 4000000000007726: the refund stays pending for a moment, then succeeds.
    payment = paid_payment(sdk, customer, 2000, number="4000000000007726")
    refund_id = admin_api({"payment_id": payment.public_id}).get_json()["refund"]["id"]
    run_jobs()
    refund = fresh_refund(refund_id)
    assert refund.status == "pending" and refund.stripe_refund_id
    assert fresh_payment(payment.id).amount_refunded == 0
    deadline = time.monotonic() + 10
    while sdk.v1.refunds.retrieve(str(refund.stripe_refund_id)).status != "succeeded":
        assert time.monotonic() < deadline
        time.sleep(0.1)
    refunds.sync_refund_from_stripe(stripe_gateway.retrieve_refund(str(refund.stripe_refund_id)))
    assert fresh_refund(refund_id).status == "succeeded"
    assert fresh_payment(payment.id).amount_refunded == 2000


def test_stale_pending_refunds_are_resubmitted(app, sdk, customer, admin_api, run_jobs):
    from datetime import timedelta

    from payments_site.queues import get_redis

    payment = paid_payment(sdk, customer, 3000)
    refund_id = admin_api({"payment_id": payment.public_id, "amount": 400}).get_json()[
        "refund"]["id"]
    get_redis().flushdb()  # the queued job is lost (as when Redis lost its data)
    assert run_jobs() == 0
    assert fresh_refund(refund_id).status == "pending"
    assert refunds.resubmit_stale_refunds(older_than=timedelta(0)) == 1
    run_jobs()
    assert fresh_refund(refund_id).status == "succeeded"
    assert charge_amount_refunded(sdk, payment) == 400
