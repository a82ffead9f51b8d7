"""Checkout in a real browser: register, fill the cart, pay (new card, 3-D Secure, decline
then success on the same payment), and find the payment in the history.

Every test saves a screenshot of its final page under test-results/screenshots/.
"""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from playwright.sync_api import expect
from sqlalchemy import select

from payments_site.extensions import db
from payments_site.models import Payment
from tests.browser import screenshot
from tests.conftest import DEFAULT_PASSWORD
from tests.e2e.flows import expect_success, fill_card, pay

pytestmark = pytest.mark.browser


@pytest.fixture
def shop(app: Any, live_server: Any, background_worker: None) -> Any:
    from payments_site.services.catalog import create_product

    create_product("Ceramic mug", 1999, "usd")
    return live_server


def register_and_fill_cart(page: Any, base: str) -> None:
    email = f"buyer-{uuid.uuid4().hex[:8]}@example.com"
    page.goto(f"{base}/auth/register")
    page.get_by_label("Full name").fill("Browser Buyer")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password", exact=True).fill(DEFAULT_PASSWORD)
    page.get_by_label("Repeat password").fill(DEFAULT_PASSWORD)
    page.get_by_role("button", name="Create account").click()
    # Sign-up answers alike for new and taken addresses, so it does not sign in: log in.
    expect(page.get_by_text("We sent a message to your address")).to_be_visible()
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(DEFAULT_PASSWORD)
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_text("Please confirm your email address")).to_be_visible()
    page.goto(f"{base}/")
    page.get_by_role("button", name="Add to cart (Ceramic mug)").click()
    expect(page.get_by_text("Added Ceramic mug to your cart.")).to_be_visible()
    page.goto(f"{base}/checkout")
    expect(page.locator("#cart-total")).to_have_text("$19.99")


def test_pay_with_a_new_card_and_see_it_in_history(page: Any, shop: Any) -> None:
    register_and_fill_cart(page, shop.url)
    fill_card(page, "4242 4242 4242 4242")
    pay(page)
    payment_id = expect_success(page)
    screenshot(page, "checkout-success")
    page.goto(f"{shop.url}/account/payments")
    row = page.locator(f'tr[data-payment-id="{payment_id}"]')
    expect(row).to_contain_text("Paid")
    expect(row).to_contain_text("$19.99")
    screenshot(page, "checkout-history")
    assert page.csp_violations == []
    db.session.expire_all()
    payment = db.session.scalar(select(Payment).where(Payment.public_id == payment_id))
    assert payment.status == "succeeded" and payment.card_last4 == "4242"


def test_three_d_secure_challenge_completes(page: Any, shop: Any) -> None:
    register_and_fill_cart(page, shop.url)
    fill_card(page, "4000 0025 0000 3155")
    pay(page)
    dialog = page.get_by_role("dialog")
    expect(dialog).to_be_visible()
    dialog.get_by_role("button", name="Complete").click()
    expect_success(page)
    screenshot(page, "checkout-3ds-success")
    assert page.csp_violations == []


def test_decline_then_success_on_the_same_payment(page: Any, shop: Any) -> None:
    register_and_fill_cart(page, shop.url)
    fill_card(page, "4000 0000 0000 0002")
    pay(page)
    error = page.locator("#payment-error")
    expect(error).to_be_visible()
    expect(error).to_contain_text("declined")
    screenshot(page, "checkout-declined")
    expect(page.locator("#pay-button")).to_be_enabled()
    fill_card(page, "4242 4242 4242 4242")
    pay(page)
    payment_id = expect_success(page)
    screenshot(page, "checkout-retry-success")
    db.session.expire_all()
    payments = list(db.session.scalars(select(Payment)))
    assert [p.public_id for p in payments] == [payment_id]  # one payment, one intent
    assert payments[0].status == "succeeded"
