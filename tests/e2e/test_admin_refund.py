"""An admin refunds part of a payment through the admin pages, confirming first, in Chromium."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from payments_site.extensions import db
from payments_site.models import Payment
from tests.browser import screenshot
from tests.conftest import DEFAULT_PASSWORD
from tests.refunds.helpers import charge_amount_refunded, paid_payment, stripe_client


@pytest.mark.browser
def test_admin_refunds_part_of_a_payment(page, live_server, background_worker, emulator,
                                         customer, admin):
    sdk = stripe_client(emulator.url)
    payment = paid_payment(sdk, customer, 4999)
    base = live_server.url

    page.goto(f"{base}/auth/login")
    page.get_by_label("Email").fill(admin.email)
    page.get_by_label("Password").fill(DEFAULT_PASSWORD)
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("button", name="Log out")).to_be_visible()

    page.get_by_role("link", name="Admin").click()
    expect(page.get_by_role("heading", name="Payments")).to_be_visible()
    page.get_by_label("Search").fill(customer.email)
    page.get_by_role("button", name="Filter").click()
    row = page.locator(f'tr[data-payment-id="{payment.public_id}"]')
    expect(row).to_contain_text("$49.99")
    row.get_by_role("link", name=payment.public_id).click()

    amount = page.get_by_label("Amount to refund")
    expect(amount).to_have_value("49.99")  # defaults to all that remains
    amount.fill("15.50")
    page.get_by_label("Reason").select_option("requested_by_customer")
    page.get_by_role("button", name="Review refund").click()

    expect(page.get_by_role("heading", name=re.compile(
        r"Refund \$15\.50 to customer customer@example\.com\?"))).to_be_visible()
    page.get_by_role("button", name="Confirm refund").click()
    expect(page.get_by_text(re.compile(r"Refund of \$15\.50 to customer@example\.com "
                                       r"requested"))).to_be_visible()

    # The worker sends it to Stripe; the page shows it once Stripe confirmed.
    refunds_table = page.locator("#refunds")
    for _ in range(100):
        if "succeeded" in (refunds_table.text_content() or ""):
            break
        page.wait_for_timeout(200)
        page.reload()
    expect(refunds_table).to_contain_text("succeeded")
    expect(page.locator("#payment-refunded")).to_contain_text("$15.50")
    expect(page.locator("#payment-refundable")).to_contain_text("$34.49")
    expect(page.locator("#timeline")).to_contain_text("Refund requested")
    expect(page.get_by_label("Amount to refund")).to_have_value("34.49")
    screenshot(page, "admin-refund-partial")

    db.session.expire_all()
    fresh = db.session.get(Payment, payment.id)
    assert (fresh.amount_refunded, fresh.refund_status) == (1550, "partial")
    assert charge_amount_refunded(sdk, fresh) == 1550
    assert page.csp_violations == []
    # The layout has no favicon (not this page's concern); anything else is an error.
    assert [e for e in page.console_errors if "favicon.ico" not in e] == []
