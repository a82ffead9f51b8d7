"""PaymentIntents: create, confirm, retrieve with expand, list, update, cancel, validation."""

from __future__ import annotations

import pytest
import stripe

from tests.emulator.helpers import card


def test_create_with_standard_params(sc: stripe.StripeClient) -> None:
    """Stripe accepts the standard PaymentIntent create params and echoes them back.

    https://docs.stripe.com/api/payment_intents/create
    """
    cus = sc.v1.customers.create(params={"email": "buyer@example.com"})
    pi = sc.v1.payment_intents.create(params={
        "amount": 3998, "currency": "usd", "customer": cus.id, "description": "2 mugs",
        "metadata": {"order": "42"}, "receipt_email": "buyer@example.com",
        "automatic_payment_methods": {"enabled": True}, "setup_future_usage": "off_session"})
    assert pi.id.startswith("pi_")
    assert pi.status == "requires_payment_method"
    assert pi.client_secret.startswith(pi.id + "_secret_")
    assert (pi.amount, pi.currency, pi.customer) == (3998, "usd", cus.id)
    assert pi.description == "2 mugs" and pi.metadata["order"] == "42"
    assert pi.receipt_email == "buyer@example.com"
    assert pi.automatic_payment_methods["enabled"] is True
    assert pi.setup_future_usage == "off_session"
    assert pi.latest_charge is None and pi.last_payment_error is None
    assert pi.amount_received == 0


def test_confirm_with_payment_method_and_expand(sc: stripe.StripeClient) -> None:
    """Confirming with a payment_method charges it; expand[] returns the charge and card.

    https://docs.stripe.com/api/payment_intents/confirm and https://docs.stripe.com/api/expanding_objects
    """
    pi = sc.v1.payment_intents.create(params={"amount": 2000, "currency": "usd",
                                              "allowed_payment_method_types": ["card"]})
    pm = card(sc, "4242424242424242")
    pi = sc.v1.payment_intents.confirm(pi.id, params={"payment_method": pm.id,
                                                      "return_url": "https://shop.test/done"})
    assert pi.status == "succeeded"
    assert pi.amount_received == 2000
    assert pi.payment_method == pm.id
    assert pi.latest_charge.startswith("ch_")
    full = sc.v1.payment_intents.retrieve(pi.id, params={"expand": ["latest_charge",
                                                                    "payment_method"]})
    assert full.latest_charge.payment_method_details.card.brand == "visa"
    assert full.latest_charge.payment_method_details.card.last4 == "4242"
    assert full.latest_charge.paid is True
    assert full.payment_method.card.last4 == "4242"


def test_create_and_confirm_in_one_call_mastercard(sc: stripe.StripeClient) -> None:
    """`confirm=true` at creation charges immediately; 5555… is a Mastercard.

    https://docs.stripe.com/testing#cards
    """
    pm = card(sc, "5555555555554444")
    pi = sc.v1.payment_intents.create(params={"amount": 1500, "currency": "eur",
                                              "payment_method": pm.id, "confirm": True,
                                              "return_url": "https://shop.test/done"})
    assert pi.status == "succeeded"
    charge = sc.v1.charges.retrieve(pi.latest_charge)
    assert charge.payment_method_details.card.brand == "mastercard"
    assert charge.payment_intent == pi.id
    assert charge.amount_refunded == 0 and charge.refunded is False


def test_list_by_customer_newest_first_with_pagination(sc: stripe.StripeClient) -> None:
    """Lists are newest first, filter by customer and page with limit/starting_after.

    https://docs.stripe.com/api/payment_intents/list and https://docs.stripe.com/api/pagination
    """
    cus = sc.v1.customers.create()
    other = sc.v1.customers.create()
    ids = [sc.v1.payment_intents.create(params={"amount": 100 + i, "currency": "usd",
                                                "customer": cus.id}).id for i in range(5)]
    sc.v1.payment_intents.create(params={"amount": 999, "currency": "usd",
                                         "customer": other.id})
    page1 = sc.v1.payment_intents.list(params={"customer": cus.id, "limit": 3})
    assert [p.id for p in page1.data] == ids[::-1][:3]
    assert page1.has_more is True
    page2 = sc.v1.payment_intents.list(params={"customer": cus.id, "limit": 3,
                                               "starting_after": page1.data[-1].id})
    assert [p.id for p in page2.data] == ids[::-1][3:]
    assert page2.has_more is False


def test_cancel(sc: stripe.StripeClient) -> None:
    """A PaymentIntent awaiting a payment method can be canceled; a succeeded one cannot.

    https://docs.stripe.com/api/payment_intents/cancel
    """
    pi = sc.v1.payment_intents.create(params={"amount": 500, "currency": "usd"})
    pi = sc.v1.payment_intents.cancel(pi.id, params={"cancellation_reason": "abandoned"})
    assert pi.status == "canceled" and pi.cancellation_reason == "abandoned"
    assert pi.canceled_at is not None
    paid = sc.v1.payment_intents.create(params={
        "amount": 500, "currency": "usd", "payment_method": card(sc, "4242424242424242").id,
        "confirm": True})
    with pytest.raises(stripe.InvalidRequestError) as exc:
        sc.v1.payment_intents.cancel(paid.id)
    assert exc.value.code == "payment_intent_unexpected_state"


def test_confirm_twice_is_rejected(sc: stripe.StripeClient) -> None:
    """A succeeded PaymentIntent cannot be confirmed again (no double charge).

    https://docs.stripe.com/payments/paymentintents/lifecycle
    """
    pi = sc.v1.payment_intents.create(params={
        "amount": 500, "currency": "usd", "payment_method": card(sc, "4242424242424242").id,
        "confirm": True})
    with pytest.raises(stripe.InvalidRequestError) as exc:
        sc.v1.payment_intents.confirm(pi.id)
    assert exc.value.http_status == 400
    assert exc.value.code == "payment_intent_unexpected_state"
    assert len(sc.v1.charges.list(params={"payment_intent": pi.id}).data) == 1


def test_update_metadata_and_amount(sc: stripe.StripeClient) -> None:
    """Metadata merges on update (an empty value deletes a key); amount is editable before payment.

    https://docs.stripe.com/api/metadata
    """
    pi = sc.v1.payment_intents.create(params={"amount": 500, "currency": "usd",
                                              "metadata": {"a": "1", "b": "2"}})
    pi = sc.v1.payment_intents.update(pi.id, params={"amount": 700,
                                                     "metadata": {"b": "", "c": "3"}})
    assert pi.amount == 700
    assert pi.metadata.to_dict() == {"a": "1", "c": "3"}


def test_unknown_parameter_rejected(sc: stripe.StripeClient) -> None:
    """Unknown parameters fail with invalid_request_error naming the param.

    https://docs.stripe.com/api/errors
    """
    with pytest.raises(stripe.InvalidRequestError) as exc:
        sc.v1.payment_intents.create(params={"amount": 500, "currency": "usd",
                                             "colour": "blue"})  # type: ignore[typeddict-unknown-key]
    assert exc.value.http_status == 400
    assert exc.value.param == "colour"
    assert exc.value.error.type == "invalid_request_error"
    assert "colour" in str(exc.value.user_message)


@pytest.mark.parametrize(("params", "param"), [
    ({"currency": "usd"}, "amount"),
    ({"amount": 500}, "currency"),
    ({"amount": 10, "currency": "usd"}, "amount"),
    ({"amount": "ten", "currency": "usd"}, "amount"),
    ({"amount": 500, "currency": "usd", "customer": "cus_missing"}, "customer"),
    ({"amount": 500, "currency": "usd", "allowed_payment_method_types": ["card"],
      "automatic_payment_methods": {"enabled": True}}, "automatic_payment_methods"),
    ({"amount": 500, "currency": "usd", "off_session": True}, "off_session"),
])
def test_invalid_create_params(sc: stripe.StripeClient, params: dict, param: str) -> None:
    """Missing/invalid amount or currency, unknown customer, conflicting params → 400/404.

    https://docs.stripe.com/api/payment_intents/create
    """
    with pytest.raises(stripe.InvalidRequestError) as exc:
        sc.v1.payment_intents.create(params=params)  # type: ignore[arg-type]
    assert exc.value.http_status in (400, 404)
    assert exc.value.param == param


def test_unknown_id_is_resource_missing(sc: stripe.StripeClient) -> None:
    """Unknown ids give 404 with code resource_missing.

    https://docs.stripe.com/error-codes#resource-missing
    """
    for call in (lambda: sc.v1.payment_intents.retrieve("pi_doesnotexist"),
                 lambda: sc.v1.charges.retrieve("ch_doesnotexist"),
                 lambda: sc.v1.refunds.retrieve("re_doesnotexist"),
                 lambda: sc.v1.payment_methods.retrieve("pm_doesnotexist"),
                 lambda: sc.v1.customers.retrieve("cus_doesnotexist")):
        with pytest.raises(stripe.InvalidRequestError) as exc:
            call()
        assert exc.value.http_status == 404
        assert exc.value.code == "resource_missing"


def test_manual_capture(sc: stripe.StripeClient) -> None:
    """capture_method=manual authorizes (requires_capture) and capture settles the payment.

    https://docs.stripe.com/payments/place-a-hold-on-a-payment-method
    """
    pi = sc.v1.payment_intents.create(params={
        "amount": 900, "currency": "usd", "capture_method": "manual", "confirm": True,
        "payment_method": card(sc, "4242424242424242").id})
    assert pi.status == "requires_capture" and pi.amount_capturable == 900
    pi = sc.v1.payment_intents.capture(pi.id)
    assert pi.status == "succeeded" and pi.amount_received == 900
