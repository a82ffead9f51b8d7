"""Receipt emails: through a real SMTP server, the stored PDF attached, sent exactly once."""

from __future__ import annotations

import os
import socket
import threading
import time
from datetime import timedelta
from email.message import EmailMessage

import pytest
import redis
from flask_mail import email_dispatched
from sqlalchemy import func, select

from payments_site.extensions import db
from payments_site.models import OutboundEmail, Receipt, utcnow
from payments_site.queues import get_queue
from payments_site.services import emails, receipts
from payments_site.tasks.emails import send_email


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _receipt_email(receipt: Receipt) -> OutboundEmail:
    email = db.session.scalar(select(OutboundEmail).where(
        OutboundEmail.dedupe_key == f"receipt:{receipt.id}"))
    assert email is not None
    return email


def _pdf_attachment(message: EmailMessage) -> tuple[str, bytes]:
    parts = [p for p in message.iter_attachments() if p.get_content_type() == "application/pdf"]
    assert len(parts) == 1
    return str(parts[0].get_filename()), parts[0].get_content()


class SimulatedKill(BaseException):
    """Stands in for SIGKILL: nothing after the raise point runs, no handler catches it."""


def test_receipt_email_reaches_the_smtp_server_with_the_stored_pdf(
        app, make_payment, customer, run_jobs, mail_sink):
    payment = make_payment()
    receipt = receipts.issue_payment_receipt(payment.id)
    assert run_jobs() >= 1

    messages = mail_sink.wait_for(1)
    assert len(messages) == 1
    message = messages[0]
    assert message["To"] == customer.email
    assert "receipts@shop.example" in message["From"]
    assert message["Subject"] == f"Receipt {receipt.number} from {app.config['MERCHANT_NAME']}"
    filename, data = _pdf_attachment(message)
    assert filename == f"{receipt.number}.pdf"
    assert data == receipt.pdf  # byte-identical to what is stored
    text = message.get_body(preferencelist=("plain",)).get_content()
    html = message.get_body(preferencelist=("html",)).get_content()
    assert receipt.number in text and "$64.48" in text and "Visa ending in 4242" in text
    assert receipt.number in html and "$64.48" in html

    email = _receipt_email(receipt)
    assert email.status == "sent" and email.sent_at is not None and email.attempts == 1
    assert message["Message-ID"] == email.message_id
    db.session.refresh(receipt)
    assert receipt.emailed_at is not None


def test_refund_note_email_carries_the_stored_pdf(app, make_payment, make_refund, customer,
                                                  run_jobs, mail_sink):
    payment = make_payment()
    receipt = receipts.issue_payment_receipt(payment.id)
    note = receipts.issue_refund_note(make_refund(payment, 1000).id)
    run_jobs()

    messages = mail_sink.wait_for(2)
    assert len(messages) == 2
    [message] = [m for m in messages if m["Subject"].startswith("Refund note")]
    assert message["To"] == customer.email
    assert message["Subject"] == f"Refund note {note.number} from {app.config['MERCHANT_NAME']}"
    filename, data = _pdf_attachment(message)
    assert filename == f"{note.number}.pdf"
    db.session.refresh(note)
    assert data == note.pdf  # byte-identical to what is stored
    assert data != receipt.pdf
    text = message.get_body(preferencelist=("plain",)).get_content()
    assert "$10.00" in text and receipt.number in text and note.number in text


def test_a_duplicated_job_sends_one_email(app, make_payment, run_jobs, mail_sink):
    receipt = receipts.issue_payment_receipt(make_payment().id)
    email = _receipt_email(receipt)
    # The same job enqueued again, run again, and the row queued again by a second issue run.
    get_queue("emails").enqueue(send_email, email.id)
    receipts.issue_payment_receipt(receipt.payment_id)
    run_jobs()
    assert send_email(email.id) == "sent"

    mail_sink.wait_for(2, timeout=1.0)
    assert len(mail_sink.messages) == 1
    assert db.session.scalar(select(func.count(OutboundEmail.id))) == 1


def test_two_workers_running_the_same_job_at_once_send_one_email(app, make_payment, mail_sink):
    receipt = receipts.issue_payment_receipt(make_payment().id)
    email_id = _receipt_email(receipt).id
    barrier = threading.Barrier(4)
    outcomes: list[str] = []

    def worker() -> None:
        with app.app_context():
            barrier.wait(timeout=10)
            try:
                outcomes.append(emails.deliver(email_id))
            except emails.EmailBusy:
                outcomes.append("busy")  # RQ would retry it later: a no-op then

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)

    assert "sent" in outcomes and len(outcomes) == 4
    mail_sink.wait_for(2, timeout=1.0)
    assert len(mail_sink.messages) == 1


def test_a_worker_killed_before_sending_sends_on_the_retry(app, make_payment, mail_sink):
    """RELIABILITY 26: a worker killed before the SMTP send → the retried job sends it once."""
    receipt = receipts.issue_payment_receipt(make_payment().id)
    email = _receipt_email(receipt)
    # Killed while the row was pending and nothing was sent: only the attempt is recorded.
    db.session.execute(OutboundEmail.__table__.update()
                       .where(OutboundEmail.id == email.id).values(attempts=1))
    db.session.commit()

    assert emails.deliver(email.id) == "sent"
    assert len(mail_sink.wait_for(1)) == 1


def test_a_kill_after_smtp_accepted_repeats_the_identical_message(app, make_payment, mail_sink):
    """RELIABILITY 26: a kill after the SMTP server accepted the message → the retry repeats
    that same message (same Message-ID, same bytes), never a different one, never lost."""
    receipt = receipts.issue_payment_receipt(make_payment().id)
    email = _receipt_email(receipt)

    def die_after_accept(app, message):  # the server has the message; we die before recording
        raise SimulatedKill()

    with email_dispatched.connected_to(die_after_accept):
        with pytest.raises(SimulatedKill):
            emails.deliver(email.id)
    db.session.rollback()
    db.session.refresh(email)
    assert email.status == "pending" and email.sent_at is None
    assert len(mail_sink.wait_for(1)) == 1

    assert emails.deliver(email.id) == "sent"  # RQ retries the abandoned job
    assert emails.deliver(email.id) == "sent"  # and once recorded, never again
    messages = mail_sink.wait_for(2)
    assert len(messages) == 2
    assert messages[0]["Message-ID"] == messages[1]["Message-ID"] == email.message_id
    assert mail_sink.raw[0] == mail_sink.raw[1]  # the very same bytes
    mail_sink.wait_for(3, timeout=1.0)
    assert len(mail_sink.messages) == 2


def test_smtp_down_records_the_failure_and_a_later_retry_succeeds(
        app, make_payment, run_jobs, mail_sink):
    good_port = app.config["MAIL_PORT"]
    app.config["MAIL_PORT"] = _closed_port()
    receipt = receipts.issue_payment_receipt(make_payment().id)
    run_jobs(include_scheduled=False)

    email = _receipt_email(receipt)
    assert email.status == "pending"
    assert email.attempts == 1
    assert email.last_error and "Connection" in email.last_error
    assert email.sent_at is None
    # RQ holds the retry with a backoff delay.
    assert f"email-{email.id}" in get_queue("emails").scheduled_job_registry.get_job_ids()
    assert mail_sink.messages == []
    assert emails.failed_emails() == []

    app.config["MAIL_PORT"] = good_port
    run_jobs()  # the scheduled retry comes due
    db.session.refresh(email)
    assert email.status == "sent" and email.attempts == 2 and email.last_error is None
    messages = mail_sink.wait_for(1)
    assert len(messages) == 1 and messages[0]["Message-ID"] == email.message_id


def test_after_the_last_attempt_the_email_is_failed_and_visible(
        app, make_payment, run_jobs, mail_sink):
    app.config["MAIL_MAX_ATTEMPTS"] = 3
    good_port = app.config["MAIL_PORT"]
    app.config["MAIL_PORT"] = _closed_port()
    receipt = receipts.issue_payment_receipt(make_payment().id)
    run_jobs()  # every retry, all failing

    email = _receipt_email(receipt)
    assert email.status == "failed" and email.attempts == 3
    assert [e.id for e in emails.failed_emails()] == [email.id]
    assert emails.deliver(email.id) == "failed"  # a stray job does not send a failed email

    app.config["MAIL_PORT"] = good_port
    assert emails.retry_failed_email(email.id) is True
    run_jobs()
    db.session.refresh(email)
    assert email.status == "sent"
    assert len(mail_sink.wait_for(1)) == 1
    assert emails.failed_emails() == []


def test_send_later_is_idempotent_by_dedupe_key(app, run_jobs, mail_sink):
    first = emails.send_later(dedupe_key="dispute:dp_1", kind="dispute", to="ops@example.com",
                              subject="Dispute opened", text_body="A dispute was opened.")
    again = emails.send_later(dedupe_key="dispute:dp_1", kind="dispute", to="ops@example.com",
                              subject="Different subject", text_body="Other body")
    assert again.id == first.id and again.subject == "Dispute opened"
    assert first.message_id.startswith("<") and first.message_id.endswith("@shop.example>")
    run_jobs()
    messages = mail_sink.wait_for(1)
    assert len(messages) == 1
    assert messages[0]["Subject"] == "Dispute opened"
    assert messages[0].get_body(preferencelist=("plain",)).get_content().strip() == \
        "A dispute was opened."
    assert list(messages[0].iter_attachments()) == []


def test_the_message_is_built_only_from_the_row(app, make_payment):
    receipt = receipts.issue_payment_receipt(make_payment().id)
    email = _receipt_email(receipt)
    first = emails.build_message(email).as_bytes()
    # A config change, or a worker in another time zone, does not change the message.
    app.config["MAIL_DEFAULT_SENDER"] = "Someone Else <x@other.example>"
    old_tz = os.environ.get("TZ")
    os.environ["TZ"] = "Asia/Kolkata"
    time.tzset()
    try:
        second = emails.build_message(email).as_bytes()
    finally:
        if old_tz is None:
            os.environ.pop("TZ", None)
        else:
            os.environ["TZ"] = old_tz
        time.tzset()
    assert first == second
    assert f"Message-ID: {email.message_id}".encode() in first


def _age(email: OutboundEmail, minutes: int = 10) -> None:
    db.session.execute(OutboundEmail.__table__.update().where(OutboundEmail.id == email.id)
                       .values(created_at=utcnow() - timedelta(minutes=minutes)))
    db.session.commit()


def test_redis_down_at_enqueue_the_sweeper_sends_it_later(app, make_payment, monkeypatch,
                                                           run_jobs, mail_sink):
    """RELIABILITY 25: Redis down when the email is queued → the row is kept and the sweeper
    sends it once Redis is back."""
    payment = make_payment()
    monkeypatch.setitem(app.extensions, "redis",
                        redis.Redis(host="127.0.0.1", port=_closed_port(),
                                    socket_connect_timeout=0.5))
    email = emails.send_later(dedupe_key="notice:1", kind="notice", to="c@example.com",
                              subject="Hello", text_body="Body", payment_id=payment.id)
    assert email.status == "pending" and email.id is not None  # committed all the same
    monkeypatch.undo()

    assert emails.requeue_pending_emails() == 0  # too fresh: its own job may still come
    _age(email)
    assert emails.requeue_pending_emails() == 1
    run_jobs()
    assert len(mail_sink.wait_for(1)) == 1
    db.session.refresh(email)
    assert email.status == "sent"
    assert emails.requeue_pending_emails() == 0


def test_the_sweeper_leaves_a_retry_that_waits_out_its_backoff(app, make_payment, run_jobs,
                                                               mail_sink):
    app.config["MAIL_PORT"] = _closed_port()
    receipt = receipts.issue_payment_receipt(make_payment().id)
    run_jobs(include_scheduled=False)
    email = _receipt_email(receipt)
    _age(email)
    assert emails.requeue_pending_emails() == 0
    db.session.refresh(email)
    assert email.attempts == 1
