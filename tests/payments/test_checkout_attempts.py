"""Nothing is created until Pay; one Pay = one attempt; a new checkout page = a new purchase.

The checkout page sends its attempt token (`checkout_attempt`) with every submit: the same
token and cart is the same payment, whatever happens in between (double clicks, a decline
and a retry, a lost answer); a new rendering of the page is a new purchase that charges.
"""

from __future__ import annotations

import json
import re
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from payments_site.extensions import db
from payments_site.models import Payment, Product, utcnow
from payments_site.services.catalog import create_product
from tests.conftest import DEFAULT_PASSWORD
from tests.payments.conftest import VISA, intents_of

ATTEMPT = "attempt-" + "a" * 24


def _add(session, product_id, quantity="1"):
    return session.client.post("/cart/add", data={"product_id": product_id, "quantity": quantity,
                                                  "csrf_token": session.csrf_token})


def _page_config(session):
    html = session.get("/checkout").get_data(as_text=True)
    match = re.search(r'<script type="application/json" id="checkout-config">(.*?)</script>',
                      html, re.S)
    assert match, html[:500]
    return json.loads(match.group(1)), html


def _cart_update(session, product_id, quantity=None, action="update"):
    data = {"product_id": str(product_id), "action": action, "csrf_token": session.csrf_token}
    if quantity is not None:
        data["quantity"] = str(quantity)
    return session.client.post("/cart/update", data=data,
                               headers={"Accept": "application/json",
                                        "X-CSRFToken": session.csrf_token})


def _count_payments():
    return db.session.scalar(select(func.count()).select_from(Payment))


def test_opening_checkout_and_changing_quantities_creates_nothing(shopper, customer, mug, sc):
    _add(shopper, mug.id)
    first, _ = _page_config(shopper)
    for quantity in (2, 3):
        response = _cart_update(shopper, mug.id, quantity)
        assert response.status_code == 200, response.get_data(as_text=True)
        cart = response.get_json()["cart"]
        assert cart["amount"] == 1999 * quantity and cart["currency"] == "usd"
        assert cart["lines"] == [{"product_id": mug.id, "name": "Ceramic mug",
                                  "quantity": quantity, "unit_amount": 1999,
                                  "total": 1999 * quantity,
                                  "total_display": f"${19.99 * quantity:,.2f}"}]
        assert cart["total_display"] == f"${19.99 * quantity:,.2f}"
    second, _ = _page_config(shopper)
    assert second["cart"]["amount"] == 5997
    assert first["checkoutAttempt"] != second["checkoutAttempt"]  # each rendering its own
    assert _cart_update(shopper, mug.id, action="remove").get_json()["cart"]["lines"] == []
    assert _count_payments() == 0
    assert intents_of(sc, customer) == []


@pytest.mark.parametrize("quantity", ["0.5", "-1", "100", "1e3", "", "²", "abc"])
def test_cart_update_refuses_bad_quantities_as_json(shopper, mug, quantity):
    _add(shopper, mug.id, "2")
    response = _cart_update(shopper, mug.id, quantity) if quantity else \
        shopper.client.post("/cart/update", data={"product_id": mug.id, "quantity": " ",
                                                  "csrf_token": shopper.csrf_token},
                            headers={"Accept": "application/json"})
    assert response.status_code == 400
    assert response.get_json()["error"]["param"] == "quantity"
    # Nothing changed: the cart still holds two.
    assert _page_config(shopper)[0]["cart"]["quantities"] == [2]


def test_cart_update_needs_csrf(shopper, mug):
    _add(shopper, mug.id)
    response = shopper.client.post("/cart/update", data={"product_id": mug.id, "quantity": "2"},
                                   headers={"Accept": "application/json"})
    assert response.status_code == 403


def _process(session, items, **extra):
    return session.post("/api/payments/process", json={"items": items, **extra})


def test_one_attempt_is_one_payment_whatever_is_resent(shopper, mug, sc, customer):
    items = [{"product_id": mug.id, "quantity": 1}]
    first = _process(shopper, items, checkout_attempt=ATTEMPT)
    again = _process(shopper, items, checkout_attempt=ATTEMPT)
    assert first.status_code == again.status_code == 201
    assert first.get_json()["payment"]["id"] == again.get_json()["payment"]["id"]
    assert len(intents_of(sc, customer)) == 1


def test_a_new_checkout_page_is_a_new_purchase_and_both_are_charged(
        shopper, customer, mug, make_card, sc):
    """The repeat purchase the old 60-second rule silently dropped: same cart, saved card,
    bought twice within seconds from two renderings of the page."""
    pm_id = make_card(customer)
    items = [{"product_id": mug.id, "quantity": 1}]
    _add(shopper, mug.id)
    first_page, _ = _page_config(shopper)
    first = _process(shopper, items, payment_method_id=pm_id,
                     checkout_attempt=first_page["checkoutAttempt"])
    assert first.status_code == 201 and first.get_json()["payment"]["status"] == "succeeded"
    second_page, html = _page_config(shopper)
    assert "You bought this" in html  # the page says so before the customer pays again
    assert second_page["recentPurchase"]["id"] == first.get_json()["payment"]["id"]
    second = _process(shopper, items, payment_method_id=pm_id,
                      checkout_attempt=second_page["checkoutAttempt"])
    assert second.status_code == 201 and second.get_json()["payment"]["status"] == "succeeded"
    assert second.get_json()["payment"]["id"] != first.get_json()["payment"]["id"]
    intents = intents_of(sc, customer)
    assert sorted(i.status for i in intents) == ["succeeded", "succeeded"]
    assert sum(i.amount_received for i in intents) == 2 * 1999


def test_a_declined_attempt_is_retried_on_the_same_payment(shopper, customer, mug, make_card,
                                                            sc):
    declined = make_card(customer, "4000000000000002", attach=False)
    body = {"items": [{"product_id": mug.id, "quantity": 1}], "payment_method_id": declined,
            "checkout_attempt": ATTEMPT}
    first = shopper.post("/api/payments/process", json=body)
    second = shopper.post("/api/payments/process", json=body)
    assert first.status_code == second.status_code == 402
    assert first.get_json()["payment"]["id"] == second.get_json()["payment"]["id"]
    row = db.session.scalar(select(Payment))
    db.session.refresh(row)
    assert row.confirm_attempts == 2 and len(intents_of(sc, customer)) == 1


def test_another_cart_under_the_same_attempt_is_another_payment(shopper, mug):
    one = _process(shopper, [{"product_id": mug.id, "quantity": 1}], checkout_attempt=ATTEMPT)
    two = _process(shopper, [{"product_id": mug.id, "quantity": 2}], checkout_attempt=ATTEMPT)
    assert one.get_json()["payment"]["id"] != two.get_json()["payment"]["id"]
    assert two.get_json()["payment"]["amount"] == 3998


def test_a_price_change_after_the_attempt_started_is_never_charged_silently(shopper, mug):
    items = [{"product_id": mug.id, "quantity": 1}]
    assert _process(shopper, items, checkout_attempt=ATTEMPT).status_code == 201
    db.session.get(Product, mug.id).unit_amount = 2499
    db.session.commit()
    response = _process(shopper, items, checkout_attempt=ATTEMPT)
    assert response.status_code == 400
    assert response.get_json()["error"]["param"] == "items"
    assert response.get_json()["error"]["message"] == (
        "The prices in your cart have changed. Reload the page to see the new total.")
    # The same number in another currency is another total too.
    product = db.session.get(Product, mug.id)
    product.unit_amount, product.currency = 1999, "eur"
    db.session.commit()
    response = _process(shopper, items, checkout_attempt=ATTEMPT)
    assert response.status_code == 400
    assert response.get_json()["error"]["param"] == "items"
    assert _count_payments() == 1


def test_a_paid_attempt_answers_paid_even_after_a_price_change(shopper, customer, mug,
                                                               make_card, sc):
    """Pay resent after the payment succeeded and the price changed: the payment is shown
    as paid (nothing more is charged), not refused as a changed total."""
    items = [{"product_id": mug.id, "quantity": 1}]
    pm_id = make_card(customer)
    first = _process(shopper, items, checkout_attempt=ATTEMPT, payment_method_id=pm_id)
    assert first.get_json()["payment"]["status"] == "succeeded"
    db.session.get(Product, mug.id).unit_amount = 2499
    db.session.commit()
    again = _process(shopper, items, checkout_attempt=ATTEMPT, payment_method_id=pm_id)
    assert again.status_code == 201, again.get_json()
    assert again.get_json()["payment"]["id"] == first.get_json()["payment"]["id"]
    assert again.get_json()["payment"]["amount"] == 1999
    assert len(sc.v1.charges.list({"customer": customer.stripe_customer_id}).data) == 1


def test_an_attempt_whose_payment_was_canceled_has_expired(shopper, mug):
    items = [{"product_id": mug.id, "quantity": 1}]
    _process(shopper, items, checkout_attempt=ATTEMPT)
    db.session.execute(Payment.__table__.update().values(status="canceled"))
    db.session.commit()
    response = _process(shopper, items, checkout_attempt=ATTEMPT)
    assert response.status_code == 400
    assert response.get_json()["error"]["param"] == "checkout_attempt"
    assert response.get_json()["error"]["message"] == (
        "This checkout has expired. Reload the page to pay.")


@pytest.mark.parametrize("attempt", ["short", "x" * 65, "has spaces in it ok?", 12345678901234567,
                                     ["a" * 20], "ü" * 20, ""])
def test_bad_attempt_tokens_are_refused(shopper, mug, attempt):
    response = _process(shopper, [{"product_id": mug.id, "quantity": 1}],
                        checkout_attempt=attempt)
    assert response.status_code == 400
    assert response.get_json()["error"] == {
        "code": "invalid_request", "param": "checkout_attempt",
        "message": "checkout_attempt must be 16 to 64 letters, digits, '-' or '_'."}
    assert _count_payments() == 0


def test_without_an_attempt_or_key_a_double_submit_still_reuses_the_payment(shopper, mug, sc,
                                                                              customer):
    """API.md: without an Idempotency-Key a double submit never charges twice."""
    items = [{"product_id": mug.id, "quantity": 1}]
    first = _process(shopper, items)
    second = _process(shopper, items)
    assert first.get_json()["payment"]["id"] == second.get_json()["payment"]["id"]
    assert len(intents_of(sc, customer)) == 1


def test_recent_purchase_notice_only_for_the_same_items_and_recent(shopper, customer, mug,
                                                                   make_card):
    pm_id = make_card(customer)
    _process(shopper, [{"product_id": mug.id, "quantity": 1}], payment_method_id=pm_id,
             checkout_attempt=ATTEMPT)
    _add(shopper, mug.id, "2")  # a different quantity: not the same purchase
    config, html = _page_config(shopper)
    assert config["recentPurchase"] is None and "You bought this" not in html
    # Back to one mug: the same items, and the JSON update says so too.
    cart = _cart_update(shopper, mug.id, 1).get_json()["cart"]
    assert cart["recent_purchase"]["id"]
    # Long enough ago, it is not mentioned.
    db.session.execute(Payment.__table__.update().values(
        succeeded_at=utcnow() - timedelta(hours=1)))
    db.session.commit()
    assert _page_config(shopper)[0]["recentPurchase"] is None


# --- the cart belongs to its person ---------------------------------------------------------

def _logout(session):
    return session.client.post("/auth/logout", data={"csrf_token": session.csrf_token})


def test_the_cart_is_emptied_at_logout(shopper, mug):
    _add(shopper, mug.id)
    assert _logout(shopper).status_code == 302
    from tests.conftest import login

    login(shopper.client, shopper.user.email)
    assert "Your cart is empty" in shopper.get("/checkout").get_data(as_text=True)


def test_another_person_signing_in_on_the_same_browser_gets_an_empty_cart(
        client, customer, make_user, mug):
    """Even if the first person's session was never logged out (cookie kept, new login)."""
    from tests.conftest import BrowserSession, login

    other = make_user("other@example.com")
    login(client, customer.email)
    first = BrowserSession(client, customer)
    _add(first, mug.id, "3")
    # No logout in between: the login form posted from the same browser.
    response = client.post("/auth/login", data={"email": other.email, "password": DEFAULT_PASSWORD,
                                                 "csrf_token": first.csrf_token})
    assert response.status_code == 302
    second = BrowserSession(client, other)
    html = second.get("/checkout").get_data(as_text=True)
    assert "Your cart is empty" in html and "Ceramic mug" not in html


def test_a_cart_filled_before_signing_in_is_kept(client, customer, mug):
    from tests.conftest import BrowserSession, csrf_token_from, login

    token = csrf_token_from(client.get("/").get_data(as_text=True))
    client.post("/cart/add", data={"product_id": mug.id, "quantity": "2", "csrf_token": token})
    login(client, customer.email)
    html = BrowserSession(client, customer).get("/checkout").get_data(as_text=True)
    assert "Ceramic mug" in html and "$39.98" in html


# --- "Try again" on a payment that was not completed ----------------------------------------

def _unfinished_payment(shopper, mug, attempt=ATTEMPT):
    body = _process(shopper, [{"product_id": mug.id, "quantity": 2}],
                    checkout_attempt=attempt).get_json()
    return body["payment"]["id"]


def _retry(session, payment_id):
    return session.client.post(f"/checkout/retry/{payment_id}",
                               data={"csrf_token": session.csrf_token})


def test_try_again_resumes_the_same_payment(shopper, customer, mug, sc):
    payment_id = _unfinished_payment(shopper, mug)
    response = _retry(shopper, payment_id)
    assert response.status_code == 302 and response.headers["Location"].endswith("/checkout")
    config, html = _page_config(shopper)
    assert config["checkoutAttempt"] == ATTEMPT and config["cart"]["quantities"] == [2]
    assert "You are finishing your payment" in html
    again = _process(shopper, [{"product_id": mug.id, "quantity": 2}],
                     checkout_attempt=config["checkoutAttempt"]).get_json()
    assert again["payment"]["id"] == payment_id
    assert len(intents_of(sc, customer)) == 1
    # Changing the cart leaves the resumed payment alone: a fresh attempt next time.
    _cart_update(shopper, mug.id, 1)
    assert _page_config(shopper)[0]["checkoutAttempt"] != ATTEMPT


def test_try_again_gives_an_api_made_payment_an_attempt_of_its_own(shopper, mug):
    body = _process(shopper, [{"product_id": mug.id, "quantity": 1}]).get_json()
    assert _retry(shopper, body["payment"]["id"]).status_code == 302
    config, _ = _page_config(shopper)
    row = db.session.scalar(select(Payment))
    db.session.refresh(row)
    assert row.checkout_attempt == config["checkoutAttempt"]


def test_try_again_refuses_what_cannot_be_retried_and_other_peoples(shopper, customer, mug,
                                                                    make_user, login_as,
                                                                    make_card):
    other = login_as(make_user("other@example.com"))
    payment_id = _unfinished_payment(shopper, mug)
    assert _retry(other, payment_id).status_code == 404
    assert _retry(shopper, "pay_doesnotexist").status_code == 404
    pm_id = make_card(customer)
    paid = _process(shopper, [{"product_id": mug.id, "quantity": 1}], payment_method_id=pm_id,
                    checkout_attempt="b" * 20).get_json()["payment"]["id"]
    response = _retry(shopper, paid)
    assert response.status_code == 302 and f"/account/payments/{paid}" in \
        response.headers["Location"]
    # Too old to try again.
    db.session.execute(Payment.__table__.update().where(Payment.public_id == payment_id)
                       .values(created_at=utcnow() - timedelta(days=2)))
    db.session.commit()
    assert "/account/payments/" in _retry(shopper, payment_id).headers["Location"]
    assert _retry(shopper, payment_id).status_code == 302
    # Without a CSRF token: refused.
    assert shopper.client.post(f"/checkout/retry/{payment_id}").status_code == 403


def test_a_new_card_payment_completes_after_try_again_with_the_same_intent(shopper, customer,
                                                                           mug, sc):
    payment_id = _unfinished_payment(shopper, mug)
    _retry(shopper, payment_id)
    config, _ = _page_config(shopper)
    body = _process(shopper, [{"product_id": mug.id, "quantity": 2}],
                    checkout_attempt=config["checkoutAttempt"]).get_json()
    pm = sc.v1.payment_methods.create({"type": "card", "card": {
        "number": VISA, "exp_month": 12, "exp_year": 2030, "cvc": "123"}})
    sc.v1.payment_intents.confirm(body["payment"]["stripe_payment_intent_id"],
                                  {"payment_method": pm.id})
    html = shopper.get(f"/checkout/complete?payment={payment_id}").get_data(as_text=True)
    assert "Your payment was successful" in html
    assert [p.public_id for p in db.session.scalars(select(Payment))] == [payment_id]


def test_products_in_other_currencies_keep_their_own_checkout(shopper, mug):
    euro = create_product("Tea towel", 900, "eur")
    _add(shopper, euro.id)
    config, _ = _page_config(shopper)
    assert config["cart"]["currency"] == "eur" and config["cart"]["amount"] == 900


def test_a_same_cart_payment_is_reused_only_while_recent(shopper, customer, mug, make_card,
                                                          sc):
    """Without an attempt token or a key, the same cart reuses an unfinished payment made in
    the last hour and a success of the last minute (double submits); older ones are past
    purchases, and the same cart then is a new payment."""
    items = [{"product_id": mug.id, "quantity": 1}]
    open_one = _process(shopper, items).get_json()["payment"]["id"]

    def made(public_id: str, ago: timedelta, **values) -> None:
        db.session.execute(Payment.__table__.update().where(Payment.public_id == public_id)
                           .values(created_at=utcnow() - ago, **values))
        db.session.commit()

    made(open_one, timedelta(minutes=59))
    assert _process(shopper, items).get_json()["payment"]["id"] == open_one
    made(open_one, timedelta(minutes=61))
    newer = _process(shopper, items).get_json()["payment"]["id"]
    assert newer != open_one and _count_payments() == 2

    pm_id = make_card(customer)
    paid = _process(shopper, items, payment_method_id=pm_id).get_json()["payment"]
    assert paid["status"] == "succeeded"
    made(paid["id"], timedelta(minutes=2), succeeded_at=utcnow() - timedelta(seconds=50))
    assert _process(shopper, items, payment_method_id=pm_id).get_json()["payment"]["id"] == \
        paid["id"]
    made(paid["id"], timedelta(minutes=2), succeeded_at=utcnow() - timedelta(seconds=70))
    again = _process(shopper, items, payment_method_id=pm_id).get_json()["payment"]
    assert again["id"] != paid["id"] and again["status"] == "succeeded"
    assert sorted(i.status for i in intents_of(sc, customer) if i.status == "succeeded") == \
        ["succeeded", "succeeded"]
