"""POST /api/payments/refund: full and partial refunds end to end, validation, access, audit."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from sqlalchemy import select, update

from payments_site.extensions import db
from payments_site.models import AuditLog, IdempotencyKey, Payment, Refund, utcnow
from payments_site.services.idempotency import ABANDONED_AFTER
from tests.conftest import csrf_token_from
from tests.refunds.helpers import charge_amount_refunded, paid_payment, unpaid_payment


def _reload(payment: Payment) -> Payment:
    db.session.expire_all()
    fresh = db.session.get(Payment, payment.id)
    assert fresh is not None
    return fresh


def test_full_refund_end_to_end(app, sdk, customer, admin, admin_api, run_jobs):
    payment = paid_payment(sdk, customer, 3000)
    response = admin_api({"payment_id": payment.public_id, "reason": "requested_by_customer"})
    assert response.status_code == 202, response.get_json()
    body = response.get_json()["refund"]
    assert body["id"].startswith("ref_") and body["payment_id"] == payment.public_id
    assert (body["amount"], body["currency"], body["status"], body["reason"]) == \
        (3000, "usd", "pending", "requested_by_customer")
    assert body["created_at"].endswith("Z")
    assert _reload(payment).refund_reserved == 3000
    assert _reload(payment).amount_refunded == 0

    assert run_jobs() >= 1
    refund = db.session.scalar(select(Refund).where(Refund.public_id == body["id"]))
    assert refund.status == "succeeded" and refund.stripe_refund_id.startswith("re_")
    assert refund.created_by_id == admin.id
    payment = _reload(payment)
    assert (payment.amount_refunded, payment.refund_reserved, payment.refund_status) == \
        (3000, 3000, "full")
    assert charge_amount_refunded(sdk, payment) == 3000
    stripe_refund = sdk.v1.refunds.retrieve(refund.stripe_refund_id)
    assert stripe_refund.metadata["refund_id"] == refund.public_id
    assert stripe_refund.reason == "requested_by_customer"
    # Nothing remains: a further refund is too large.
    again = admin_api({"payment_id": payment.public_id, "amount": 1})
    assert again.status_code == 400
    assert again.get_json()["error"]["code"] == "amount_too_large"


def test_partial_refunds_add_up(app, sdk, customer, admin_api, run_jobs):
    payment = paid_payment(sdk, customer, 5000)
    first = admin_api({"payment_id": payment.public_id, "amount": 1200,
                       "reason": "duplicate"})
    assert first.status_code == 202
    run_jobs()
    payment = _reload(payment)
    assert (payment.amount_refunded, payment.refund_status) == (1200, "partial")
    assert payment.refundable_amount == 3800
    assert charge_amount_refunded(sdk, payment) == 1200

    # Without an amount: all that remains.
    rest = admin_api({"payment_id": payment.public_id, "reason": None})
    assert rest.status_code == 202
    assert rest.get_json()["refund"]["amount"] == 3800
    assert rest.get_json()["refund"]["reason"] is None
    run_jobs()
    payment = _reload(payment)
    assert (payment.amount_refunded, payment.refund_status) == (5000, "full")
    assert charge_amount_refunded(sdk, payment) == 5000
    assert sorted(r.amount for r in payment.refunds) == [1200, 3800]


def test_payment_json_shows_refund_fields(app, sdk, customer, admin_api, run_jobs):
    from payments_site.blueprints.api.schemas import Payment

    payment = paid_payment(sdk, customer, 2000)
    admin_api({"payment_id": payment.public_id, "amount": 500})
    run_jobs()
    shape = Payment.of(_reload(payment)).dump()
    assert (shape["amount_refunded"], shape["refund_status"]) == (500, "partial")


def test_over_refund_is_amount_too_large(app, sdk, customer, admin_api):
    payment = paid_payment(sdk, customer, 3000)
    response = admin_api({"payment_id": payment.public_id, "amount": 3001})
    assert response.status_code == 400
    error = response.get_json()["error"]
    assert error["code"] == "amount_too_large" and error["param"] == "amount"
    assert admin_api({"payment_id": payment.public_id, "amount": 2000}).status_code == 202
    # 2000 is reserved (still pending): only 1000 remains.
    too_much = admin_api({"payment_id": payment.public_id, "amount": 1001})
    assert too_much.get_json()["error"]["code"] == "amount_too_large"
    assert admin_api({"payment_id": payment.public_id, "amount": 1000}).status_code == 202
    assert _reload(payment).refund_reserved == 3000
    assert db.session.scalar(select(Refund).where(Refund.amount == 1001)) is None


@pytest.mark.parametrize("amount", [0, -1, 1.5, "100", True, False, "1e3", 100.0, [1],
                                    {"value": 1}, 1e3])
def test_invalid_amounts_are_400(app, sdk, customer, admin_api, amount):
    payment = paid_payment(sdk, customer, 3000)
    response = admin_api({"payment_id": payment.public_id, "amount": amount})
    assert response.status_code == 400, response.get_json()
    error = response.get_json()["error"]
    assert (error["code"], error["param"]) == ("invalid_request", "amount")
    assert db.session.scalar(select(Refund)) is None
    assert _reload(payment).refund_reserved == 0


@pytest.mark.parametrize("reason", ["changed_mind", "", 1, ["duplicate"], "DUPLICATE"])
def test_bad_reason_is_400(app, sdk, customer, admin_api, reason):
    payment = paid_payment(sdk, customer, 3000)
    response = admin_api({"payment_id": payment.public_id, "amount": 100, "reason": reason})
    assert response.status_code == 400
    assert response.get_json()["error"]["param"] == "reason"
    assert db.session.scalar(select(Refund)) is None


def test_other_currency_is_400(app, sdk, customer, admin_api):
    payment = paid_payment(sdk, customer, 3000)
    response = admin_api({"payment_id": payment.public_id, "amount": 100, "currency": "eur"})
    assert response.status_code == 400
    assert response.get_json()["error"]["param"] == "currency"
    ok = admin_api({"payment_id": payment.public_id, "amount": 100, "currency": "USD"})
    assert ok.status_code == 202


@pytest.mark.parametrize("body", [{"payment_id": None}, {}, {"payment_id": 5},
                                  {"payment_id": ["pay_x"]}])
def test_missing_payment_id_is_400(app, admin_api, body):
    response = admin_api(body)
    assert response.status_code == 400
    assert response.get_json()["error"]["param"] == "payment_id"


def test_malformed_json_is_400(app, client, admin, api_token):
    token = api_token(admin)
    for data in (b"{not json", b"[1, 2]", b'"pay_x"'):
        response = client.post("/api/payments/refund", data=data,
                               headers={"Authorization": f"Bearer {token}",
                                        "Content-Type": "application/json"})
        assert response.status_code == 400
        assert response.get_json()["error"]["code"] == "invalid_request"


def test_unknown_payment_is_404(app, admin_api):
    response = admin_api({"payment_id": "pay_doesnotexist000000000000", "amount": 100})
    assert response.status_code == 404
    assert response.get_json()["error"]["code"] == "not_found"


@pytest.mark.parametrize("status", ["requires_payment_method", "requires_action",
                                    "processing", "canceled", "failed"])
def test_unpaid_payment_is_400(app, customer, admin_api, status):
    payment = unpaid_payment(customer, status=status)
    response = admin_api({"payment_id": payment.public_id, "amount": 100})
    assert response.status_code == 400
    assert response.get_json()["error"]["code"] == "invalid_request"
    assert db.session.scalar(select(Refund)) is None
    assert _reload(payment).refund_reserved == 0


def test_customer_cannot_refund(app, sdk, customer, admin_api, login_as, run_jobs):
    payment = paid_payment(sdk, customer, 3000)
    by_token = admin_api({"payment_id": payment.public_id, "amount": 100}, user=customer)
    assert by_token.status_code == 403
    assert by_token.get_json()["error"]["code"] == "forbidden"
    session = login_as(customer)
    by_session = session.post("/api/payments/refund",
                              json={"payment_id": payment.public_id, "amount": 100})
    assert by_session.status_code == 403
    assert db.session.scalar(select(Refund)) is None
    assert run_jobs() == 0
    assert charge_amount_refunded(sdk, payment) == 0


def test_anonymous_is_401(app, sdk, client, customer):
    payment = paid_payment(sdk, customer, 3000)
    body = {"payment_id": payment.public_id, "amount": 100}
    forged = client.post("/api/payments/refund", json=body,
                         headers={"Authorization": "Bearer not-a-token"})
    assert forged.status_code == 401
    assert forged.get_json()["error"]["code"] == "unauthenticated"
    # A browser that is not logged in (it has a CSRF token, no session user).
    token = csrf_token_from(client.get("/auth/login").get_data(as_text=True))
    anonymous = client.post("/api/payments/refund", json=body, headers={"X-CSRFToken": token})
    assert anonymous.status_code == 401
    assert db.session.scalar(select(Refund)) is None


def test_admin_session_needs_csrf(app, sdk, customer, admin, login_as):
    payment = paid_payment(sdk, customer, 3000)
    session = login_as(admin)
    body = {"payment_id": payment.public_id, "amount": 100}
    refused = session.client.post("/api/payments/refund", json=body)
    assert refused.status_code == 403
    assert db.session.scalar(select(Refund)) is None
    assert session.post("/api/payments/refund", json=body).status_code == 202


def test_jpy_refund(app, sdk, customer, admin_api, run_jobs):
    payment = paid_payment(sdk, customer, 500, "jpy")
    partial = admin_api({"payment_id": payment.public_id, "amount": 200})
    assert partial.status_code == 202
    assert partial.get_json()["refund"]["currency"] == "jpy"
    assert admin_api({"payment_id": payment.public_id, "amount": 301}).status_code == 400
    assert admin_api({"payment_id": payment.public_id, "amount": 300}).status_code == 202
    run_jobs()
    payment = _reload(payment)
    assert (payment.amount_refunded, payment.refund_status) == (500, "full")
    assert charge_amount_refunded(sdk, payment) == 500


def test_idempotency_key_replays_and_rejects_other_body(app, sdk, customer, admin_api,
                                                        run_jobs):
    payment = paid_payment(sdk, customer, 3000)
    body = {"payment_id": payment.public_id, "amount": 700, "reason": "duplicate"}
    first = admin_api(body, key="refund-attempt-1")
    second = admin_api(body, key="refund-attempt-1")
    assert first.status_code == second.status_code == 202
    assert first.get_json() == second.get_json()
    assert len(db.session.scalars(select(Refund)).all()) == 1
    other = admin_api({**body, "amount": 701}, key="refund-attempt-1")
    assert other.status_code == 422
    assert other.get_json()["error"]["code"] == "idempotency_key_reused"
    # An error response is replayed too (it did nothing the first time either).
    too_big = {"payment_id": payment.public_id, "amount": 9999}
    assert admin_api(too_big, key="k2").get_json() == admin_api(too_big, key="k2").get_json()
    run_jobs()
    assert _reload(payment).amount_refunded == 700
    assert charge_amount_refunded(sdk, payment) == 700


def test_a_key_run_again_after_its_answer_was_lost_never_refunds_twice(
        app, sdk, customer, admin_api, run_jobs):
    """The refund was reserved and queued, then the process died before the answer was
    stored (the claim stays `in_progress`). The retry with the same key takes the abandoned
    claim over and answers the same refund: nothing is reserved or refunded a second time."""
    payment = paid_payment(sdk, customer, 3000)
    body = {"payment_id": payment.public_id, "amount": 700, "reason": "duplicate"}
    first = admin_api(body, key="refund-lost")
    assert first.status_code == 202
    db.session.execute(update(IdempotencyKey).where(IdempotencyKey.key == "refund-lost").values(
        status="in_progress", response_body=None, response_status=None,
        created_at=utcnow() - ABANDONED_AFTER - timedelta(minutes=1)))
    db.session.commit()

    again = admin_api(body, key="refund-lost")
    assert again.status_code == 202, again.get_json()
    assert again.get_json()["refund"]["id"] == first.get_json()["refund"]["id"]
    assert len(db.session.scalars(select(Refund)).all()) == 1
    assert _reload(payment).refund_reserved == 700
    run_jobs()
    assert _reload(payment).amount_refunded == 700
    assert charge_amount_refunded(sdk, payment) == 700
    # Another key is another refund, as before.
    other = admin_api(body, key="refund-other")
    assert other.status_code == 202
    assert other.get_json()["refund"]["id"] != first.get_json()["refund"]["id"]


def test_rate_limited(app, sdk, customer, admin_api):
    app.config["REFUND_LIMIT"] = "3 per minute"
    payment = paid_payment(sdk, customer, 3000)
    codes = [admin_api({"payment_id": payment.public_id, "amount": 10}).status_code
             for _ in range(4)]
    assert codes == [202, 202, 202, 429]


def test_audit_trail(app, sdk, customer, admin, admin_api, run_jobs):
    payment = paid_payment(sdk, customer, 3000)
    refund_id = admin_api({"payment_id": payment.public_id, "amount": 1000,
                           "reason": "fraudulent"}).get_json()["refund"]["id"]
    requested = db.session.scalars(select(AuditLog).where(
        AuditLog.action == "refund.requested")).all()
    assert len(requested) == 1
    entry = requested[0]
    assert (entry.actor_id, entry.payment_id, entry.amount, entry.currency) == \
        (admin.id, payment.id, 1000, "usd")
    assert json.loads(entry.details)["reason"] == "fraudulent"
    assert json.loads(entry.details)["refund_id"] == refund_id
    assert entry.created_at is not None
    run_jobs()
    run_jobs()  # a job run twice records nothing twice
    actions = [row.action for row in db.session.scalars(
        select(AuditLog).where(AuditLog.payment_id == payment.id).order_by(AuditLog.id))]
    assert actions == ["refund.requested", "refund.succeeded"]


@pytest.mark.parametrize("amount", [2**31, 2**63 - 1])
def test_a_huge_whole_refund_amount_is_amount_too_large(app, sdk, customer, admin_api, amount):
    """API.md: a refund over what remains is 400 amount_too_large, however large it is."""
    payment = paid_payment(sdk, customer, 3000)
    response = admin_api({"payment_id": payment.public_id, "amount": amount})
    assert response.status_code == 400
    error = response.get_json()["error"]
    assert (error["code"], error["param"]) == ("amount_too_large", "amount")
    assert _reload(payment).refund_reserved == 0


def test_an_amount_beyond_64_bits_is_an_invalid_request(app, sdk, customer, admin_api):
    payment = paid_payment(sdk, customer, 3000)
    response = admin_api({"payment_id": payment.public_id, "amount": 2**64})
    assert response.status_code == 400
    assert response.get_json()["error"]["param"] == "amount"
