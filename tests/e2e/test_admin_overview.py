"""The admin overview in Chromium at 1280 and 390 px: the chart and tiles in view, no sideways
scrolling, no accessibility violation axe-core can find (the daily tables opened too).

Screenshots: test-results/screenshots/admin-overview-<width>.png (and -tables).
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from playwright.sync_api import expect
from sqlalchemy import update

from payments_site.extensions import db
from payments_site.models import OutboundEmail, Payment, WebhookEvent, utcnow
from payments_site.services import overview
from tests.browser import screenshot
from tests.e2e.axe import assert_no_axe_violations
from tests.e2e.flows import WIDTHS, assert_no_sideways_scroll, log_in
from tests.operations.rows import payment_row, refund_row

pytestmark = pytest.mark.browser


@pytest.fixture
def busy_month(app, customer):
    """A month of payments in two currencies, refunds, a dispute and a failed email."""
    for days_ago in range(0, 30, 2):
        for n in range(1 + days_ago % 3):
            payment = payment_row(customer, days_ago=days_ago, amount=1500 + 700 * n,
                                  status="failed" if (days_ago + n) % 7 == 0 else "succeeded")
        if days_ago % 6 == 0 and payment.status == "succeeded":
            refund_row(payment, 500, days_ago=days_ago)
    for days_ago in (1, 4, 9):
        payment_row(customer, days_ago=days_ago, amount=4200, currency="eur")
    disputed = payment_row(customer, days_ago=3, amount=9900)
    db.session.execute(update(Payment).where(Payment.id == disputed.id).values(
        stripe_dispute_id="dp_e2e", dispute_status="needs_response",
        dispute_reason="product_not_received",
        dispute_evidence_due_by=utcnow() + timedelta(days=5)))
    db.session.add(WebhookEvent(stripe_event_id="evt_e2e_failed", type="charge.refunded",
                                payload="{}", status="failed", attempts=8, last_error="boom",
                                received_at=utcnow()))
    db.session.add(OutboundEmail(dedupe_key="e2e:1", kind="receipt",
                                 to_address="customer@example.com",
                                 subject="Your receipt R-2026-000042", body_text="t",
                                 message_id="<e2e@shop.example>", status="failed", attempts=6))
    db.session.commit()
    overview.roll_up()


@pytest.mark.parametrize("width", WIDTHS)
def test_the_overview_reads_at_a_glance(open_page, live_server, admin, busy_month, width):
    page = open_page(viewport=WIDTHS[width])
    log_in(page, live_server.url, admin)
    page.goto(f"{live_server.url}/admin/")
    expect(page.get_by_role("heading", name="Overview", level=1)).to_be_visible()
    expect(page.get_by_role("img", name="Revenue and refunds per day in USD, last 30 days")) \
        .to_be_visible()
    expect(page.get_by_role("img", name="Revenue and refunds per day in EUR, last 30 days")) \
        .to_be_visible()
    expect(page.get_by_role("link", name="1 failed email", exact=True)).to_be_visible()
    expect(page.get_by_role("link", name="1 failed webhook event", exact=True)).to_be_visible()
    page.wait_for_load_state("load")
    screenshot(page, f"admin-overview-{width}")
    assert_no_sideways_scroll(page)
    assert_no_axe_violations(page, label=f"admin overview at {width} px")

    for summary in page.locator("details > summary").all():
        summary.click()
    expect(page.locator("table.daily-totals").first).to_be_visible()
    screenshot(page, f"admin-overview-{width}-tables")
    assert_no_sideways_scroll(page)
    assert_no_axe_violations(page, label=f"admin overview, tables open, at {width} px")

    page.get_by_role("link", name="1 failed email", exact=True).click()
    expect(page.get_by_role("heading", name="Failed emails")).to_be_visible()
