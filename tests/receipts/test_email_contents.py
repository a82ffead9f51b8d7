"""What the receipt and refund note emails say, read from the real SMTP sink: the items and
totals, the card, the time in the merchant's zone (named), a link to the payment's page, and
the merchant's name as the sender."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from email.message import EmailMessage
from zoneinfo import ZoneInfo

import pytest
from babel.dates import format_date

from payments_site import create_app
from payments_site.config import ConfigError
from payments_site.extensions import db
from payments_site.models import Payment
from payments_site.services import receipts
from tests.receipts.conftest import pdf_text

ISSUE_MOMENT = datetime(2026, 12, 7, 0, 48, tzinfo=UTC)  # 7:48 PM on Dec 6 in New York


def plain(text: str) -> str:
    return re.sub(r"[\u00a0\u202f]", " ", text)


def bodies(message: EmailMessage) -> tuple[str, str]:
    text = message.get_body(preferencelist=("plain",)).get_content()
    html = message.get_body(preferencelist=("html",)).get_content()
    return plain(text), plain(html)


def paid_at_issue_moment(payment: Payment) -> Payment:
    payment.succeeded_at = ISSUE_MOMENT
    db.session.commit()
    return payment


@pytest.fixture
def new_york_shop(app):
    app.config.update(MERCHANT_TIMEZONE="America/New_York",
                      SITE_URL="https://shop.example.com")
    return app


def test_the_receipt_email_lists_items_card_time_and_a_link(new_york_shop, make_payment,
                                                             customer, run_jobs, mail_sink,
                                                             login_as):
    payment = paid_at_issue_moment(make_payment())
    receipt = receipts.issue_payment_receipt(payment.id)
    run_jobs()
    [message] = mail_sink.wait_for(1)
    text, html = bodies(message)
    link = f"https://shop.example.com/account/payments/{payment.public_id}"
    # The receipt's own date: the day it was issued (now), in New York.
    issued_on = format_date(receipt.created_at.astimezone(ZoneInfo("America/New_York")),
                            "long", locale="en_US")

    for body in (text, html):
        assert "Ceramic mug" in body and "$19.99 each" in body and "$39.98" in body
        assert "Espresso beans, 1 kg" in body and "$24.50" in body
        assert "$64.48" in body and "Visa ending in 4242" in body
        assert "Dec 6, 2026, 7:48 PM EST" in body and "America/New_York" in body
        assert receipt.number in body and issued_on in body
        assert link in body
        assert "Paid" in body
    assert "2 × Ceramic mug ($19.99 each): $39.98" in text
    assert "1 × Espresso beans, 1 kg ($24.50 each): $24.50" in text
    assert "Total paid: $64.48" in text
    assert "Paid on: Dec 6, 2026, 7:48 PM EST (times are in America/New_York)" in text
    assert f'href="{link}"' in html
    assert not re.search(r"succeeded|requires_", text + html)

    # The link is the customer's own payment page.
    assert login_as(customer).get(link.removeprefix("https://shop.example.com")) \
        .status_code == 200


def test_the_receipt_pdf_prints_the_time_of_payment_in_the_merchants_zone(new_york_shop,
                                                                          make_payment):
    payment = paid_at_issue_moment(make_payment())
    text = plain(pdf_text(receipts.issue_payment_receipt(payment.id).pdf))
    assert "Paid on Dec 6, 2026, 7:48 PM EST" in text
    assert "Time zone America/New_York" in text


def test_by_default_times_are_utc_and_say_so(app, make_payment, run_jobs, mail_sink):
    payment = paid_at_issue_moment(make_payment())
    pdf = plain(pdf_text(receipts.issue_payment_receipt(payment.id).pdf))
    run_jobs()
    text, _ = bodies(mail_sink.wait_for(1)[0])
    assert "Paid on: Dec 7, 2026, 12:48 AM UTC (times are in UTC)" in text
    assert "Paid on Dec 7, 2026, 12:48 AM UTC" in pdf and "Time zone UTC" in pdf


def test_refund_note_emails_say_what_was_refunded_and_what_remains(
        new_york_shop, make_payment, make_refund, run_jobs, mail_sink):
    payment = paid_at_issue_moment(make_payment(items=[("Ceramic mug", 2, 1999)]))
    receipts.issue_payment_receipt(payment.id)
    first = receipts.issue_refund_note(make_refund(payment, 1000).id)
    second = receipts.issue_refund_note(make_refund(payment, 2998).id)
    run_jobs()
    messages = {m["Subject"].split()[2]: m for m in mail_sink.wait_for(3)
                if m["Subject"].startswith("Refund note")}

    text, html = bodies(messages[first.number])
    assert "Refunded now: $10.00" in text and "Refunded before" not in text
    assert "Refunded in total: $10.00 of $39.98" in text
    assert "Remaining paid: $29.98" in text
    assert "Status: Partially refunded · $10.00" in text
    assert re.search(r"Refunded on: \w{3} \d+, \d{4}, \d+:\d\d [AP]M E[SD]T \(times are in "
                     r"America/New_York\)", text)
    assert "The order: 2 × Ceramic mug, paid on Dec 6, 2026, 7:48 PM EST" in text
    assert f"https://shop.example.com/account/payments/{payment.public_id}" in text
    for fact in ("$10.00", "$29.98", "Partially refunded · $10.00", "Visa ending in 4242",
                 f'href="https://shop.example.com/account/payments/{payment.public_id}"'):
        assert fact in html, fact

    text, html = bodies(messages[second.number])
    assert "Refunded now: $29.98" in text and "Refunded before: $10.00" in text
    assert "Refunded in total: $39.98 of $39.98" in text and "Remaining paid: $0.00" in text
    assert "Status: Refunded" in text and "Partially" not in text
    assert ">Refunded<" in html


def test_the_sender_is_the_merchant_named_in_the_subject(app, make_payment, run_jobs,
                                                          mail_sink):
    # Whatever name MAIL_DEFAULT_SENDER carries, the From name is MERCHANT_NAME.
    app.config.update(MAIL_DEFAULT_SENDER="Some Other Name <receipts@shop.example>",
                      MERCHANT_NAME='Café "Zoë", Ltd.')
    receipts.issue_payment_receipt(make_payment().id)
    run_jobs()
    [message] = mail_sink.wait_for(1)
    [sender] = message["From"].addresses
    assert (sender.display_name, sender.addr_spec) == ('Café "Zoë", Ltd.',
                                                       "receipts@shop.example")
    assert message["Subject"].endswith('from Café "Zoë", Ltd.')


@pytest.mark.parametrize("name", ["Demo Shop\r\nBcc: victim@example.com", "Tab\tShop", "",
                                  "   "])
def test_a_merchant_name_that_cannot_be_a_header_stops_start_up(app, name):
    config = {k: v for k, v in app.config.items() if k.isupper() and k != "SERVER_NAME"}
    config["MERCHANT_NAME"] = name
    with pytest.raises(ConfigError, match="MERCHANT_NAME must be one line of text"):
        create_app(config)


def test_a_site_under_a_path_links_below_it(app, make_payment, run_jobs, mail_sink):
    app.config["SITE_URL"] = "https://example.org/shop"
    payment = make_payment()
    receipts.issue_payment_receipt(payment.id)
    run_jobs()
    text, _ = bodies(mail_sink.wait_for(1)[0])
    assert f"https://example.org/shop/account/payments/{payment.public_id}" in text
