"""The admin pages this issue touched, in a real Chromium at desktop and phone widths: Radar's
verdict on a payment, the refund form of a disputed payment, and an ignored webhook event
with its reason. No axe-core violation, nothing wider than the screen; screenshots under
test-results/screenshots/ (`outcomes-<width>-<name>`)."""

from __future__ import annotations

from typing import Any

import pytest
from playwright.sync_api import expect

from payments_site.extensions import db
from payments_site.models import Payment, WebhookEvent, utcnow
from tests.browser import screenshot
from tests.e2e.axe import assert_no_axe_violations
from tests.e2e.flows import WIDTHS, assert_no_sideways_scroll, log_in

pytestmark = pytest.mark.browser


def _check(page: Any, width: str, name: str) -> None:
    page.wait_for_load_state("load")
    screenshot(page, f"outcomes-{width}-{name}")
    assert_no_sideways_scroll(page)
    assert_no_axe_violations(page, label=f"{name} at {width} px")


def _payment(customer: Any, **values: Any) -> Payment:
    payment = Payment(user_id=customer.id, amount=2450, currency="usd", cart_hash="0" * 64,
                      description="1 × Espresso beans, 1 kg", card_brand="visa", **values)
    db.session.add(payment)
    db.session.commit()
    return payment


@pytest.mark.parametrize("width", WIDTHS)
def test_risk_dispute_and_ignored_event_pages(open_page, live_server, customer, admin, width):
    blocked = _payment(customer, status="failed", card_last4="4954", failure_code="card_declined",
                       failure_decline_code="fraudulent",
                       failure_message="Your card was declined. Try another card, or contact "
                                       "your bank.",
                       outcome_type="blocked", risk_level="highest", risk_score=95,
                       stripe_payment_intent_id="pi_blocked")
    disputed = _payment(customer, status="succeeded", card_last4="0259", succeeded_at=utcnow(),
                        stripe_payment_intent_id="pi_disputed", stripe_charge_id="ch_disputed",
                        stripe_dispute_id="dp_1", dispute_status="needs_response",
                        dispute_reason="fraudulent", outcome_type="authorized",
                        risk_level="elevated", risk_score=70)
    db.session.add(WebhookEvent(
        stripe_event_id="evt_not_ours", type="charge.dispute.created", payload="{}",
        status="ignored", attempts=2, received_at=utcnow(), processed_at=utcnow(),
        reason="the dispute is on a charge of no payment of ours",
        last_error="DisputedPaymentUnknown: dispute dp_x is on a charge of no local payment"))
    db.session.commit()

    page = open_page(viewport=WIDTHS[width])
    base = live_server.url
    log_in(page, base, admin)
    page.goto(f"{base}/admin/payments")
    expect(page.locator('[data-risk-level="highest"]')).to_have_text("Risk highest (95) · blocked")
    if width == "1280":
        # On a desktop the whole table is in view: the status badges are not scrolled away.
        table = page.get_by_role("region", name="Payments table")
        assert table.evaluate("e => e.scrollWidth <= e.clientWidth"), "payments table scrolls"
    _check(page, width, "admin-payments")
    page.goto(f"{base}/admin/payments/{blocked.public_id}")
    expect(page.locator("#payment-risk")).to_contain_text("risk level highest, score 95")
    _check(page, width, "admin-payment-blocked")
    page.goto(f"{base}/admin/payments/{disputed.public_id}")
    expect(page.locator("#not-refundable")).to_contain_text(
        "Stripe does not allow refunds while the dispute is open")
    _check(page, width, "admin-payment-disputed")
    page.goto(f"{base}/admin/webhooks?status=ignored")
    expect(page.locator("[data-reason]")).to_have_text(
        "the dispute is on a charge of no payment of ours")
    _check(page, width, "admin-webhooks-ignored")
