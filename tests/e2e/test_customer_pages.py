"""Every page, as a customer and an admin see it in Chromium at 1280 and 390 px wide: plain
words, no sideways scrolling, date, items, status and amount of each payment in view, times in
the reader's own time zone, and no accessibility violation that axe-core can find.

Each page is saved as a screenshot under test-results/screenshots/ (`pages-<width>-<name>`).
"""

from __future__ import annotations

import json
import re
import socket
from datetime import UTC, datetime
from typing import Any

import pytest
import stripe
from playwright.sync_api import expect

from payments_site.extensions import db
from payments_site.models import Payment, Receipt
from tests.browser import screenshot
from tests.conftest import DEFAULT_PASSWORD, STRIPE_TEST_SECRET_KEY
from tests.e2e.accounts import LivedInAccount
from tests.e2e.axe import assert_no_axe_violations
from tests.e2e.flows import (
    DESKTOP,
    PHONE,
    WIDTHS,
    assert_in_view,
    assert_no_sideways_scroll,
    log_in,
    plain,
)

pytestmark = pytest.mark.browser

# What each kind of payment is called on the customer's pages.
LABELS = {"paid": "Paid", "refunded": "Refunded", "partially_refunded":
          "Partially refunded · $5.00", "failed": "Failed", "not_completed": "Not completed"}


def check_page(page: Any, width: str, name: str) -> None:
    """What every page must pass: no sideways scroll, no axe violation; then a screenshot."""
    page.wait_for_load_state("load")
    screenshot(page, f"pages-{width}-{name}")
    assert_no_sideways_scroll(page)
    assert_no_axe_violations(page, label=f"{name} at {width} px")


@pytest.mark.parametrize("width", WIDTHS)
def test_customer_pages(open_page, live_server, lived_in_account: LivedInAccount, width):
    account, base = lived_in_account, live_server.url
    page = open_page(viewport=WIDTHS[width])
    log_in(page, base, account.customer)

    page.goto(f"{base}/")
    expect(page.get_by_role("button", name="Add to cart (Ceramic mug)")).to_be_visible()
    check_page(page, width, "catalog")

    page.goto(f"{base}/account/payments")
    for kind, label in LABELS.items():
        payment = account.payment(kind)
        row = page.locator(f'tr[data-payment-id="{payment.public_id}"]')
        cells = {name: row.locator(f'td[data-label="{name}"]')
                 for name in ("Date", "Items", "Status", "Amount")}
        for name, cell in cells.items():
            assert_in_view(page, cell, f"the {name} of the {kind} payment")
        assert plain(cells["Status"].locator("span").first.text_content()).strip() == label
        # Payments that can still be paid offer to try again; the others do not.
        try_again = cells["Status"].get_by_role("button", name=re.compile("^Try again"))
        expect(try_again).to_have_count(1 if kind in ("failed", "not_completed") else 0)
        assert plain(cells["Amount"].text_content()).strip() == f"${payment.amount / 100:.2f}"
        assert payment.items[0].name in (cells["Items"].text_content() or "")
    check_page(page, width, "history")

    for kind in LABELS:
        page.goto(f"{base}/account/payments/{account.payment(kind).public_id}")
        expect(page.locator(".page-sub .badge")).to_have_text(LABELS[kind])
        for cell in page.locator(".items-table tr").all()[1].locator("td").all():
            assert_in_view(page, cell, f"an item's cell on the {kind} payment's page")
        assert_in_view(page, page.locator("#summary-title + .summary-list"), "the summary")
        check_page(page, width, f"payment-{kind}")

    page.goto(f"{base}/account/cards")
    expect(page.get_by_role("button", name=re.compile(r"^Make default"))).to_have_count(2)
    page.wait_for_selector('#add-card-form[data-ready="1"]')  # the card form has loaded
    check_page(page, width, "cards")

    page.goto(f"{base}/account/receipts")
    expect(page.get_by_role("link", name=re.compile(r"^PDF"))).to_have_count(5)
    check_page(page, width, "receipts")

    # Checkout with two items in the cart (its layout is this page's concern here; its flow
    # is tested in test_checkout.py).
    page.goto(f"{base}/")
    page.get_by_role("button", name="Add to cart (Gooseneck kettle)").click()
    page.get_by_role("button", name="Add to cart (Espresso beans, 1 kg)").click()
    page.goto(f"{base}/checkout")
    expect(page.locator("#cart-total")).to_have_text("$83.50")
    for cell in page.locator(".cart-table tbody tr").first.locator("td").all():
        assert_in_view(page, cell, "a cart line's cell")
    assert_in_view(page, page.locator("#pay-button"), "the Pay button")
    check_page(page, width, "checkout")


@pytest.mark.parametrize("width", WIDTHS)
def test_pages_before_logging_in(open_page, live_server, app, width):
    page = open_page(viewport=WIDTHS[width])
    for path, name in (("/auth/login", "login"), ("/auth/register", "register")):
        page.goto(f"{live_server.url}{path}")
        check_page(page, width, name)
    # The forms' error states too.
    page.get_by_role("button", name="Create account").click()
    expect(page.locator(".field-error").first).to_be_visible()
    check_page(page, width, "register-errors")


def deliver_stripes_events(app: Any, emulator: Any, client: Any) -> int:
    """Send the emulator's events to the webhook endpoint, signed, as Stripe delivers them."""
    from tests.conftest import WEBHOOK_SECRET
    from tests.helpers import sign_payload

    events = stripe.StripeClient(STRIPE_TEST_SECRET_KEY, base_addresses={"api": emulator.url},
                                 max_network_retries=0).v1.events.list({"limit": 20}).data
    for event in events:
        body = json.dumps(event.to_dict()).encode()
        response = client.post("/api/webhooks/stripe", data=body, headers={
            "Stripe-Signature": sign_payload(body, WEBHOOK_SECRET),
            "Content-Type": "application/json"})
        assert response.status_code == 200, response.get_data(as_text=True)
    return len(events)


def fail_one_email(app: Any, account: LivedInAccount, client: Any, run_jobs: Any) -> None:
    """A receipt re-sent while the mail server is down, with one attempt allowed: it fails
    for good and waits on the admin's failed-emails page."""
    good_port = app.config["MAIL_PORT"]
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        app.config.update(MAIL_PORT=closed.getsockname()[1], MAIL_MAX_ATTEMPTS=1)
    token = client.post("/api/auth/token", json={"email": account.customer.email,
                                                 "password": DEFAULT_PASSWORD}).get_json()
    paid = account.payment("paid").public_id
    assert client.post(f"/api/payments/{paid}/receipt/resend", headers={
        "Authorization": f"Bearer {token['token']}"}).status_code == 202
    run_jobs()
    app.config["MAIL_PORT"] = good_port


@pytest.mark.parametrize("width", WIDTHS)
def test_admin_pages(open_page, live_server, lived_in_account: LivedInAccount, width, app,
                     emulator, client, run_jobs):
    account, base = lived_in_account, live_server.url
    assert deliver_stripes_events(app, emulator, client) > 0
    fail_one_email(app, account, client, run_jobs)
    page = open_page(viewport=WIDTHS[width])
    log_in(page, base, account.admin)
    page.goto(f"{base}/admin/payments")
    expect(page.locator("tr[data-payment-id]")).to_have_count(len(LABELS))
    check_page(page, width, "admin-payments")
    for kind in ("partially_refunded", "failed"):
        page.goto(f"{base}/admin/payments/{account.payment(kind).public_id}")
        check_page(page, width, f"admin-payment-{kind}")
    page.goto(f"{base}/admin/emails")
    expect(page.locator("tr[data-email-id]")).to_have_count(1)
    check_page(page, width, "admin-emails")
    page.goto(f"{base}/admin/webhooks")
    expect(page.locator("tbody tr").first).to_be_visible()
    check_page(page, width, "admin-webhooks")


def test_the_receipt_emails_link_opens_the_payment(open_page, live_server, mail_sink,
                                                     lived_in_account: LivedInAccount):
    """The link in the emailed receipt (read from the SMTP server) is the payment's page."""
    account = lived_in_account
    paid = account.payment("paid")
    [receipt] = [m for m in mail_sink.messages
                 if m["Subject"].startswith(f"Receipt {paid.receipt.number} ")]
    text = receipt.get_body(preferencelist=("plain",)).get_content()
    link = re.search(r"See this payment on our site: (\S+)", text).group(1)
    assert link == f"{live_server.url}/account/payments/{paid.public_id}"
    assert "2 × Ceramic mug ($19.99 each): $39.98" in plain(text)
    assert "Card: Visa ending in 4242" in text

    page = open_page(viewport=PHONE)
    log_in(page, live_server.url, account.customer)
    page.goto(link)
    expect(page.get_by_role("heading", name="Payment of $64.48")).to_be_visible()
    expect(page.locator(".page-sub .badge")).to_have_text("Paid")


ISSUE_MOMENT = datetime(2026, 12, 7, 0, 48, tzinfo=UTC)


def test_a_new_york_browser_sees_new_york_times(open_page, live_server,
                                                 lived_in_account: LivedInAccount):
    """The issue's example: paid at 7:48 PM on Dec 6 in New York, which is 00:48 UTC Dec 7."""
    account, base = lived_in_account, live_server.url
    payment = account.payment("paid")
    db.session.execute(Payment.__table__.update().where(Payment.id == payment.id).values(
        created_at=ISSUE_MOMENT, succeeded_at=ISSUE_MOMENT))
    db.session.execute(Receipt.__table__.update().where(Receipt.payment_id == payment.id)
                       .values(created_at=ISSUE_MOMENT))
    db.session.commit()
    new_york = "Dec 6, 2026, 7:48 PM EST"

    page = open_page(viewport=DESKTOP, timezone_id="America/New_York")
    log_in(page, base, account.customer)
    page.goto(f"{base}/account/payments")
    date = page.locator(f'tr[data-payment-id="{payment.public_id}"] td[data-label="Date"] time')
    expect(date).to_have_attribute("datetime", "2026-12-07T00:48:00Z")
    assert plain(date.text_content()) == new_york
    assert plain(date.get_attribute("title")) == "Dec 7, 2026, 12:48 AM UTC"

    page.goto(f"{base}/account/payments/{payment.public_id}")
    assert plain(page.locator(".page-sub time").text_content()) == new_york
    page.goto(f"{base}/account/receipts")
    assert new_york in plain(page.locator("tbody").text_content())
    assert not re.search(r"\bUTC\b", plain(page.locator("main").text_content()))
    screenshot(page, "new-york-receipts")

    admin_page = open_page(viewport=DESKTOP, timezone_id="America/New_York")
    log_in(admin_page, base, account.admin)
    admin_page.goto(f"{base}/admin/payments/{payment.public_id}")
    assert new_york in plain(admin_page.locator(".facts").text_content())

    # The same page in Berlin, and with scripts off (the server's UTC, named).
    berlin = open_page(viewport=DESKTOP, timezone_id="Europe/Berlin")
    log_in(berlin, base, account.customer)
    berlin.goto(f"{base}/account/payments/{payment.public_id}")
    assert plain(berlin.locator(".page-sub time").text_content()) == "Dec 7, 2026, 1:48 AM GMT+1"
    no_script = open_page(viewport=DESKTOP, timezone_id="America/New_York",
                          java_script_enabled=False)
    log_in(no_script, base, account.customer)
    no_script.goto(f"{base}/account/payments/{payment.public_id}")
    assert plain(no_script.locator(".page-sub time").text_content()) == \
        "Dec 7, 2026, 12:48 AM UTC"
