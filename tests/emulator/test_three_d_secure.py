"""3-D Secure: requires_action, the Stripe.js _authenticate route, off-session rules."""

from __future__ import annotations

import pytest
import requests
import stripe

from tests.emulator.helpers import PUBLISHABLE_KEY, card, pk_post


def _authenticate(url: str, kind: str, obj: stripe.StripeObject, success: bool
                  ) -> requests.Response:
    return pk_post(url, f"/v1/{kind}/{obj.id}/_authenticate?success={str(success).lower()}",
                   {"client_secret": obj.client_secret})


def test_3ds_required_then_success(emulator, sc: stripe.StripeClient) -> None:
    """4000002500003155 needs 3DS: requires_action with use_stripe_sdk; authenticating
    completes the payment with a 3DS-marked charge.

    https://docs.stripe.com/testing#regulatory-cards
    """
    pi = sc.v1.payment_intents.create(params={
        "amount": 1200, "currency": "usd", "confirm": True,
        "payment_method": card(sc, "4000002500003155").id,
        "return_url": "https://shop.test/done"})
    assert pi.status == "requires_action"
    assert pi.next_action.type == "use_stripe_sdk"
    assert pi.latest_charge is None
    resp = _authenticate(emulator.url, "payment_intents", pi, True)
    assert resp.status_code == 200, resp.text
    pi = sc.v1.payment_intents.retrieve(pi.id, params={"expand": ["latest_charge"]})
    assert pi.status == "succeeded" and pi.next_action is None
    assert pi.latest_charge.payment_method_details.card.three_d_secure.result == "authenticated"


def test_3ds_failure(emulator, sc: stripe.StripeClient) -> None:
    """A failed 3DS challenge → requires_payment_method with
    payment_intent_authentication_failure.

    https://docs.stripe.com/payments/3d-secure/authentication-flow#testing
    """
    pi = sc.v1.payment_intents.create(params={
        "amount": 1200, "currency": "usd", "confirm": True,
        "payment_method": card(sc, "4000000000003220").id})
    assert pi.status == "requires_action"
    resp = _authenticate(emulator.url, "payment_intents", pi, False)
    assert resp.status_code == 200
    pi = sc.v1.payment_intents.retrieve(pi.id)
    assert pi.status == "requires_payment_method"
    assert pi.last_payment_error.code == "payment_intent_authentication_failure"


def test_authenticate_needs_matching_client_secret(emulator, sc: stripe.StripeClient) -> None:
    """Publishable-key calls only work with the intent's client_secret.

    https://docs.stripe.com/api/payment_intents/object#payment_intent_object-client_secret
    """
    pi = sc.v1.payment_intents.create(params={
        "amount": 1200, "currency": "usd", "confirm": True,
        "payment_method": card(sc, "4000002760003184").id})
    resp = pk_post(emulator.url, f"/v1/payment_intents/{pi.id}/_authenticate?success=true",
                   {"client_secret": pi.id + "_secret_wrong"})
    assert resp.status_code == 400
    assert resp.json()["error"]["param"] == "client_secret"
    resp = requests.get(f"{emulator.url}/v1/payment_intents/{pi.id}",
                        params={"key": PUBLISHABLE_KEY, "client_secret": "nope"}, timeout=5)
    assert resp.status_code == 400
    resp = requests.get(f"{emulator.url}/v1/payment_intents/{pi.id}",
                        params={"key": PUBLISHABLE_KEY}, timeout=5)
    assert resp.status_code == 400
    resp = requests.get(f"{emulator.url}/v1/payment_intents/{pi.id}",
                        params={"key": PUBLISHABLE_KEY, "client_secret": pi.client_secret},
                        timeout=5)
    assert resp.status_code == 200 and resp.json()["status"] == "requires_action"
    assert sc.v1.payment_intents.retrieve(pi.id).status == "requires_action"


def test_stripe_js_confirm_with_card_data(emulator, sc: stripe.StripeClient) -> None:
    """Stripe.js confirms with the publishable key, client_secret and payment_method_data.

    https://docs.stripe.com/js/payment_intents/confirm_card_payment
    """
    pi = sc.v1.payment_intents.create(params={"amount": 800, "currency": "usd"})
    resp = pk_post(emulator.url, f"/v1/payment_intents/{pi.id}/confirm", {
        "client_secret": pi.client_secret, "payment_method_data[type]": "card",
        "payment_method_data[card][number]": "4242424242424242",
        "payment_method_data[card][exp_month]": "12",
        "payment_method_data[card][exp_year]": "2031",
        "payment_method_data[card][cvc]": "123", "return_url": "https://shop.test/x"})
    assert resp.status_code == 200, resp.text
    assert resp.json()["status"] == "succeeded"
    other = sc.v1.payment_intents.create(params={"amount": 800, "currency": "usd"})
    resp = pk_post(emulator.url, f"/v1/payment_intents/{other.id}/confirm", {
        "client_secret": pi.client_secret, "payment_method": "pm_card_visa"})
    assert resp.status_code == 400
    assert sc.v1.payment_intents.retrieve(other.id).status == "requires_payment_method"


def test_off_session_after_setup_succeeds(emulator, sc: stripe.StripeClient) -> None:
    """4000002500003155 set up with a SetupIntent is charged off-session without 3DS.

    https://docs.stripe.com/testing#authentication-and-setup
    """
    cus = sc.v1.customers.create()
    pm = card(sc, "4000002500003155")
    si = sc.v1.setup_intents.create(params={"customer": cus.id, "payment_method": pm.id,
                                            "confirm": True})
    assert si.status == "requires_action"
    assert _authenticate(emulator.url, "setup_intents", si, True).status_code == 200
    assert sc.v1.setup_intents.retrieve(si.id).status == "succeeded"
    pi = sc.v1.payment_intents.create(params={
        "amount": 1500, "currency": "usd", "customer": cus.id, "payment_method": pm.id,
        "off_session": True, "confirm": True})
    assert pi.status == "succeeded"


@pytest.mark.parametrize("setup_first", [False, True])
def test_always_authenticate_card_off_session(emulator, sc: stripe.StripeClient,
                                              setup_first: bool) -> None:
    """4000002760003184 needs authentication on every charge: off-session fails with
    authentication_required even when set up; on-session goes to requires_action.

    https://docs.stripe.com/testing#authentication-and-setup
    """
    cus = sc.v1.customers.create()
    pm = card(sc, "4000002760003184")
    if setup_first:
        si = sc.v1.setup_intents.create(params={"customer": cus.id, "payment_method": pm.id,
                                                "confirm": True})
        assert _authenticate(emulator.url, "setup_intents", si, True).status_code == 200
    else:
        sc.v1.payment_methods.attach(pm.id, params={"customer": cus.id})
    with pytest.raises(stripe.CardError) as exc:
        sc.v1.payment_intents.create(params={
            "amount": 1500, "currency": "usd", "customer": cus.id, "payment_method": pm.id,
            "off_session": True, "confirm": True})
    assert exc.value.code == "authentication_required"
    pi = exc.value.error.payment_intent
    assert pi.status == "requires_payment_method"
    assert pi.last_payment_error.code == "authentication_required"
    on = sc.v1.payment_intents.create(params={
        "amount": 1500, "currency": "usd", "customer": cus.id, "payment_method": pm.id,
        "confirm": True})
    assert on.status == "requires_action"


def test_3ds_card_off_session_without_setup(sc: stripe.StripeClient) -> None:
    """4000002500003155 charged off-session before being set up → authentication_required.

    https://docs.stripe.com/testing#authentication-and-setup
    """
    cus = sc.v1.customers.create()
    pm = card(sc, "4000002500003155")
    sc.v1.payment_methods.attach(pm.id, params={"customer": cus.id})
    with pytest.raises(stripe.CardError) as exc:
        sc.v1.payment_intents.create(params={
            "amount": 1500, "currency": "usd", "customer": cus.id, "payment_method": pm.id,
            "off_session": True, "confirm": True})
    assert exc.value.code == "authentication_required"
