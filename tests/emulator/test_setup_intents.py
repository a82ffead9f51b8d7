"""SetupIntents, saved cards (attach/detach/list) and the customer's default card."""

from __future__ import annotations

import pytest
import stripe

from tests.emulator.helpers import card, pk_post


def test_setup_intent_attaches_card(sc: stripe.StripeClient) -> None:
    """Confirming a SetupIntent with a customer attaches the card to that customer.

    https://docs.stripe.com/payments/save-and-reuse
    """
    cus = sc.v1.customers.create()
    si = sc.v1.setup_intents.create(params={"customer": cus.id, "usage": "off_session",
                                            "automatic_payment_methods": {"enabled": True},
                                            "metadata": {"k": "v"}})
    assert si.status == "requires_payment_method" and si.client_secret
    pm = card(sc, "4242424242424242")
    si = sc.v1.setup_intents.confirm(si.id, params={"payment_method": pm.id})
    assert si.status == "succeeded" and si.payment_method == pm.id
    cards = sc.v1.customers.payment_methods.list(cus.id, params={"type": "card"})
    assert [c.id for c in cards.data] == [pm.id]
    assert sc.v1.payment_methods.retrieve(pm.id).customer == cus.id


def test_setup_intent_confirm_with_publishable_key(emulator, sc: stripe.StripeClient) -> None:
    """Stripe.js confirmSetup: publishable key + client_secret + card data.

    https://docs.stripe.com/js/setup_intents/confirm_setup
    """
    cus = sc.v1.customers.create()
    si = sc.v1.setup_intents.create(params={"customer": cus.id,
                                            "allowed_payment_method_types": ["card"]})
    card_data = {"payment_method_data[type]": "card",
                 "payment_method_data[card][number]": "5555555555554444",
                 "payment_method_data[card][exp_month]": "1",
                 "payment_method_data[card][exp_year]": "2035",
                 "payment_method_data[card][cvc]": "123"}
    bad = pk_post(emulator.url, f"/v1/setup_intents/{si.id}/confirm",
                  {"client_secret": "seti_x_secret_y", **card_data})
    assert bad.status_code == 400
    resp = pk_post(emulator.url, f"/v1/setup_intents/{si.id}/confirm",
                   {"client_secret": si.client_secret, **card_data})
    assert resp.status_code == 200, resp.text
    assert resp.json()["status"] == "succeeded"
    listed = sc.v1.customers.payment_methods.list(cus.id, params={"type": "card"}).data
    assert listed[0].card.brand == "mastercard"


def test_setup_intent_declined_card(sc: stripe.StripeClient) -> None:
    """4000000000000002 is declined when verified at setup: setup_failed, last_setup_error.

    https://docs.stripe.com/testing#declined-payments
    """
    cus = sc.v1.customers.create()
    si = sc.v1.setup_intents.create(params={"customer": cus.id})
    with pytest.raises(stripe.CardError) as exc:
        sc.v1.setup_intents.confirm(si.id, params={
            "payment_method": card(sc, "4000000000000002").id})
    assert exc.value.code == "card_declined"
    si = sc.v1.setup_intents.retrieve(si.id)
    assert si.status == "requires_payment_method"
    assert si.last_setup_error.code == "card_declined"
    assert sc.v1.customers.payment_methods.list(cus.id, params={"type": "card"}).data == []


def test_setup_intent_3ds_failure(emulator, sc: stripe.StripeClient) -> None:
    """A failed 3DS challenge on a SetupIntent → setup_intent_authentication_failure.

    https://docs.stripe.com/payments/3d-secure/authentication-flow#testing
    """
    si = sc.v1.setup_intents.create(params={"confirm": True,
                                            "payment_method": "pm_card_threeDSecure2Required"})
    assert si.status == "requires_action"
    resp = pk_post(emulator.url, f"/v1/setup_intents/{si.id}/_authenticate?success=false",
                   {"client_secret": si.client_secret})
    assert resp.status_code == 200
    si = sc.v1.setup_intents.retrieve(si.id)
    assert si.status == "requires_payment_method"
    assert si.last_setup_error.code == "setup_intent_authentication_failure"


def test_attach_detach_and_default(sc: stripe.StripeClient) -> None:
    """attach/detach PaymentMethods, set invoice_settings.default_payment_method; detaching
    the default clears it; a card not attached cannot be the default.

    https://docs.stripe.com/api/payment_methods/attach
    """
    cus = sc.v1.customers.create(params={"email": "c@x.io"},
                                 options={"idempotency_key": "cus-create-1"})
    again = sc.v1.customers.create(params={"email": "c@x.io"},
                                   options={"idempotency_key": "cus-create-1"})
    assert again.id == cus.id
    a = card(sc, "4242424242424242")
    b = card(sc, "5555555555554444")
    for pm in (a, b):
        sc.v1.payment_methods.attach(pm.id, params={"customer": cus.id})
    listed = sc.v1.customers.payment_methods.list(cus.id, params={"type": "card"}).data
    assert [p.id for p in listed] == [b.id, a.id]  # newest first
    stray = card(sc, "4242424242424242")
    with pytest.raises(stripe.InvalidRequestError):
        sc.v1.customers.update(cus.id, params={
            "invoice_settings": {"default_payment_method": stray.id}})
    cus = sc.v1.customers.update(cus.id, params={
        "invoice_settings": {"default_payment_method": a.id}})
    assert cus.invoice_settings.default_payment_method == a.id
    detached = sc.v1.payment_methods.detach(a.id)
    assert detached.customer is None
    assert sc.v1.customers.retrieve(cus.id).invoice_settings.default_payment_method is None
    with pytest.raises(stripe.InvalidRequestError):
        sc.v1.payment_methods.detach(a.id)
    other = sc.v1.customers.create()
    with pytest.raises(stripe.InvalidRequestError):
        sc.v1.payment_methods.attach(b.id, params={"customer": other.id})


def test_attach_declining_card_fails_but_0341_attaches(sc: stripe.StripeClient) -> None:
    """Attaching verifies the card: …0002 fails, …0341 attaches but its charges fail.

    https://docs.stripe.com/testing#declined-payments
    """
    cus = sc.v1.customers.create()
    with pytest.raises(stripe.CardError):
        sc.v1.payment_methods.attach(card(sc, "4000000000000002").id,
                                     params={"customer": cus.id})
    pm = card(sc, "4000000000000341")
    sc.v1.payment_methods.attach(pm.id, params={"customer": cus.id})
    with pytest.raises(stripe.CardError) as exc:
        sc.v1.payment_intents.create(params={
            "amount": 1000, "currency": "usd", "customer": cus.id, "payment_method": pm.id,
            "confirm": True, "off_session": True})
    assert exc.value.code == "card_declined"


def test_setup_future_usage_attaches_card(sc: stripe.StripeClient) -> None:
    """A payment with setup_future_usage saves the card to the PaymentIntent's customer.

    https://docs.stripe.com/payments/save-during-payment
    """
    cus = sc.v1.customers.create()
    pm = card(sc, "4242424242424242")
    sc.v1.payment_intents.create(params={
        "amount": 1000, "currency": "usd", "customer": cus.id, "payment_method": pm.id,
        "setup_future_usage": "off_session", "confirm": True})
    assert sc.v1.payment_methods.retrieve(pm.id).customer == cus.id
