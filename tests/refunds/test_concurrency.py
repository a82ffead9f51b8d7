"""RELIABILITY 12: concurrent partial refunds totalling 150% never reserve more than captured."""

from __future__ import annotations

import threading
from typing import Any

from sqlalchemy import func, select

from payments_site.extensions import db
from payments_site.models import Payment, Refund
from tests.refunds.helpers import charge_amount_refunded, paid_payment


def _fire_concurrently(app: Any, token: str, bodies: list[dict[str, Any]]) -> list[Any]:
    """POST every body at once, each from its own thread, client and app context."""
    barrier = threading.Barrier(len(bodies))
    results: list[Any] = [None] * len(bodies)

    def worker(index: int, body: dict[str, Any]) -> None:
        with app.app_context():
            client = app.test_client()
            barrier.wait()
            try:
                response = client.post("/api/payments/refund", json=body,
                                       headers={"Authorization": f"Bearer {token}"})
                results[index] = (response.status_code, response.get_json())
            finally:
                db.session.remove()

    threads = [threading.Thread(target=worker, args=(i, b)) for i, b in enumerate(bodies)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    return results


def test_ten_concurrent_partial_refunds_totalling_150_percent(app, sdk, customer, admin,
                                                              api_token, run_jobs):
    """RELIABILITY 12: refunded never exceeds captured; the local total equals Stripe's."""
    payment = paid_payment(sdk, customer, 10_000)
    token = api_token(admin)
    # 10 × 1500 = 15000 = 150% of the captured 10000: at most 6 can fit.
    results = _fire_concurrently(app, token, [{"payment_id": payment.public_id,
                                               "amount": 1500}] * 10)
    codes = sorted(code for code, _ in results)
    assert all(code in (202, 400) for code in codes), results
    accepted = [body for code, body in results if code == 202]
    refused = [body for code, body in results if code == 400]
    assert len(accepted) == 6 and len(refused) == 4
    assert {body["error"]["code"] for body in refused} == {"amount_too_large"}

    db.session.expire_all()
    fresh = db.session.get(Payment, payment.id)
    reserved_rows = db.session.scalar(select(func.sum(Refund.amount))
                                      .where(Refund.payment_id == payment.id))
    assert fresh.refund_reserved == reserved_rows == 9000 <= fresh.amount

    run_jobs()
    db.session.expire_all()
    fresh = db.session.get(Payment, payment.id)
    assert fresh.amount_refunded == 9000
    assert fresh.amount_refunded == charge_amount_refunded(sdk, payment)
    assert {r.status for r in fresh.refunds} == {"succeeded"}


def test_concurrent_mixed_amounts_never_over_reserve(app, sdk, customer, admin, api_token,
                                                     run_jobs):
    """RELIABILITY 12: concurrent refunds of mixed amounts never reserve more than was captured."""
    payment = paid_payment(sdk, customer, 1000)
    token = api_token(admin)
    amounts = [100, 250, 50, 300, 175, 125, 200, 80, 120, 100]  # 1500 = 150%
    results = _fire_concurrently(app, token, [{"payment_id": payment.public_id, "amount": a}
                                              for a in amounts])
    accepted = sum(a for a, (code, _) in zip(amounts, results, strict=True) if code == 202)
    assert 0 < accepted <= 1000
    for code, body in results:
        assert code == 202 or body["error"]["code"] == "amount_too_large", body
    run_jobs()
    db.session.expire_all()
    fresh = db.session.get(Payment, payment.id)
    assert fresh.refund_reserved == fresh.amount_refunded == accepted
    assert charge_amount_refunded(sdk, payment) == accepted
