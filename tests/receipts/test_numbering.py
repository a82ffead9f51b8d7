"""Receipt numbers: gap-free per series and year, allocated in the database, one per source."""

from __future__ import annotations

import threading
from datetime import UTC, datetime

import pytest
from sqlalchemy import func, select

from payments_site.extensions import db
from payments_site.models import OutboundEmail, Receipt, ReceiptSequence
from payments_site.services import fulfilment, receipts
from tests.receipts.conftest import pdf_text


def _sequence_value(series: str) -> int | None:
    return db.session.scalar(select(ReceiptSequence.last_value).where(
        ReceiptSequence.series == series, ReceiptSequence.year == datetime.now(UTC).year))


def test_twenty_concurrent_workers_get_numbers_one_to_twenty(app, make_payment):
    payments = [make_payment() for _ in range(20)]
    # Every payment twice, as when a webhook and the return page both enqueue the job.
    work = [p.id for p in payments] * 2
    barrier = threading.Barrier(len(work))
    errors: list[BaseException] = []

    def worker(payment_id: int) -> None:
        with app.app_context():
            try:
                barrier.wait(timeout=30)
                receipts.issue_payment_receipt(payment_id)
            except BaseException as error:  # noqa: BLE001 - reported below
                errors.append(error)

    threads = [threading.Thread(target=worker, args=(pid,)) for pid in work]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)

    assert errors == []
    db.session.expire_all()
    rows = db.session.scalars(select(Receipt).order_by(Receipt.sequence)).all()
    year = datetime.now(UTC).year
    assert [r.sequence for r in rows] == list(range(1, 21))
    assert [r.number for r in rows] == [f"{year}-{n:06d}" for n in range(1, 21)]
    assert sorted(r.payment_id for r in rows) == sorted(p.id for p in payments)
    assert _sequence_value("receipt") == 20
    # One receipt email per receipt, however many times the job ran.
    assert db.session.scalar(select(func.count(OutboundEmail.id))) == 20


def test_running_twice_returns_the_same_receipt_and_never_re_renders(app, make_payment):
    payment = make_payment()
    first = receipts.issue_payment_receipt(payment.id)
    first_id, first_sha, first_pdf = first.id, first.sha256, first.pdf
    second = receipts.issue_payment_receipt(payment.id)

    assert second.id == first_id
    assert second.sha256 == first_sha
    assert second.pdf == first_pdf
    assert db.session.scalar(select(func.count(Receipt.id))) == 1
    assert _sequence_value("receipt") == 1


def test_a_duplicate_run_does_not_consume_a_number(app, make_payment):
    a, b = make_payment(), make_payment()
    receipts.issue_payment_receipt(a.id)
    receipts.issue_payment_receipt(a.id)
    receipt_b = receipts.issue_payment_receipt(b.id)
    assert receipt_b.sequence == 2
    assert receipt_b.number.endswith("-000002")


def test_refund_notes_have_their_own_series(app, make_payment, make_refund):
    payment = make_payment()
    other = make_payment()
    receipts.issue_payment_receipt(payment.id)
    receipts.issue_payment_receipt(other.id)
    note = receipts.issue_refund_note(make_refund(payment, 500).id)
    second_note = receipts.issue_refund_note(make_refund(payment, 700).id)

    year = datetime.now(UTC).year
    assert note.number == f"CN-{year}-000001"
    assert second_note.number == f"CN-{year}-000002"
    assert note.series == "refund_note" and note.refund_id is not None
    assert _sequence_value("receipt") == 2
    assert _sequence_value("refund_note") == 2
    # Running the refund-note job again changes nothing.
    assert receipts.issue_refund_note(note.refund_id).id == note.id
    assert _sequence_value("refund_note") == 2


def test_a_payment_that_has_not_succeeded_gets_no_receipt(app, make_payment):
    payment = make_payment(status="processing")
    # The failed job's error, retried by RQ until the payment succeeds, says which payment.
    with pytest.raises(receipts.ReceiptNotReady, match=f"^payment {payment.id} has not succ"):
        receipts.issue_payment_receipt(payment.id)
    with pytest.raises(receipts.ReceiptNotReady):
        receipts.issue_payment_receipt(999_999)
    assert db.session.scalar(select(func.count(Receipt.id))) == 0
    assert not _sequence_value("receipt")


def test_a_refund_that_has_not_succeeded_gets_no_note(app, make_payment, make_refund):
    payment = make_payment()
    refund = make_refund(payment, 100, status="pending")
    # The failed job's error, retried by RQ until the refund succeeds, says which refund.
    with pytest.raises(receipts.ReceiptNotReady, match=f"^refund {refund.id} has not succeeded$"):
        receipts.issue_refund_note(refund.id)
    assert db.session.scalar(select(func.count(Receipt.id))) == 0


def test_fulfilment_enqueues_the_job_that_issues_and_emails_the_receipt(
        app, make_payment, run_jobs, mail_sink):
    payment = make_payment()
    fulfilment.payment_succeeded(payment)
    fulfilment.payment_succeeded(payment)  # learned twice (webhook and return page)
    run_jobs()

    receipt = db.session.scalar(select(Receipt).where(Receipt.payment_id == payment.id))
    assert receipt is not None and receipt.series == "receipt"
    messages = mail_sink.wait_for(1)
    assert len(messages) == 1
    assert receipt.number in messages[0]["Subject"]
    db.session.refresh(receipt)
    assert receipt.emailed_at is not None


def test_fulfilment_of_a_refund_issues_a_refund_note(app, make_payment, make_refund,
                                                       run_jobs, mail_sink):
    payment = make_payment()
    refund = make_refund(payment, 1000)
    fulfilment.refund_succeeded(refund)
    run_jobs()

    note = db.session.scalar(select(Receipt).where(Receipt.refund_id == refund.id))
    assert note is not None and note.number.startswith("CN-")
    messages = mail_sink.wait_for(1)
    assert [m["Subject"] for m in messages] == [
        f"Refund note {note.number} from {app.config['MERCHANT_NAME']}"]


@pytest.mark.parametrize(("zone", "moment", "year", "date"), [
    # Already 1 January in Berlin, still 31 December in UTC ...
    ("Europe/Berlin", datetime(2026, 12, 31, 23, 30, tzinfo=UTC), 2027, "January 1, 2027"),
    # ... and still 31 December in New York, already 1 January in UTC.
    ("America/New_York", datetime(2027, 1, 1, 2, 0, tzinfo=UTC), 2026, "December 31, 2026"),
])
def test_a_document_is_numbered_in_the_year_it_is_dated(app, make_payment, make_refund,
                                                         monkeypatch, zone, moment, year, date):
    """Around New Year the merchant's calendar and UTC disagree: the number's year is the
    year of the date printed on the document (the merchant's), for receipts and credit notes
    alike, and each series counts that year from 1."""
    app.config["MERCHANT_TIMEZONE"] = zone
    monkeypatch.setattr(receipts, "utcnow", lambda: moment)
    payment = make_payment()
    receipt = receipts.issue_payment_receipt(payment.id)
    note = receipts.issue_refund_note(make_refund(payment, 500).id)

    assert (receipt.number, receipt.year) == (f"{year}-000001", year)
    assert (note.number, note.year) == (f"CN-{year}-000001", year)
    assert f"Date {date}" in pdf_text(receipt.pdf)
    assert f"Date {date}" in pdf_text(note.pdf)
