"""The admin's failed-emails page: who sees it, what it shows, and the audited Retry button."""

from __future__ import annotations

import json
import socket

import pytest
from sqlalchemy import select

from payments_site.extensions import db
from payments_site.models import AuditLog, OutboundEmail
from payments_site.services import receipts


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def failed_receipt_email(app, make_payment, run_jobs):
    """A receipt email that gave up: the mail server was unreachable on its only attempt."""
    app.config["MAIL_MAX_ATTEMPTS"] = 1
    good_port = app.config["MAIL_PORT"]
    app.config["MAIL_PORT"] = _closed_port()
    payment = make_payment()
    receipt = receipts.issue_payment_receipt(payment.id)
    run_jobs()
    app.config["MAIL_PORT"] = good_port
    email = db.session.scalar(select(OutboundEmail).where(
        OutboundEmail.receipt_id == receipt.id))
    assert email is not None and email.status == "failed"
    return email, payment, receipt


def _html(response) -> str:
    return response.get_data(as_text=True)


def test_admin_sees_failed_emails_linked_from_the_admin_pages(
        app, admin, customer, login_as, failed_receipt_email):
    email, payment, receipt = failed_receipt_email
    session = login_as(admin)
    payments_page = _html(session.get("/admin/payments"))
    assert 'href="/admin/emails"' in payments_page and "Failed emails" in payments_page
    assert 'href="/admin/emails"' in _html(session.get("/admin/webhooks"))

    response = session.get("/admin/emails")
    assert response.status_code == 200
    assert response.headers["Cache-Control"] == "no-store"
    html = _html(response)
    row = html[html.index(f'data-email-id="{email.id}"'):]
    row = row[:row.index("</tr>")]
    assert customer.email in row
    assert f"Receipt {receipt.number} from" in row
    assert '<td class="num">1</td>' in row  # attempts
    assert "ConnectionRefusedError" in row  # the last error
    assert f'href="/admin/payments/{payment.public_id}"' in row
    assert f'action="/admin/emails/{email.id}/retry"' in row and 'name="csrf_token"' in row


def test_the_page_says_when_nothing_failed(app, admin, login_as):
    html = _html(login_as(admin).get("/admin/emails"))
    assert "No failed emails" in html


def test_customer_gets_403_and_anonymous_goes_to_login(app, client, customer, login_as,
                                                       failed_receipt_email):
    email, _, _ = failed_receipt_email
    anonymous = client.get("/admin/emails")
    assert anonymous.status_code == 302 and "/auth/login" in anonymous.headers["Location"]
    session = login_as(customer)
    page = session.get("/admin/emails")
    assert page.status_code == 403 and email.subject not in _html(page)
    retry = session.client.post(f"/admin/emails/{email.id}/retry",
                                data={"csrf_token": session.csrf_token})
    assert retry.status_code == 403
    db.session.refresh(email)
    assert email.status == "failed"
    assert db.session.scalar(select(AuditLog)) is None


def test_retry_needs_the_csrf_token(app, admin, login_as, failed_receipt_email, run_jobs,
                                    mail_sink):
    email, _, _ = failed_receipt_email
    response = login_as(admin).client.post(f"/admin/emails/{email.id}/retry")
    assert response.status_code == 403
    run_jobs()
    db.session.refresh(email)
    assert email.status == "failed" and mail_sink.messages == []


def test_retry_queues_it_audits_it_and_it_is_delivered(
        app, admin, customer, login_as, failed_receipt_email, run_jobs, mail_sink):
    email, payment, receipt = failed_receipt_email
    session = login_as(admin)
    response = session.client.post(f"/admin/emails/{email.id}/retry",
                                   data={"csrf_token": session.csrf_token},
                                   follow_redirects=True)
    assert response.status_code == 200
    assert f"Email #{email.id} is queued to be sent again." in _html(response)

    [entry] = db.session.scalars(select(AuditLog).where(AuditLog.action == "email.retried"))
    assert (entry.actor_id, entry.payment_id) == (admin.id, payment.id)
    details = json.loads(entry.details)
    assert details["email_id"] == email.id and details["to"] == customer.email
    assert "ConnectionRefusedError" in details["last_error"]

    run_jobs()
    messages = mail_sink.wait_for(1)
    assert len(messages) == 1
    assert messages[0]["To"] == customer.email
    assert messages[0]["Message-ID"] == email.message_id  # the same message, not a new one
    db.session.refresh(email)
    assert (email.status, email.attempts) == ("sent", 1)
    assert "No failed emails" in _html(session.get("/admin/emails"))

    timeline = _html(session.get(f"/admin/payments/{payment.public_id}"))
    timeline = timeline[timeline.index('id="timeline"'):]
    assert "Failed email retried" in timeline and "by admin@example.com" in timeline

    # A second click (or a stale tab) does nothing more.
    again = session.client.post(f"/admin/emails/{email.id}/retry",
                                data={"csrf_token": session.csrf_token},
                                follow_redirects=True)
    assert "is not failed any more" in _html(again)
    run_jobs()
    mail_sink.wait_for(2, timeout=1.0)
    assert len(mail_sink.messages) == 1
    assert len(list(db.session.scalars(
        select(AuditLog).where(AuditLog.action == "email.retried")))) == 1


def test_retry_of_an_unknown_email_is_404(app, admin, login_as):
    session = login_as(admin)
    for path in ("/admin/emails/999999/retry", "/admin/emails/not-a-number/retry"):
        response = session.client.post(path, data={"csrf_token": session.csrf_token})
        assert response.status_code == 404, path
    assert db.session.scalar(select(AuditLog)) is None
