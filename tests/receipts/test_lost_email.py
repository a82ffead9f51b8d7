"""A receipt is never left without the email that delivers it, whatever dies when."""

from __future__ import annotations

from datetime import timedelta
from email.message import EmailMessage

import pytest
from sqlalchemy import delete, event, func, select

from payments_site.extensions import db
from payments_site.models import OutboundEmail, Payment, Receipt, Refund, utcnow
from payments_site.queues import get_queue
from payments_site.services import receipts, sweeper


class SimulatedKill(BaseException):
    """Stands in for SIGKILL: nothing after the raise point runs, no handler catches it."""


def _count(model: type, *where: object) -> int:
    db.session.expire_all()
    return int(db.session.scalar(select(func.count()).select_from(model).where(*where)) or 0)


def _pdf(message: EmailMessage) -> bytes:
    [part] = [p for p in message.iter_attachments()
              if p.get_content_type() == "application/pdf"]
    return bytes(part.get_content())


def _lose_email_rows_and_jobs(receipt: Receipt) -> None:
    """The state an interrupted issue left before: the receipt committed, no email row, and
    Redis no longer holding any job about it."""
    db.session.execute(delete(OutboundEmail).where(OutboundEmail.receipt_id == receipt.id))
    db.session.commit()
    for name in ("receipts", "emails"):
        get_queue(name).empty()


def test_issuing_records_the_email_with_the_receipt(app, make_payment):
    receipt = receipts.issue_payment_receipt(make_payment().id)
    [email] = db.session.scalars(select(OutboundEmail)
                                 .where(OutboundEmail.receipt_id == receipt.id))
    assert (email.dedupe_key, email.kind, email.status) == \
        (f"receipt:{receipt.id}", "receipt", "pending")


def test_a_kill_before_the_commit_leaves_neither_and_the_sweep_sends_one(
        app, make_payment, run_jobs, mail_sink):
    payment = make_payment()

    def die_once_the_email_row_is_written(session, context, instances):
        if any(isinstance(obj, OutboundEmail) for obj in session.new):
            raise SimulatedKill()

    # `before_flush` sees the email row about to be written: the worker dies right there.
    with _listening(db.session(), "before_flush", die_once_the_email_row_is_written):
        with pytest.raises(SimulatedKill):
            receipts.issue_payment_receipt(payment.id)
    db.session.rollback()
    assert _count(Receipt) == 0 and _count(OutboundEmail) == 0
    get_queue("receipts").empty()

    db.session.get_one(Payment, payment.id).succeeded_at = utcnow() - timedelta(minutes=5)
    db.session.commit()
    assert sweeper.run_sweep()["receipts"] == 1
    run_jobs()
    messages = mail_sink.wait_for(1)
    [receipt] = db.session.scalars(select(Receipt))
    assert len(messages) == 1 and receipt.number in str(messages[0]["Subject"])
    mail_sink.wait_for(2, timeout=1.0)
    assert len(mail_sink.messages) == 1


def test_the_sweep_emails_a_receipt_that_has_no_email_row_exactly_once(
        app, make_payment, customer, run_jobs, mail_sink):
    receipt = receipts.issue_payment_receipt(make_payment().id)
    _lose_email_rows_and_jobs(receipt)
    run_jobs()
    assert mail_sink.wait_for(1, timeout=1.0) == []  # nothing left would ever send it

    counts = sweeper.run_sweep()
    assert counts["receipt_emails"] == 1 and counts["receipts"] == 0
    run_jobs()
    messages = mail_sink.wait_for(1)
    assert len(messages) == 1
    assert messages[0]["To"] == customer.email
    assert messages[0]["Subject"] == \
        f"Receipt {receipt.number} from {app.config['MERCHANT_NAME']}"
    assert _pdf(messages[0]) == receipt.pdf

    # Repaired once: later sweeps find nothing and send nothing more.
    assert sweeper.run_sweep()["receipt_emails"] == 0
    run_jobs()
    mail_sink.wait_for(2, timeout=1.0)
    assert len(mail_sink.messages) == 1
    assert _count(OutboundEmail, OutboundEmail.receipt_id == receipt.id,
                  OutboundEmail.status == "sent") == 1
    db.session.refresh(receipt)
    assert receipt.emailed_at is not None


def test_the_sweep_emails_a_refund_note_that_has_no_email_row(
        app, make_payment, make_refund, run_jobs, mail_sink):
    payment = make_payment()
    receipts.issue_payment_receipt(payment.id)
    run_jobs()
    assert len(mail_sink.wait_for(1)) == 1
    note = receipts.issue_refund_note(make_refund(payment, 1000).id)
    _lose_email_rows_and_jobs(note)

    assert sweeper.run_sweep()["receipt_emails"] == 1
    run_jobs()
    messages = mail_sink.wait_for(2)
    assert len(messages) == 2
    assert messages[1]["Subject"].startswith(f"Refund note {note.number}")
    assert _pdf(messages[1]) == note.pdf
    assert sweeper.run_sweep()["receipt_emails"] == 0
    mail_sink.wait_for(3, timeout=1.0)
    assert len(mail_sink.messages) == 2
    assert _count(Refund) == 1


class _listening:
    """A SQLAlchemy event listener for the duration of a `with` block."""

    def __init__(self, target: object, name: str, listener: object) -> None:
        self.args = (target, name, listener)

    def __enter__(self) -> None:
        event.listen(*self.args)

    def __exit__(self, *exc: object) -> None:
        event.remove(*self.args)
