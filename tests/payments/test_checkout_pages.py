"""The cart, the checkout page and the page Stripe returns to."""

from __future__ import annotations

import re

from payments_site.services.catalog import create_product
from tests.payments.conftest import VISA

MASTERCARD = "5555555555554444"
AMEX = "378282246310005"


def _add(session, product_id, quantity="1"):
    return session.client.post("/cart/add", data={"product_id": product_id,
                                                  "quantity": quantity,
                                                  "csrf_token": session.csrf_token})


def _config(html):
    match = re.search(r'<script type="application/json" id="checkout-config">(.*?)</script>',
                      html, re.S)
    assert match
    import json
    return json.loads(match.group(1))


def test_cart_add_update_remove_and_server_total(shopper, mug):
    assert _add(shopper, mug.id, "2").status_code == 302
    page = shopper.get("/checkout")
    html = page.get_data(as_text=True)
    assert page.status_code == 200 and page.headers["Cache-Control"].startswith("no-store")
    assert "$39.98" in html and 'id="payment-element"' in html
    config = _config(html)
    assert config["cart"]["lines"] == [mug.id] and config["cart"]["quantities"] == [2]
    assert config["cart"]["amount"] == 3998 and config["cart"]["currency"] == "usd"
    assert "<script>" not in html  # no inline script under the CSP
    shopper.client.post("/cart/update", data={"product_id": mug.id, "quantity": "3",
                                              "csrf_token": shopper.csrf_token})
    assert "$59.97" in shopper.get("/checkout").get_data(as_text=True)
    shopper.client.post("/cart/update", data={"product_id": mug.id, "action": "remove",
                                              "csrf_token": shopper.csrf_token})
    assert "Your cart is empty" in shopper.get("/checkout").get_data(as_text=True)


def test_cart_rejects_bad_quantities_and_other_currencies(shopper, mug):
    for bad in ("0", "-1", "1.5", "1e3", "100"):
        _add(shopper, mug.id, bad)
    assert "Your cart is empty" in shopper.get("/checkout").get_data(as_text=True)
    _add(shopper, mug.id)
    euro = create_product("Tea towel", 900, "eur")
    _add(shopper, euro.id)
    html = shopper.get("/checkout").get_data(as_text=True)
    assert "Tea towel" not in html and "Ceramic mug" in html
    assert _add(shopper, 999).status_code == 404


def test_cart_forms_need_csrf(shopper, mug):
    response = shopper.client.post("/cart/add", data={"product_id": mug.id, "quantity": "1"})
    assert response.status_code == 403


def test_checkout_needs_login(client):
    response = client.get("/checkout")
    assert response.status_code == 302 and "/auth/login" in response.headers["Location"]


def test_saved_cards_are_offered_default_first(shopper, customer, mug, make_card):
    """The default card is listed first and preselected, even when it is neither the oldest
    card (the first saved) nor the newest."""
    oldest = make_card(customer, VISA)
    middle = make_card(customer, MASTERCARD)
    newest = make_card(customer, AMEX)
    response = shopper.post("/api/payments/methods/default", json={"payment_method_id": middle})
    assert response.status_code == 200, response.get_json()
    _add(shopper, mug.id)
    html = shopper.get("/checkout").get_data(as_text=True)
    offered = re.findall(r'name="payment_choice" value="(pm_[^"]+)"( checked)?', html)
    assert [pm for pm, _ in offered][0] == middle
    assert {pm for pm, _ in offered} == {oldest, middle, newest}
    assert [pm for pm, checked in offered if checked] == [middle]
    assert 'value="new" checked' not in html
    assert "Mastercard ending in 4444" in html and "Visa ending in 4242" in html
    assert 'name="save_payment_method"' in html


def test_complete_page_reads_stripe_not_the_query(shopper, customer, mug, sc):
    _add(shopper, mug.id)
    body = shopper.post("/api/payments/process", json={
        "items": [{"product_id": mug.id, "quantity": 1}]}).get_json()
    payment_id = body["payment"]["id"]
    intent_id = body["payment"]["stripe_payment_intent_id"]
    # Not paid yet, whatever redirect_status says.
    html = shopper.get(f"/checkout/complete?payment_intent={intent_id}"
                       "&redirect_status=succeeded").get_data(as_text=True)
    assert "did not go through" in html or "Payment status" in html
    assert "successful" not in html
    pm = sc.v1.payment_methods.create({"type": "card", "card": {
        "number": VISA, "exp_month": 12, "exp_year": 2030, "cvc": "123"}})
    sc.v1.payment_intents.confirm(intent_id, {"payment_method": pm.id})
    html = shopper.get(f"/checkout/complete?payment={payment_id}").get_data(as_text=True)
    assert "Your payment was successful" in html
    # The cart is emptied after a successful payment.
    assert "Your cart is empty" in shopper.get("/checkout").get_data(as_text=True)
    assert shopper.get("/checkout/complete?payment_intent=pi_unknown").status_code == 404
    assert shopper.get(f"/checkout/complete?payment={payment_id}&payment_intent=pi_other"
                       ).status_code == 404
