"""Saved cards in a real browser: add (Payment Element in setup mode, 3-D Secure too), make
default, pay with it at checkout, remove it after confirming. Screenshots of each final page
go to test-results/screenshots/cards-*.png."""

from __future__ import annotations

from typing import Any

import pytest
import stripe
from playwright.sync_api import expect
from sqlalchemy import select

from payments_site.extensions import db
from payments_site.models import Payment, PaymentMethod
from tests.browser import screenshot
from tests.conftest import STRIPE_TEST_SECRET_KEY
from tests.e2e.flows import fill_card, log_in

VISA = "4242424242424242"
THREE_DS = "4000002500003155"
DECLINED = "4000000000000002"


@pytest.fixture
def sdk(emulator: Any) -> stripe.StripeClient:
    return stripe.StripeClient(STRIPE_TEST_SECRET_KEY, base_addresses={"api": emulator.url})


def open_cards(page: Any, base: str) -> None:
    page.goto(f"{base}/account/cards")
    page.wait_for_selector('#add-card-form[data-ready="1"]')


def card_item(page: Any, last4: str) -> Any:
    return page.locator("li.saved-card").filter(has_text=last4)


def assert_clean(page: Any) -> None:
    assert page.csp_violations == []
    # Chromium logs failed requests (a 402 is expected in the decline test) as errors.
    assert [e for e in page.console_errors if "Failed to load resource" not in e] == []


def methods_of(user: Any) -> list[PaymentMethod]:
    db.session.expire_all()
    return list(db.session.scalars(select(PaymentMethod).where(PaymentMethod.user_id == user.id)
                                   .order_by(PaymentMethod.id)))


@pytest.mark.browser
def test_add_make_default_pay_and_remove_a_card(page, live_server, background_worker,
                                               make_user, product, sdk):
    from payments_site.services import methods

    user = make_user()
    # An older card already saved, so the new one has to be made the default by hand.
    older = sdk.v1.payment_methods.create({"type": "card", "card": {
        "number": "5555555555554444", "exp_month": 11, "exp_year": 2033, "cvc": "123"}})
    methods.save_payment_method(user, older.id)
    base = live_server.url
    log_in(page, base, user)

    # Add 4242 (not as default).
    open_cards(page, base)
    page.get_by_label("Make this my default card").uncheck()
    fill_card(page, VISA)
    page.get_by_role("button", name="Save card").click()
    expect(page.get_by_text("Visa ending 4242 is saved.")).to_be_visible()
    expect(card_item(page, "4242")).to_contain_text("Expires 12/2034")
    expect(card_item(page, "4242").locator(".badge-default")).to_have_count(0)
    screenshot(page, "cards-added")
    visa = next(m for m in methods_of(user) if m.last4 == "4242")
    assert not visa.is_default
    visa_id = visa.stripe_payment_method_id

    # Make it the default.
    page.get_by_role("button", name="Make default (Visa ending 4242)").click()
    expect(page.get_by_text("Visa ending 4242 is now your default card.")).to_be_visible()
    expect(page.locator("li.saved-card").first).to_contain_text("4242")
    expect(card_item(page, "4242").locator(".badge-default")).to_have_text("Default")
    page.wait_for_selector('#add-card-form[data-ready="1"]')
    screenshot(page, "cards-made-default")
    assert [m.last4 for m in methods_of(user) if m.is_default] == ["4242"]

    # Pay with it from checkout (the server confirms a saved card).
    page.goto(f"{base}/")
    page.get_by_role("button", name=f"Add to cart ({product.name})").click()
    page.goto(f"{base}/checkout")
    page.locator(f'input[name="payment_choice"][value="{visa_id}"]') \
        .check()
    page.locator("#pay-button:not([disabled])").click()
    page.wait_for_url("**/checkout/complete**")
    screenshot(page, "cards-paid-with-saved-card")
    db.session.expire_all()
    payment = db.session.scalar(select(Payment).where(Payment.user_id == user.id))
    assert payment is not None and payment.card_last4 == "4242"
    assert payment.status in ("succeeded", "processing")
    payment_id = payment.id

    # Remove it: the dialog first asks; "Keep card" keeps it, "Remove card" removes it.
    open_cards(page, base)
    card_item(page, "4242").get_by_role("link", name="Remove").click()
    dialog = page.get_by_role("dialog", name="Remove this card?")
    expect(dialog).to_contain_text("Visa ending 4242 will be removed")
    screenshot(page, "cards-remove-dialog")
    dialog.get_by_role("button", name="Keep card").click()
    expect(dialog).to_be_hidden()
    assert len(methods_of(user)) == 2
    card_item(page, "4242").get_by_role("link", name="Remove").click()
    dialog.get_by_role("button", name="Remove card").click()
    expect(page.get_by_text("Visa ending 4242 was removed.")).to_be_visible()
    expect(card_item(page, "4242")).to_have_count(0)
    # The remaining card became the default again.
    expect(card_item(page, "4444").locator(".badge-default")).to_have_text("Default")
    page.wait_for_selector('#add-card-form[data-ready="1"]')
    screenshot(page, "cards-removed")
    assert [(m.last4, m.is_default) for m in methods_of(user)] == [("4444", True)]
    assert sdk.v1.payment_methods.retrieve(visa_id).customer is None
    db.session.expire_all()
    assert db.session.get(Payment, payment_id).payment_method_id is None  # history kept
    assert_clean(page)


@pytest.mark.browser
def test_add_a_3ds_card_and_see_a_declined_one_refused(page, live_server, make_user):
    user = make_user()
    base = live_server.url
    log_in(page, base, user)
    open_cards(page, base)

    fill_card(page, DECLINED)
    page.get_by_role("button", name="Save card").click()
    expect(page.locator("#card-error")).to_have_text("Your card was declined.")
    screenshot(page, "cards-declined")
    assert methods_of(user) == []

    # The same SetupIntent takes another card: a 3-D Secure one, challenge completed.
    fill_card(page, THREE_DS)
    page.get_by_role("button", name="Save card").click()
    challenge = page.get_by_role("dialog", name="3D Secure authentication")
    challenge.get_by_role("button", name="Complete", exact=True).click()
    expect(page.get_by_text("Visa ending 3155 is saved.")).to_be_visible()
    expect(card_item(page, "3155").locator(".badge-default")).to_have_text("Default")
    screenshot(page, "cards-3ds-added")
    assert [(m.last4, m.is_default) for m in methods_of(user)] == [("3155", True)]
    assert_clean(page)


@pytest.mark.browser
def test_saved_card_that_needs_3ds_at_checkout(page, live_server, background_worker,
                                               make_user, product, sdk):
    """A saved card that asks for authentication on every charge: the server's confirm answers
    requires_action, the page runs handleNextAction; a failed challenge shows why and leaves
    the same payment to try again, a completed one succeeds."""
    from payments_site.services import methods

    user = make_user()
    always_3ds = sdk.v1.payment_methods.create({"type": "card", "card": {
        "number": "4000002760003184", "exp_month": 10, "exp_year": 2034, "cvc": "123"}})
    methods.save_payment_method(user, always_3ds.id, make_default=True)
    base = live_server.url
    log_in(page, base, user)
    page.goto(f"{base}/")
    page.get_by_role("button", name=f"Add to cart ({product.name})").click()
    page.goto(f"{base}/checkout")
    expect(page.locator(f'input[name="payment_choice"][value="{always_3ds.id}"]')).to_be_checked()

    page.locator("#pay-button:not([disabled])").click()
    challenge = page.get_by_role("dialog", name="3D Secure authentication")
    challenge.get_by_role("button", name="Fail", exact=True).click()
    error = page.locator("#payment-error")
    expect(error).to_be_visible()
    expect(error).to_contain_text("unable to authenticate")
    expect(page.locator("#pay-button")).to_be_enabled()
    screenshot(page, "cards-saved-3ds-failed")
    db.session.expire_all()
    failed = db.session.scalar(select(Payment).where(Payment.user_id == user.id))
    assert failed is not None and failed.status != "succeeded"

    page.locator("#pay-button:not([disabled])").click()
    challenge.get_by_role("button", name="Complete", exact=True).click()
    page.wait_for_url("**/checkout/complete**")
    expect(page.get_by_role("heading", name="Thank you! Your payment was successful.")) \
        .to_be_visible()
    screenshot(page, "cards-saved-3ds-succeeded")
    db.session.expire_all()
    payments = list(db.session.scalars(select(Payment).where(Payment.user_id == user.id)))
    assert [p.public_id for p in payments] == [failed.public_id]  # the same payment, retried
    assert payments[0].status == "succeeded" and payments[0].card_last4 == "3184"
    intents = sdk.v1.payment_intents.list({"customer": user.stripe_customer_id})
    assert [i.id for i in intents.data] == [payments[0].stripe_payment_intent_id]
    assert_clean(page)
