"""What the gateway hands the services: frozen plain data, every Stripe reference a plain id
whether Stripe expanded it or not."""

from __future__ import annotations

import dataclasses

import pytest

from payments_site import stripe_gateway


def test_ids_are_plain_strings_whether_stripe_expanded_them_or_not(app, customer, make_card):
    pm_id = make_card(customer)
    created = stripe_gateway.create_payment_intent(
        amount=1999, currency="usd", customer_id=customer.stripe_customer_id,
        description="1 × Mug", metadata={"payment_id": "pay_ours"}, save_card=False,
        idempotency_key="gateway-data-create")
    assert (created.status, created.our_payment_id) == ("requires_payment_method", "pay_ours")
    assert created.payment_method_id is None and created.latest_charge_id is None
    # The confirm's answer and a retrieve expand the charge and the card ...
    confirmed = stripe_gateway.confirm_payment_intent(
        created.id, payment_method_id=pm_id, idempotency_key="gateway-data-confirm")
    read = stripe_gateway.retrieve_payment_intent(created.id)
    for intent in (confirmed, read):
        assert intent.status == "succeeded" and intent.last_payment_error is None
        assert intent.payment_method_id == pm_id
        assert intent.payment_method is not None and intent.payment_method.id == pm_id
        assert intent.payment_method.card is not None
        assert intent.payment_method.card.last4 == "4242"
        assert isinstance(intent.latest_charge_id, str) and intent.latest_charge_id
        assert intent.charge_card is not None and intent.charge_card.brand == "visa"
    # ... a refund does not: its references are the same plain ids.
    refund = stripe_gateway.refund_payment_intent(
        created.id, 500, None, metadata={"refund_id": "re_ours"},
        idempotency_key="gateway-data-refund")
    assert (refund.payment_intent_id, refund.charge_id, refund.our_refund_id) == \
        (created.id, read.latest_charge_id, "re_ours")
    assert (refund.amount, refund.currency) == (500, "usd")
    with pytest.raises(dataclasses.FrozenInstanceError):
        read.status = "canceled"


@pytest.mark.parametrize("reference", ["pi_123", {"id": "pi_123", "object": "payment_intent"}])
def test_a_webhook_object_gives_the_same_plain_ids(reference):
    event = {"type": "charge.refunded",
             "data": {"object": {"id": "ch_1", "object": "charge", "payment_intent": reference}}}
    assert stripe_gateway.event_charge(event) == stripe_gateway.Charge(
        id="ch_1", payment_intent_id="pi_123")
    assert stripe_gateway.event_object_id(event) == "ch_1"


@pytest.mark.parametrize("data", [None, {}, {"object": "ch_1"}, {"object": {"id": 5}},
                                  {"object": {"object": "charge"}}])
def test_a_webhook_object_without_an_id_is_refused(data):
    with pytest.raises(ValueError, match="no data.object with an id"):
        stripe_gateway.event_object_id({"type": "charge.refunded", "data": data})
