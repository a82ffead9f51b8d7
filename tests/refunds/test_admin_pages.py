"""The admin pages: access, search, filters, keyset pages, timeline and the two-step refund form."""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import event, select, update

from payments_site.extensions import db
from payments_site.models import (
    AuditLog,
    IdempotencyKey,
    OutboundEmail,
    Payment,
    Refund,
    WebhookEvent,
    utcnow,
)
from payments_site.money import parse_major_amount, to_major_string
from payments_site.services.idempotency import ABANDONED_AFTER
from tests.refunds.helpers import charge_amount_refunded, paid_payment, unpaid_payment


def _page(response) -> str:
    return response.get_data(as_text=True)


def _payment_ids(html: str) -> list[str]:
    return re.findall(r'data-payment-id="(pay_[A-Za-z0-9]+)"', html)


# --- access ---------------------------------------------------------------------------------

@pytest.mark.parametrize("path", ["/admin/payments", "/admin/payments/{id}"])
def test_customer_gets_403_and_anonymous_goes_to_login(app, client, customer, login_as, path):
    payment = unpaid_payment(customer)
    url = path.format(id=payment.public_id)
    anonymous = client.get(url)
    assert anonymous.status_code == 302
    assert "/auth/login" in anonymous.headers["Location"]
    as_customer = login_as(customer).get(url)
    assert as_customer.status_code == 403
    assert payment.public_id not in _page(as_customer)


def test_customer_cannot_post_the_refund_form(app, sdk, customer, login_as):
    payment = paid_payment(sdk, customer, 3000)
    session = login_as(customer)
    response = session.client.post(f"/admin/payments/{payment.public_id}/refund",
                                   data={"amount": "10.00", "reason": "duplicate",
                                         "confirm": "yes", "csrf_token": session.csrf_token})
    assert response.status_code == 403
    assert db.session.scalar(select(Refund)) is None


def test_admin_pages_are_not_cached(app, admin, login_as):
    response = login_as(admin).get("/admin/payments")
    assert response.status_code == 200
    assert response.headers["Cache-Control"] == "no-store"


# --- the list -------------------------------------------------------------------------------

def _payments(user, count: int, start: datetime, **extra) -> list[Payment]:
    rows = []
    for i in range(count):
        payment = Payment(user_id=user.id, status=extra.get("status", "succeeded"),
                          amount=1000 + i, currency="usd", cart_hash=f"h{i}",
                          stripe_payment_intent_id=f"pi_test{uuid.uuid4().hex}",
                          created_at=start + timedelta(minutes=i))
        db.session.add(payment)
        rows.append(payment)
    db.session.commit()
    return rows


def test_search_by_email_public_id_and_intent_id(app, make_user, admin, login_as):
    jane = make_user("jane.doe@example.com")
    bob = make_user("bob@example.org")
    now = datetime.now(UTC)
    jane_rows = _payments(jane, 2, now)
    bob_rows = _payments(bob, 1, now)
    session = login_as(admin)
    assert sorted(_payment_ids(_page(session.get("/admin/payments?q=JANE.doe")))) == \
        sorted(p.public_id for p in jane_rows)
    assert _payment_ids(_page(session.get(f"/admin/payments?q={bob_rows[0].public_id}"))) \
        == [bob_rows[0].public_id]
    assert _payment_ids(_page(session.get(
        f"/admin/payments?q={jane_rows[1].stripe_payment_intent_id}"))) == \
        [jane_rows[1].public_id]
    # LIKE wildcards are literal text here.
    assert _payment_ids(_page(session.get("/admin/payments?q=%25"))) == []
    assert "No payments match" in _page(session.get("/admin/payments?q=nobody@none"))


def test_status_and_date_filters(app, customer, admin, login_as):
    old = _payments(customer, 1, datetime(2024, 1, 10, 12, tzinfo=UTC))[0]
    new = _payments(customer, 1, datetime(2024, 3, 5, 23, 59, tzinfo=UTC))[0]
    failed = Payment(user_id=customer.id, status="failed", amount=500, currency="usd",
                     cart_hash="f", created_at=datetime(2024, 3, 5, 1, tzinfo=UTC))
    disputed = Payment(user_id=customer.id, status="succeeded", amount=700, currency="usd",
                       cart_hash="d", stripe_dispute_id="dp_123", dispute_status="needs_response",
                       dispute_reason="fraudulent",
                       dispute_evidence_due_by=datetime(2024, 4, 1, tzinfo=UTC),
                       created_at=datetime(2024, 2, 1, tzinfo=UTC))
    db.session.add_all([failed, disputed])
    db.session.commit()
    session = login_as(admin)
    assert set(_payment_ids(_page(session.get("/admin/payments?status=failed")))) == \
        {failed.public_id}
    assert set(_payment_ids(_page(session.get(
        "/admin/payments?from=2024-03-05&to=2024-03-05")))) == {new.public_id, failed.public_id}
    assert set(_payment_ids(_page(session.get("/admin/payments?to=2024-01-31")))) == \
        {old.public_id}
    flagged = _page(session.get("/admin/payments?status=disputed"))
    assert set(_payment_ids(flagged)) == {disputed.public_id}
    # The deadline as a moment (the page's script shows it in the admin's own time zone).
    assert ('Disputed · evidence due <time datetime="2024-04-01T00:00:00Z" data-local-time>'
            'Apr 1, 2024, 12:00\u202fAM UTC</time>') in flagged
    assert session.get("/admin/payments?from=yesterday").status_code == 400
    assert session.get("/admin/payments?status=bogus").status_code == 400
    assert session.get("/admin/payments?after=garbage").status_code == 400


def test_keyset_pages_cover_everything_once(app, customer, admin, login_as):
    rows = _payments(customer, 23, datetime(2024, 5, 1, tzinfo=UTC))
    session = login_as(admin)
    seen: list[str] = []
    url = "/admin/payments?limit=10"
    pages = []
    while url:
        html = _page(session.get(url))
        pages.append(html)
        seen += _payment_ids(html)
        match = re.search(r'href="([^"]*after=[^"]+)"', html)
        url = match.group(1).replace("&amp;", "&") if match else ""
    newest_first = [p.public_id for p in sorted(rows, key=lambda p: p.created_at,
                                                reverse=True)]
    assert seen == newest_first and len(pages) == 3
    # "Newer" from the last page goes back to the second page.
    back = re.search(r'href="([^"]*before=[^"]+)"', pages[2]).group(1).replace("&amp;", "&")
    assert _payment_ids(_page(session.get(back))) == newest_first[10:20]
    assert session.get("/admin/payments?limit=1000").status_code == 400


def test_list_has_no_n_plus_one(app, make_user, admin, login_as):
    for i in range(8):
        _payments(make_user(f"buyer{i}@example.com"), 5, datetime.now(UTC))
    session = login_as(admin)
    statements: list[str] = []

    def count(*_args) -> None:
        statements.append(_args[2])

    event.listen(db.engine, "before_cursor_execute", count)
    try:
        html = _page(session.get("/admin/payments?limit=40"))
    finally:
        event.remove(db.engine, "before_cursor_execute", count)
    assert len(_payment_ids(html)) == 40
    # user (session), payments + customers, items: a constant, not one per row.
    assert len(statements) <= 5, statements


# --- the detail page and its refund form ----------------------------------------------------

def test_detail_shows_timeline_with_every_source(app, sdk, customer, admin, login_as,
                                                 run_jobs):
    payment = paid_payment(sdk, customer, 3000)
    db.session.add(WebhookEvent(stripe_event_id="evt_1", type="payment_intent.succeeded",
                                payload=f'{{"data": {{"object": {{"id": '
                                        f'"{payment.stripe_payment_intent_id}"}}}}}}',
                                status="processed"))
    db.session.add(WebhookEvent(stripe_event_id="evt_other", type="payment_intent.succeeded",
                                payload='{"id": "pi_someone_else"}', status="processed"))
    db.session.add(OutboundEmail(message_id="<m1@x>", dedupe_key="d1", kind="receipt",
                                 to_address=customer.email, subject="Your receipt",
                                 payment_id=payment.id, status="sent",
                                 sent_at=datetime.now(UTC)))
    db.session.commit()
    session = login_as(admin)
    session.post("/api/payments/refund", json={"payment_id": payment.public_id,
                                               "amount": 1000, "reason": "duplicate"})
    run_jobs()
    # Disputed after the refund (Stripe refuses refunds while a dispute is open).
    db.session.refresh(payment)
    payment.stripe_dispute_id = "dp_456"
    payment.dispute_reason = "product_not_received"
    payment.dispute_status = "needs_response"
    payment.dispute_evidence_due_by = datetime(2031, 2, 3, tzinfo=UTC)
    db.session.commit()
    html = _page(session.get(f"/admin/payments/{payment.public_id}"))
    timeline = html[html.index('id="timeline"'):]
    for text in ("Payment created", "Payment succeeded", "Stripe event payment_intent.succeeded",
                 "evt_1", "Refund requested", "Refund succeeded", "by admin@example.com",
                 "Email: Your receipt", "Disputed by the cardholder",
                 "evidence due by 2031-02-03"):
        assert text in timeline, text
    assert "evt_other" not in html
    assert 'id="dispute"' in html and "Feb 3, 2031" in html
    assert "$10.00" in html and "partial" in html
    # What remains cannot be refunded while the dispute is open: the page says so, no form.
    assert "Stripe does not allow refunds while the dispute is open" in html
    assert 'value="20.00"' not in html


def test_unknown_payment_detail_is_404(app, admin, login_as):
    assert login_as(admin).get("/admin/payments/pay_nothere").status_code == 404


def _form_post(session, payment, **data):
    return session.client.post(f"/admin/payments/{payment.public_id}/refund",
                               data={"csrf_token": session.csrf_token, **data})


def test_refund_form_confirms_then_refunds(app, sdk, customer, admin, login_as, run_jobs):
    payment = paid_payment(sdk, customer, 3000)
    session = login_as(admin)
    first = _form_post(session, payment, amount="12.34", reason="requested_by_customer")
    assert first.status_code == 200
    html = _page(first)
    assert "Refund $12.34 to customer customer@example.com?" in html
    assert "Confirm refund" in html
    assert db.session.scalar(select(Refund)) is None  # nothing happens before confirming
    form_key = re.search(r'name="form_key"[^>]*value="([^"]+)"', html).group(1)
    confirm = dict(amount="12.34", reason="requested_by_customer", confirm="yes",
                   form_key=form_key)
    second = _form_post(session, payment, **confirm)
    assert second.status_code == 302
    # A double click on Confirm refunds once.
    assert _form_post(session, payment, **confirm).status_code == 302
    refunds = db.session.scalars(select(Refund)).all()
    assert [(r.amount, r.reason) for r in refunds] == [(1234, "requested_by_customer")]
    page = _page(session.get(second.headers["Location"]))
    assert "Refund of $12.34 to customer@example.com requested" in page
    run_jobs()
    db.session.expire_all()
    fresh = db.session.get(Payment, payment.id)
    assert fresh.amount_refunded == 1234 == charge_amount_refunded(sdk, payment)
    audit = db.session.scalar(select(AuditLog).where(AuditLog.action == "refund.requested"))
    assert (audit.actor_id, audit.amount) == (admin.id, 1234)


def test_a_confirm_sent_again_after_its_answer_was_lost_refunds_once(app, sdk, customer, admin,
                                                                    login_as, run_jobs):
    """The refund was recorded, then the process died before the form's answer was kept
    (its claim stays `in_progress`). Confirm sent again minutes later, with the same form,
    shows the refund it made: nothing is reserved or refunded twice."""
    payment = paid_payment(sdk, customer, 3000)
    session = login_as(admin)
    confirm = dict(amount="12.34", reason="requested_by_customer", confirm="yes",
                   form_key="form-key-lost-answer")
    assert _form_post(session, payment, **confirm).status_code == 302
    db.session.execute(update(IdempotencyKey).values(
        status="in_progress", response_body=None, response_status=None,
        created_at=utcnow() - ABANDONED_AFTER - timedelta(minutes=1)))
    db.session.commit()
    again = _form_post(session, payment, **confirm)
    assert again.status_code == 302
    page = _page(session.get(again.headers["Location"]))
    assert "Refund of $12.34 to customer@example.com requested" in page
    assert [r.amount for r in db.session.scalars(select(Refund))] == [1234]
    run_jobs()
    db.session.expire_all()
    assert db.session.get(Payment, payment.id).amount_refunded == 1234
    assert charge_amount_refunded(sdk, payment) == 1234


@pytest.mark.parametrize("amount, reason, message", [
    ("", "duplicate", "Enter the amount to refund."),
    ("12.345", "duplicate", "at most 2 decimal places"),
    ("-5", "duplicate", "Enter an amount such as"),
    ("abc", "duplicate", "Enter an amount such as"),
    ("0", "duplicate", "must be positive"),
    ("30.01", "duplicate", "more than what remains"),
    ("10", "", "Choose a reason for the refund."),
    ("10", "changed_mind", "Not a valid choice"),
])
def test_refund_form_rejects_bad_input(app, sdk, customer, admin, login_as, amount, reason,
                                       message):
    payment = paid_payment(sdk, customer, 3000)
    session = login_as(admin)
    for confirm in ("", "yes"):
        response = _form_post(session, payment, amount=amount, reason=reason,
                              confirm=confirm, form_key="k")
        assert response.status_code == 400
        assert message in _page(response)
    assert db.session.scalar(select(Refund)) is None


def test_refund_form_without_csrf_is_refused(app, sdk, customer, admin, login_as):
    payment = paid_payment(sdk, customer, 3000)
    session = login_as(admin)
    response = session.client.post(f"/admin/payments/{payment.public_id}/refund",
                                   data={"amount": "1.00", "reason": "duplicate",
                                         "confirm": "yes", "form_key": "k"})
    assert response.status_code == 403
    assert db.session.scalar(select(Refund)) is None


def test_refund_form_in_yen_and_dinar(app, sdk, customer, admin, login_as, run_jobs):
    yen = paid_payment(sdk, customer, 500, "jpy")
    session = login_as(admin)
    html = _page(session.get(f"/admin/payments/{yen.public_id}"))
    assert 'value="500"' in html and "¥500" in html
    assert "no decimal places" in _page(_form_post(session, yen, amount="200.5",
                                                   reason="duplicate"))
    confirm_page = _page(_form_post(session, yen, amount="200", reason="duplicate"))
    assert "Refund ¥200 to customer" in confirm_page
    form_key = re.search(r'name="form_key"[^>]*value="([^"]+)"', confirm_page).group(1)
    _form_post(session, yen, amount="200", reason="duplicate", confirm="yes",
               form_key=form_key)
    run_jobs()
    db.session.expire_all()
    assert db.session.get(Payment, yen.id).amount_refunded == 200
    assert charge_amount_refunded(sdk, yen) == 200


def test_unpaid_payment_has_no_refund_form(app, customer, admin, login_as):
    payment = unpaid_payment(customer)
    session = login_as(admin)
    html = _page(session.get(f"/admin/payments/{payment.public_id}"))
    assert "Only a succeeded payment can be refunded." in html
    assert "Review refund" not in html
    response = _form_post(session, payment, amount="1.00", reason="duplicate")
    assert response.status_code == 400
    assert db.session.scalar(select(Refund)) is None


@pytest.mark.parametrize("amount, currency, text", [
    (1999, "usd", "19.99"), (500, "jpy", "500"), (1234, "bhd", "1.234"), (5, "usd", "0.05"),
    (100000, "kwd", "100.000"),
])
def test_major_units_round_trip_exactly(amount, currency, text):
    assert to_major_string(amount, currency) == text
    assert parse_major_amount(text, currency) == amount
