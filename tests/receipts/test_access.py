"""Who may see receipts and ask for them again: the owner and admins; everyone else gets 404."""

from __future__ import annotations

import json

from sqlalchemy import func, select

from payments_site.extensions import db
from payments_site.models import AuditLog, OutboundEmail
from payments_site.services import receipts
from tests.receipts.conftest import pdf_text


def test_owner_downloads_the_stored_pdf(app, make_payment, customer, login_as):
    receipt = receipts.issue_payment_receipt(make_payment().id)
    response = login_as(customer).get(f"/receipts/{receipt.number}.pdf")

    assert response.status_code == 200
    assert response.mimetype == "application/pdf"
    assert response.headers["Content-Disposition"] == \
        f'attachment; filename="{receipt.number}.pdf"'
    assert response.headers["Cache-Control"] == "no-store"
    assert response.data == receipt.pdf
    assert receipt.number in pdf_text(response.data)


def test_another_customer_gets_404(app, make_payment, make_user, login_as):
    receipt = receipts.issue_payment_receipt(make_payment().id)
    stranger = make_user("stranger@example.com")
    response = login_as(stranger).get(f"/receipts/{receipt.number}.pdf")
    assert response.status_code == 404
    assert b"%PDF" not in response.data


def test_admin_downloads_any_receipt(app, make_payment, admin, login_as):
    receipt = receipts.issue_payment_receipt(make_payment().id)
    response = login_as(admin).get(f"/receipts/{receipt.number}.pdf")
    assert response.status_code == 200
    assert response.data == receipt.pdf


def test_anonymous_is_sent_to_login(app, client, make_payment):
    receipt = receipts.issue_payment_receipt(make_payment().id)
    response = client.get(f"/receipts/{receipt.number}.pdf")
    assert response.status_code == 302
    assert "/auth/login" in response.headers["Location"]


def test_unknown_number_is_404(app, customer, login_as):
    assert login_as(customer).get("/receipts/2026-999999.pdf").status_code == 404


def test_the_payment_page_links_to_its_receipt_pdf(app, make_payment, customer, login_as):
    payment = make_payment()
    session = login_as(customer)
    before = session.get(f"/account/payments/{payment.public_id}").get_data(as_text=True)
    assert "/receipts/" not in before  # no receipt yet, no link

    receipt = receipts.issue_payment_receipt(payment.id)
    html = session.get(f"/account/payments/{payment.public_id}").get_data(as_text=True)
    link = f'href="/receipts/{receipt.number}.pdf"'
    assert link in html
    assert f"Download receipt {receipt.number} (PDF)" in html
    response = session.get(f"/receipts/{receipt.number}.pdf")
    assert response.status_code == 200 and response.data == receipt.pdf


def test_receipts_page_lists_receipts_and_refund_notes(app, make_payment, make_refund,
                                                        make_user, customer, login_as):
    payment = make_payment()
    receipt = receipts.issue_payment_receipt(payment.id)
    note = receipts.issue_refund_note(make_refund(payment, 1000).id)
    other = receipts.issue_payment_receipt(make_payment(make_user("o@example.com")).id)

    response = login_as(customer).get("/account/receipts")
    assert response.status_code == 200
    assert response.headers["Cache-Control"] == "no-store"
    html = response.get_data(as_text=True)
    assert receipt.number in html and note.number in html
    assert other.number not in html
    assert "$64.48" in html and "$10.00" in html
    assert f'href="/receipts/{receipt.number}.pdf"' in html
    assert f"/account/payments/{payment.public_id}" in html
    # Newest first: the refund note was issued after the receipt.
    assert html.index(note.number) < html.index(receipt.number)


def test_receipts_page_needs_login(app, client):
    response = client.get("/account/receipts")
    assert response.status_code == 302


def test_receipts_page_without_receipts(app, customer, login_as):
    html = login_as(customer).get("/account/receipts").get_data(as_text=True)
    assert "no receipts yet" in html


def _email_count() -> int:
    return int(db.session.scalar(select(func.count(OutboundEmail.id))) or 0)


def test_owner_resends_the_receipt(app, make_payment, customer, login_as, run_jobs,
                                   mail_sink):
    payment = make_payment()
    receipt = receipts.issue_payment_receipt(payment.id)
    session = login_as(customer)
    first = session.post(f"/api/payments/{payment.public_id}/receipt/resend")
    second = session.post(f"/api/payments/{payment.public_id}/receipt/resend")
    assert first.status_code == 202 and first.get_json() == {"queued": True}
    assert second.status_code == 202
    run_jobs()

    messages = mail_sink.wait_for(3)
    assert len(messages) == 3  # the original and two resends, each sent once
    assert len({m["Message-ID"] for m in messages}) == 3
    for message in messages:
        assert message["To"] == customer.email
        (attachment,) = [p for p in message.iter_attachments()]
        assert attachment.get_content() == receipt.pdf
    run_jobs()
    assert len(mail_sink.wait_for(4, timeout=1.0)) == 3


def test_admin_resend_goes_to_the_owner(app, make_payment, customer, admin, login_as,
                                        run_jobs, mail_sink):
    payment = make_payment()
    receipts.issue_payment_receipt(payment.id)
    run_jobs()
    response = login_as(admin).post(f"/api/payments/{payment.public_id}/receipt/resend")
    assert response.status_code == 202
    run_jobs()
    messages = mail_sink.wait_for(2)
    assert [m["To"] for m in messages] == [customer.email, customer.email]


def test_an_admin_resend_is_audited_on_the_payments_timeline(app, make_payment, customer, admin,
                                                            login_as):
    payment = make_payment()
    receipt = receipts.issue_payment_receipt(payment.id)
    session = login_as(admin)
    assert session.post(f"/api/payments/{payment.public_id}/receipt/resend").status_code == 202

    [entry] = db.session.scalars(select(AuditLog).where(AuditLog.action == "receipt.resent"))
    assert (entry.actor_id, entry.payment_id) == (admin.id, payment.id)
    assert (entry.amount, entry.currency) == (payment.amount, "usd")
    assert json.loads(entry.details) == {"receipt_number": receipt.number,
                                         "to": customer.email}
    html = session.get(f"/admin/payments/{payment.public_id}").get_data(as_text=True)
    timeline = html[html.index('id="timeline"'):]
    item = timeline[timeline.index("Receipt re-sent"):]
    item = item[:item.index("</li>")]
    assert receipt.number in item and customer.email in item
    assert "by admin@example.com" in item and "$64.48" in item


def test_resend_by_another_customer_is_404(app, make_payment, make_user, login_as):
    payment = make_payment()
    receipts.issue_payment_receipt(payment.id)
    before = _email_count()
    response = login_as(make_user("x@example.com")).post(
        f"/api/payments/{payment.public_id}/receipt/resend")
    assert response.status_code == 404
    assert response.get_json()["error"]["code"] == "not_found"
    assert _email_count() == before


def test_resend_without_a_receipt_is_404_with_a_clear_message(app, make_payment, customer,
                                                              login_as):
    payment = make_payment()
    response = login_as(customer).post(f"/api/payments/{payment.public_id}/receipt/resend")
    assert response.status_code == 404
    assert "no receipt yet" in response.get_json()["error"]["message"]
    assert _email_count() == 0


def test_resend_unknown_payment_is_404(app, customer, login_as):
    response = login_as(customer).post("/api/payments/pay_doesnotexist/receipt/resend")
    assert response.status_code == 404


def test_resend_needs_authentication(app, client, make_payment):
    payment = make_payment()
    receipts.issue_payment_receipt(payment.id)
    before = _email_count()
    # No session and no token is a 401 (API.md), as is a bad Bearer token.
    response = client.post(f"/api/payments/{payment.public_id}/receipt/resend")
    assert response.status_code == 401
    assert response.get_json()["error"]["code"] == "unauthenticated"
    response = client.post(f"/api/payments/{payment.public_id}/receipt/resend",
                           headers={"Authorization": "Bearer not-a-token"})
    assert response.status_code == 401
    assert _email_count() == before


def test_resend_with_a_session_needs_the_csrf_token(app, make_payment, customer, login_as):
    payment = make_payment()
    receipts.issue_payment_receipt(payment.id)
    before = _email_count()
    session = login_as(customer)
    response = session.client.post(f"/api/payments/{payment.public_id}/receipt/resend")
    # API.md: a bad or missing CSRF token is 403 forbidden.
    assert response.status_code == 403
    assert response.get_json()["error"]["code"] == "forbidden"
    wrong = session.client.post(f"/api/payments/{payment.public_id}/receipt/resend",
                                headers={"X-CSRFToken": "not-the-token"})
    assert wrong.status_code == 403
    assert _email_count() == before
    assert db.session.scalar(select(func.count(AuditLog.id))) == 0


def test_resend_with_a_bearer_token_needs_no_csrf(app, client, make_payment, customer,
                                                  api_token):
    payment = make_payment()
    receipts.issue_payment_receipt(payment.id)
    response = client.post(f"/api/payments/{payment.public_id}/receipt/resend",
                           headers={"Authorization": f"Bearer {api_token(customer)}"})
    assert response.status_code == 202
    assert _email_count() == 2
