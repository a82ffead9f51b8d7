"""Payment history (keyset pagination), one payment, and the account pages."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from sqlalchemy import select

from payments_site.extensions import db
from payments_site.models import Payment, PaymentItem, Refund, utcnow


def _payments(user, product, n, status="succeeded"):
    base = utcnow()
    rows = []
    for i in range(n):
        payment = Payment(user_id=user.id, status=status, amount=1999, currency="usd",
                          cart_hash=f"h{i}", description=f"payment {i}",
                          created_at=base - timedelta(minutes=i))
        payment.items = [PaymentItem(product_id=product.id, name="Ceramic mug", quantity=1,
                                     unit_amount=1999)]
        rows.append(payment)
    db.session.add_all(rows)
    db.session.commit()
    return rows


def test_history_pages_newest_first_with_a_cursor(shopper, customer, mug):
    rows = _payments(customer, mug, 5)
    # Two share a timestamp: the id breaks the tie, nothing is skipped or repeated.
    rows[3].created_at = rows[2].created_at
    db.session.commit()
    seen, cursor = [], None
    while True:
        query = "/api/payments/history?limit=2" + (f"&cursor={cursor}" if cursor else "")
        body = shopper.get(query).get_json()
        seen += [p["id"] for p in body["data"]]
        cursor = body["next_cursor"]
        if cursor is None:
            break
    assert sorted(seen) == sorted(r.public_id for r in rows) and len(seen) == 5
    assert seen[:2] == [rows[0].public_id, rows[1].public_id]


def test_history_filters_by_status_and_shows_only_mine(shopper, customer, make_user, mug):
    _payments(customer, mug, 2, status="succeeded")
    _payments(customer, mug, 1, status="failed")
    _payments(make_user("someone@example.com"), mug, 3)
    body = shopper.get("/api/payments/history?status=failed").get_json()
    assert [p["status"] for p in body["data"]] == ["failed"] and body["next_cursor"] is None
    assert len(shopper.get("/api/payments/history").get_json()["data"]) == 3


@pytest.mark.parametrize("query", ["limit=0", "limit=101", "limit=abc", "limit=-1", "limit=1.5",
                                   "cursor=garbage", "cursor=", "status=paid",
                                   "cursor=MjAyNC0wMS0wMXx4"])
def test_history_rejects_bad_queries(shopper, query):
    response = shopper.get(f"/api/payments/history?{query}")
    assert response.status_code == 400
    assert response.get_json()["error"]["param"] == query.split("=")[0]


def test_one_payment_for_owner_and_admin_only(shopper, customer, admin, login_as, make_user,
                                              mug):
    (payment,) = _payments(customer, mug, 1)
    db.session.add(Refund(payment_id=payment.id, amount=500, currency="usd",
                          status="succeeded", reason="requested_by_customer"))
    db.session.commit()
    body = shopper.get(f"/api/payments/{payment.public_id}").get_json()
    assert body["payment"]["id"] == payment.public_id
    assert [r["amount"] for r in body["refunds"]] == [500]
    assert login_as(admin).get(f"/api/payments/{payment.public_id}").status_code == 200
    stranger = login_as(make_user("stranger@example.com"))
    response = stranger.get(f"/api/payments/{payment.public_id}")
    assert response.status_code == 404
    assert response.get_json()["error"]["code"] == "not_found"
    assert stranger.get("/api/payments/pay_doesnotexist").status_code == 404
    assert stranger.get(f"/account/payments/{payment.public_id}").status_code == 404
    assert stranger.get(f"/checkout/complete?payment={payment.public_id}").status_code == 404


def _refunded_payment_with_receipt(shopper, customer, admin, mug, make_card, api_token,
                                   run_jobs):
    """A real purchase (2 mugs, saved Visa), its receipt issued, then $10.00 refunded."""
    response = shopper.post("/api/payments/process", json={
        "items": [{"product_id": mug.id, "quantity": 2}],
        "payment_method_id": make_card(customer)})
    assert response.status_code == 201, response.get_json()
    public_id = response.get_json()["payment"]["id"]
    run_jobs()  # fulfilment: the receipt
    refund = shopper.client.post("/api/payments/refund",
                                 json={"payment_id": public_id, "amount": 1000},
                                 headers={"Authorization": f"Bearer {api_token(admin)}"})
    assert refund.status_code == 202, refund.get_json()
    run_jobs()  # the refund goes to Stripe
    payment = db.session.scalar(select(Payment).where(Payment.public_id == public_id))
    db.session.refresh(payment)
    assert (payment.amount_refunded, payment.refund_status) == (1000, "partial")
    assert payment.receipt is not None
    return payment


def _row(html, public_id):
    match = re.search(rf'<tr data-payment-id="{public_id}"[^>]*>(.*?)</tr>', html, re.S)
    assert match, f"{public_id} is not listed"
    return match.group(1)


def test_account_pages(shopper, customer, admin, mug, make_card, api_token, run_jobs):
    paid = _refunded_payment_with_receipt(shopper, customer, admin, mug, make_card, api_token,
                                          run_jobs)
    rows = _payments(customer, mug, 22)
    rows[0].status = "failed"
    rows[0].failure_message = "Your card was declined."
    db.session.commit()
    page = shopper.get("/account/payments")
    html = page.get_data(as_text=True)
    assert page.status_code == 200 and page.headers["Cache-Control"].startswith("no-store")
    assert html.count("data-payment-id=") == 20 and "Older payments" in html
    assert "$19.99" in html
    # The refunded payment, newest, with its state in plain words.
    refunded_row = _row(html, paid.public_id)
    assert 'class="badge badge-partially-refunded">Partially refunded · $10.00<' in refunded_row
    assert "$39.98" in refunded_row and "2 × Ceramic mug" in refunded_row
    assert re.search(r"Visa <span aria-hidden=\"true\">••••</span>.*? 4242", refunded_row)
    assert 'class="badge badge-paid">Paid<' in _row(html, rows[1].public_id)
    failed = shopper.get("/account/payments?status=failed").get_data(as_text=True)
    assert failed.count("data-payment-id=") == 1
    assert shopper.get("/account/payments?status=bogus").status_code == 400
    detail = shopper.get(f"/account/payments/{rows[0].public_id}").get_data(as_text=True)
    assert "Ceramic mug" in detail and "Your card was declined." in detail
    assert "Timeline" in detail

    detail = shopper.get(f"/account/payments/{paid.public_id}").get_data(as_text=True)
    items = re.search(r'id="items-title".*?</table>', detail, re.S).group(0)
    assert re.search(r"<td>Ceramic mug</td><td[^>]*>2</td><td[^>]*>\$19\.99</td>"
                     r"<td[^>]*>\$39\.98</td>", items)
    assert "Visa ending in 4242" in detail
    assert '<dt>Status</dt><dd><span class="badge badge-partially-refunded">Partially ' \
        'refunded · $10.00</span>' in detail
    refunds = re.search(r'id="refunds-title".*?</section>', detail, re.S).group(0)
    assert re.search(r'badge-refund-succeeded">Refunded</span></td><td class="num">\$10\.00',
                     refunds)
    assert "<dt>Refunded</dt><dd>$10.00</dd>" in detail
    assert "<dt>Paid after refunds</dt><dd>$29.98</dd>" in detail
    number = paid.receipt.number
    assert f'href="/receipts/{number}.pdf"' in detail
    pdf = shopper.get(f"/receipts/{number}.pdf")
    assert pdf.status_code == 200 and pdf.mimetype == "application/pdf"
    timeline = re.search(r'id="timeline-title".*?</ol>', detail, re.S).group(0)
    assert re.findall(r"<strong>(.*?)</strong>", timeline) == ["Started", "Paid", "Refunded"]
    assert "<strong>Refunded</strong> $10.00" in timeline


def test_money_follows_the_viewer_locale(make_user, login_as, mug):
    user = make_user("berlin@example.com", locale="de_DE")
    _payments(user, mug, 1)
    mug.unit_amount = 123456
    db.session.commit()
    session = login_as(user)
    assert "19,99\xa0$" in session.get("/account/payments").get_data(as_text=True)
    assert "1.234,56\xa0$" in session.get("/").get_data(as_text=True)
