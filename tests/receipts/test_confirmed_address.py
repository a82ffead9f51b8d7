"""Receipts are emailed only to a confirmed address: an unconfirmed account can pay and
download its receipts; the email waits, and goes (through the worker, once) when the owner
opens the confirmation link."""

from __future__ import annotations

from sqlalchemy import func, select

from payments_site.extensions import db
from payments_site.models import OutboundEmail
from payments_site.services import receipts, sweeper
from tests.conftest import csrf_token_from


def _emails_for(receipt_id: int) -> list[OutboundEmail]:
    return list(db.session.scalars(select(OutboundEmail)
                                   .where(OutboundEmail.receipt_id == receipt_id)))


def test_a_receipt_waits_for_the_address_to_be_confirmed(app, make_user, make_payment,
                                                         login_as, run_jobs, mail_sink):
    user = make_user("unconfirmed@example.com", verified=False)
    payment = make_payment(user)
    receipt = receipts.issue_payment_receipt(payment.id)
    assert _emails_for(receipt.id) == []
    # The sweeper leaves it alone while the address is unconfirmed...
    assert sweeper.sweep_receipts_without_email() == 0
    # ...and the owner cannot have it re-sent there either (a clear 400, nothing queued).
    session = login_as(user)
    response = session.post(f"/api/payments/{payment.public_id}/receipt/resend")
    assert response.status_code == 400
    assert "confirmed address" in response.get_json()["error"]["message"]
    assert db.session.scalar(select(func.count()).select_from(OutboundEmail).where(
        OutboundEmail.receipt_id.is_not(None))) == 0
    # The PDF is there to download all along.
    assert session.get(f"/receipts/{receipt.number}.pdf").status_code == 200

    # Confirming the address lets the sweeper send it, once.
    page = session.get("/account/settings").get_data(as_text=True)
    session.client.post("/account/settings/confirmation",
                        data={"csrf_token": csrf_token_from(page)})
    run_jobs()
    confirm = db.session.scalar(select(OutboundEmail).where(
        OutboundEmail.kind == "confirm_email"))
    from tests.helpers import follow_emailed_link

    assert follow_emailed_link(session.client, confirm.body_text,
                               "/auth/confirm/").status_code == 302
    assert sweeper.sweep_receipts_without_email() == 1
    assert sweeper.sweep_receipts_without_email() == 0
    run_jobs()
    sent = _emails_for(receipt.id)
    assert [(e.to_address, e.status) for e in sent] == [("unconfirmed@example.com", "sent")]
    assert [m["To"] for m in mail_sink.wait_for(2)].count("unconfirmed@example.com") == 2
