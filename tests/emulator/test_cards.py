"""Test cards: PaymentMethod creation, fingerprints and declines at charge time."""

from __future__ import annotations

import pytest
import stripe

from tests.emulator.helpers import card, pk_post


def test_payment_method_fields_and_fingerprint(sc: stripe.StripeClient) -> None:
    """A card PaymentMethod exposes brand/last4/exp/fingerprint/checks; same number → same
    fingerprint, different number → different one.

    https://docs.stripe.com/api/payment_methods/object#payment_method_object-card-fingerprint
    """
    a = card(sc, "4242424242424242", billing_details={"name": "Ada", "email": "a@x.io"})
    b = card(sc, "4242424242424242")
    c = card(sc, "5555555555554444")
    assert a.id != b.id
    assert a.card.fingerprint == b.card.fingerprint != c.card.fingerprint
    assert (a.card.brand, a.card.last4, a.card.exp_month, a.card.exp_year) == (
        "visa", "4242", 12, 2034)
    assert a.card.checks.cvc_check == "pass"
    assert a.billing_details.name == "Ada" and a.billing_details.email == "a@x.io"
    assert "number" not in a.card and "cvc" not in a.card
    assert c.card.brand == "mastercard"


def test_payment_method_with_publishable_key(emulator) -> None:
    """Stripe.js creates PaymentMethods with the publishable key in the form body.

    https://docs.stripe.com/js/payment_methods/create_payment_method
    """
    resp = pk_post(emulator.url, "/v1/payment_methods", {
        "type": "card", "card[number]": "4242424242424242", "card[exp_month]": "4",
        "card[exp_year]": "2033", "card[cvc]": "314"})
    assert resp.status_code == 200, resp.text
    assert resp.json()["card"]["last4"] == "4242"
    # But the publishable key cannot read or list anything else.
    resp = pk_post(emulator.url, "/v1/refunds", {"payment_intent": "pi_x"})
    assert resp.status_code == 401


@pytest.mark.parametrize(("number", "code", "decline_code", "param"), [
    ("4000000000000002", "card_declined", "generic_decline", None),
    ("4000000000009995", "card_declined", "insufficient_funds", None),
    ("4000000000006975", "card_declined", "card_velocity_exceeded", None),
    # Stripe sends no decline_code with these codes, and names the card field at fault.
    ("4000000000000069", "expired_card", None, "exp_month"),
    ("4000000000000127", "incorrect_cvc", None, "cvc"),
    ("4000000000000119", "processing_error", None, None),
    ("4000000000000341", "card_declined", "generic_decline", None),
])
def test_declines_happen_at_confirm(sc: stripe.StripeClient, number: str, code: str,
                                    decline_code: str | None, param: str | None) -> None:
    """Declining test cards create fine but fail at confirm: CardError (402) carrying the
    PaymentIntent, which goes back to requires_payment_method with last_payment_error.

    https://docs.stripe.com/testing#declined-payments
    """
    pm = card(sc, number)  # creating the PaymentMethod never declines
    pi = sc.v1.payment_intents.create(params={"amount": 2500, "currency": "usd"})
    with pytest.raises(stripe.CardError) as exc:
        sc.v1.payment_intents.confirm(pi.id, params={"payment_method": pm.id})
    err = exc.value
    assert err.http_status == 402
    assert err.code == code
    assert err.error.decline_code == decline_code and err.error.param == param
    assert err.error.request_log_url.endswith(err.request_id + err.error.request_log_url[
        err.error.request_log_url.index("?"):])
    assert err.error.payment_intent.id == pi.id
    assert err.error.payment_intent.status == "requires_payment_method"
    pi = sc.v1.payment_intents.retrieve(pi.id)
    assert pi.status == "requires_payment_method"
    lpe = pi.last_payment_error
    assert (lpe.code, lpe.to_dict().get("decline_code"), lpe.type) == \
        (code, decline_code, "card_error")
    assert lpe.payment_method.id == pm.id and lpe.message
    charge = sc.v1.charges.retrieve(pi.latest_charge)
    assert charge.status == "failed" and charge.failure_code == code


def test_retry_after_decline_with_good_card(sc: stripe.StripeClient) -> None:
    """After a decline the same PaymentIntent can be confirmed with another card.

    https://docs.stripe.com/payments/paymentintents/lifecycle
    """
    pi = sc.v1.payment_intents.create(params={"amount": 2500, "currency": "usd"})
    with pytest.raises(stripe.CardError):
        sc.v1.payment_intents.confirm(pi.id, params={
            "payment_method": card(sc, "4000000000009995").id})
    pi = sc.v1.payment_intents.confirm(pi.id, params={
        "payment_method": card(sc, "4242424242424242").id})
    assert pi.status == "succeeded" and pi.last_payment_error is None


@pytest.mark.parametrize(("number", "exp_year", "cvc", "code"), [
    ("4242424242424241", 2034, "123", "incorrect_number"),
    ("4242", 2034, "123", "invalid_number"),
    ("4242abcd42424242", 2034, "123", "invalid_number"),
    ("4242424242424242", 2001, "123", "invalid_expiry_year"),
    ("4242424242424242", 2034, "12x", "invalid_cvc"),
])
def test_bad_card_details(sc: stripe.StripeClient, number: str, exp_year: int, cvc: str,
                          code: str) -> None:
    """Malformed numbers, past expiry or bad CVC fail at PaymentMethod creation (card_error).

    https://docs.stripe.com/error-codes#incorrect-number
    """
    with pytest.raises(stripe.CardError) as exc:
        sc.v1.payment_methods.create(params={"type": "card", "card": {
            "number": number, "exp_month": 12, "exp_year": exp_year, "cvc": cvc}})
    assert exc.value.code == code
    assert exc.value.http_status == 402


def test_test_payment_method_ids(sc: stripe.StripeClient) -> None:
    """Stripe's `pm_card_*` test ids work as payment_method values.

    https://docs.stripe.com/testing?testing-method=payment-methods
    """
    pi = sc.v1.payment_intents.create(params={"amount": 700, "currency": "usd",
                                              "payment_method": "pm_card_visa",
                                              "confirm": True})
    assert pi.status == "succeeded"
    with pytest.raises(stripe.CardError) as exc:
        sc.v1.payment_intents.create(params={
            "amount": 700, "currency": "usd",
            "payment_method": "pm_card_visa_chargeDeclinedInsufficientFunds",
            "confirm": True})
    assert exc.value.error.decline_code == "insufficient_funds"
