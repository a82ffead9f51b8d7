"""Checkout as a customer lives it, in a real browser: nothing is created until Pay, one Pay
is one payment, buying again is a new purchase, and the cart belongs to its person.

Screenshots of the final pages go to test-results/screenshots/attempts-*.png.
"""

from __future__ import annotations

import re
from typing import Any

import pytest
import stripe
from playwright.sync_api import expect
from sqlalchemy import select

from payments_site.extensions import db
from payments_site.models import Payment
from tests.browser import screenshot
from tests.conftest import STRIPE_TEST_SECRET_KEY
from tests.e2e.axe import assert_no_axe_violations
from tests.e2e.flows import (
    FRAME,
    WIDTHS,
    assert_in_view,
    assert_no_sideways_scroll,
    expect_success,
    fill_card,
    log_in,
)

pytestmark = pytest.mark.browser


@pytest.fixture
def sdk(emulator: Any) -> stripe.StripeClient:
    return stripe.StripeClient(STRIPE_TEST_SECRET_KEY, base_addresses={"api": emulator.url})


@pytest.fixture
def shop(app: Any, live_server: Any, background_worker: None) -> Any:
    from payments_site.services.catalog import create_product

    create_product("Electric kettle", 5900, "usd")
    return live_server


def add_kettle_and_open_checkout(page: Any, base: str) -> None:
    page.goto(f"{base}/")
    page.get_by_role("button", name="Add to cart (Electric kettle)").click()
    page.goto(f"{base}/checkout")
    expect(page.locator("#cart-total")).to_have_text("$59.00")


def set_quantity(page: Any, quantity: int) -> None:
    box = page.get_by_label("Quantity of Electric kettle")
    box.fill(str(quantity))
    box.press("Tab")  # a change event: the page updates the cart in place


def payments_of(user: Any) -> list[Payment]:
    db.session.expire_all()
    return list(db.session.scalars(select(Payment).where(Payment.user_id == user.id)
                                   .order_by(Payment.id)))


def intents_of(sdk: stripe.StripeClient, user: Any) -> list[Any]:
    db.session.expire_all()
    db.session.refresh(user)
    if not user.stripe_customer_id:
        return []
    return list(sdk.v1.payment_intents.list({"customer": user.stripe_customer_id,
                                             "limit": 100}).data)


def all_intents(sdk: stripe.StripeClient) -> list[Any]:
    return list(sdk.v1.payment_intents.list({"limit": 100}).data)


def test_leaving_checkout_after_changing_quantities_creates_nothing(page, shop, make_user, sdk):
    user = make_user()
    log_in(page, shop.url, user)
    requests_to_stripe: list[str] = []
    page.on("request", lambda r: requests_to_stripe.append(r.url)
            if "/v1/" in r.url else None)
    add_kettle_and_open_checkout(page, shop.url)
    frame = page.frame_locator(FRAME)
    expect(frame.get_by_text("Total: $59.00")).to_be_visible()
    set_quantity(page, 2)
    expect(page.locator("#cart-total")).to_have_text("$118.00")
    expect(frame.get_by_text("Total: $118.00")).to_be_visible()  # elements.update
    expect(page.locator("#pay-label")).to_have_text("Pay $118.00")
    set_quantity(page, 3)
    expect(page.locator("#cart-total")).to_have_text("$177.00")
    expect(frame.get_by_text("Total: $177.00")).to_be_visible()
    screenshot(page, "attempts-quantity-changed")
    page.get_by_role("button", name=re.compile("^Remove")).click()
    expect(page.get_by_text("Your cart is empty.")).to_be_visible()
    page.goto(f"{shop.url}/account/payments")
    assert payments_of(user) == []
    assert all_intents(sdk) == []
    assert requests_to_stripe == []
    assert page.csp_violations == []


def test_pay_then_buy_the_same_cart_again_from_a_new_page_charges_twice(page, shop, make_user,
                                                                        sdk):
    user = make_user()
    log_in(page, shop.url, user)
    add_kettle_and_open_checkout(page, shop.url)
    fill_card(page, "4242 4242 4242 4242")
    page.locator("#pay-button").click()
    first = expect_success(page)

    add_kettle_and_open_checkout(page, shop.url)
    notice = page.locator("#recent-purchase")
    expect(notice).to_be_visible()
    expect(notice).to_contain_text("You bought this")
    fill_card(page, "4242 4242 4242 4242")
    pay = page.locator("#pay-button")
    expect(pay).to_be_disabled()  # the customer decides first
    screenshot(page, "attempts-bought-recently")
    page.get_by_label("Yes, I want to buy this again").check()
    expect(pay).to_be_enabled()
    pay.click()
    second = expect_success(page)
    assert first != second
    payments = payments_of(user)
    assert [p.status for p in payments] == ["succeeded", "succeeded"]
    intents = intents_of(sdk, user)
    assert sorted(i.status for i in intents) == ["succeeded", "succeeded"]
    assert sum(i.amount_received for i in intents) == 2 * 5900


def test_a_double_click_on_pay_is_one_payment(page, shop, make_user, sdk):
    user = make_user()
    log_in(page, shop.url, user)
    add_kettle_and_open_checkout(page, shop.url)
    fill_card(page, "4242 4242 4242 4242")
    page.locator("#pay-button").dblclick()
    expect_success(page)
    assert len(payments_of(user)) == 1 and len(intents_of(sdk, user)) == 1


def test_logging_out_and_in_as_someone_else_starts_with_an_empty_cart(page, shop, make_user):
    first, second = make_user(), make_user()
    log_in(page, shop.url, first)
    add_kettle_and_open_checkout(page, shop.url)
    page.get_by_role("button", name="Log out").click()
    log_in(page, shop.url, second)
    page.goto(f"{shop.url}/checkout")
    expect(page.get_by_text("Your cart is empty.")).to_be_visible()
    expect(page.get_by_text("Electric kettle")).to_have_count(0)
    screenshot(page, "attempts-other-person-empty-cart")


def test_save_this_card_with_the_deferred_element(page, shop, make_user, sdk):
    user = make_user()
    log_in(page, shop.url, user)
    add_kettle_and_open_checkout(page, shop.url)
    page.get_by_label("Save this card for future purchases").check()
    fill_card(page, "5555 5555 5555 4444")
    page.locator("#pay-button").click()
    expect_success(page)
    payment = payments_of(user)[0]
    assert payment.payment_method is not None and payment.payment_method.last4 == "4444"
    intent = sdk.v1.payment_intents.retrieve(payment.stripe_payment_intent_id)
    assert intent.setup_future_usage == "off_session"
    # The saved card pays the next time, confirmed by the server.
    add_kettle_and_open_checkout(page, shop.url)
    page.get_by_label("Yes, I want to buy this again").check()
    expect(page.get_by_label(re.compile("Mastercard ending in 4444"))).to_be_checked()
    page.locator("#pay-button").click()
    expect_success(page)
    assert [p.status for p in payments_of(user)] == ["succeeded", "succeeded"]


def test_ticking_save_after_a_decline_saves_the_card_that_pays(page, shop, make_user, sdk):
    user = make_user()
    log_in(page, shop.url, user)
    add_kettle_and_open_checkout(page, shop.url)
    fill_card(page, "4000 0000 0000 0002")
    page.locator("#pay-button").click()
    expect(page.locator("#payment-error")).to_contain_text("declined")
    page.get_by_label("Save this card for future purchases").check()
    fill_card(page, "4242 4242 4242 4242")
    page.locator("#pay-button").click()
    expect_success(page)
    payments = payments_of(user)
    assert len(payments) == 1 and payments[0].status == "succeeded"
    assert payments[0].payment_method is not None and payments[0].payment_method.last4 == "4242"


def test_an_empty_card_form_is_refused_before_anything_is_created(page, shop, make_user, sdk):
    user = make_user()
    log_in(page, shop.url, user)
    add_kettle_and_open_checkout(page, shop.url)
    expect(page.locator("#pay-button")).to_be_enabled()
    page.locator("#pay-button").click()
    expect(page.locator("#payment-error")).to_contain_text("Your card number is incomplete")
    assert payments_of(user) == [] and all_intents(sdk) == []


def test_3ds_left_open_is_not_completed_then_try_again_pays_the_same_payment(page, shop,
                                                                             make_user, sdk):
    user = make_user()
    log_in(page, shop.url, user)
    add_kettle_and_open_checkout(page, shop.url)
    fill_card(page, "4000 0025 0000 3155")
    page.locator("#pay-button").click()
    expect(page.get_by_role("dialog")).to_be_visible()
    # The customer walks away from the bank's dialog.
    page.goto(f"{shop.url}/account/payments")
    payment = payments_of(user)[0]
    row = page.locator(f'tr[data-payment-id="{payment.public_id}"]')
    expect(row).to_contain_text("Not completed")
    screenshot(page, "attempts-not-completed")
    row.get_by_role("button", name=re.compile("^Try again")).click()
    expect(page.locator("#resume-note")).to_contain_text("You are finishing your payment")
    expect(page.locator("#cart-total")).to_have_text("$59.00")
    fill_card(page, "4242 4242 4242 4242")
    page.locator("#pay-button").click()
    assert expect_success(page) == payment.public_id
    payments = payments_of(user)
    assert [(p.public_id, p.status) for p in payments] == [(payment.public_id, "succeeded")]
    assert [i.status for i in intents_of(sdk, user)] == ["succeeded"]


@pytest.mark.parametrize("width", WIDTHS)
def test_checkout_states_are_accessible_and_fit_the_screen(open_page, shop, make_user, width):
    """axe finds nothing and nothing scrolls sideways: empty cart, a cart ready to pay, a
    declined card, the 3-D Secure dialog open (its frame checked too), bought recently."""
    page = open_page(viewport=WIDTHS[width])
    user = make_user()
    log_in(page, shop.url, user)

    def check(name: str, *, frames: bool = False) -> None:
        screenshot(page, f"attempts-{width}-{name}")
        assert_no_sideways_scroll(page)
        assert_no_axe_violations(page, label=f"checkout {name} at {width} px", frames=frames)

    page.goto(f"{shop.url}/checkout")
    check("empty")
    add_kettle_and_open_checkout(page, shop.url)
    expect(page.locator("#pay-button")).to_be_enabled()
    assert_in_view(page, page.locator("#cart-total"), "the total")
    check("ready")
    fill_card(page, "4000 0000 0000 0002")
    page.locator("#pay-button").click()
    expect(page.locator("#payment-error")).to_contain_text("declined")
    check("declined")
    fill_card(page, "4000 0025 0000 3155")
    page.locator("#pay-button").click()
    expect(page.get_by_role("dialog")).to_be_visible()
    check("3ds-dialog", frames=True)
    page.get_by_role("dialog").get_by_role("button", name="Complete").click()
    expect_success(page)
    check("paid")
    add_kettle_and_open_checkout(page, shop.url)
    expect(page.locator("#recent-purchase")).to_be_visible()
    check("bought-recently")
