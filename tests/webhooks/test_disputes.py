"""charge.dispute.created: the payment is flagged, audit-logged and every admin emailed once."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from flask.testing import FlaskClient
from sqlalchemy import select

from payments_site.extensions import db
from payments_site.models import AuditLog, OutboundEmail, Payment
from payments_site.services.webhooks import replay_event
from tests.webhooks.conftest import count, event_rows, post_event, raw


def test_dispute_flags_payment_and_alerts_each_admin_once(
        client: FlaskClient, make_payment: Any, make_user: Any, stripe_events: Any,
        run_jobs: Any, mail_sink: Any, sc: Any) -> None:
    admins = [make_user(f"admin{i}@example.com", role="admin") for i in range(2)]
    make_user("bystander@example.com")  # customers are not alerted
    payment = make_payment(card="4000000000000259")
    other = make_payment()
    event = stripe_events.one("charge.dispute.created")
    dispute = sc.v1.disputes.retrieve(event["data"]["object"]["id"])

    assert post_event(client, raw(event)).status_code == 200
    run_jobs()
    assert [r.status for r in event_rows()] == ["processed"]

    db.session.expire_all()
    flagged = db.session.get_one(Payment, payment.id)
    assert flagged.stripe_dispute_id == dispute.id
    assert (flagged.dispute_status, flagged.dispute_reason) == ("needs_response", "fraudulent")
    assert flagged.dispute_evidence_due_by == datetime.fromtimestamp(
        dispute.evidence_details.due_by, UTC)
    assert db.session.get_one(Payment, other.id).stripe_dispute_id is None

    [entry] = db.session.scalars(select(AuditLog).where(AuditLog.action == "dispute.opened"))
    assert entry.payment_id == payment.id and entry.actor_id is None
    assert entry.amount == 1999 and dispute.id in entry.details

    mail_sink.wait_for(2)
    assert sorted(m["To"] for m in mail_sink.messages) == sorted(a.email for a in admins)
    message = mail_sink.messages[0]
    assert payment.public_id in message["Subject"] and "$19.99" in message["Subject"]
    body = message.get_body(("plain",)).get_content()
    assert "fraudulent" in body and dispute.id in body
    assert flagged.dispute_evidence_due_by.strftime("%Y-%m-%d") in body

    # A replay (operator) and a redelivery change nothing.
    replay_event(event["id"], actor=None)
    assert post_event(client, raw(event)).status_code == 200
    run_jobs()
    assert count(AuditLog, AuditLog.action == "dispute.opened") == 1
    assert count(OutboundEmail, OutboundEmail.kind == "dispute") == 2
    assert len(mail_sink.messages) == 2
