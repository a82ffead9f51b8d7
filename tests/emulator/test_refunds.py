"""Refunds: full/partial, reasons, over-refund errors, charge bookkeeping, pending refunds."""

from __future__ import annotations

import time

import pytest
import stripe

from tests.emulator.helpers import card


def _paid(sc: stripe.StripeClient, amount: int = 3000, number: str = "4242424242424242"
          ) -> stripe.PaymentIntent:
    return sc.v1.payment_intents.create(params={
        "amount": amount, "currency": "usd", "payment_method": card(sc, number).id,
        "confirm": True})


def test_partial_then_full_refund(sc: stripe.StripeClient) -> None:
    """Partial refunds add up on the charge; refunding the rest marks it refunded.

    https://docs.stripe.com/api/refunds/create
    """
    pi = _paid(sc)
    r1 = sc.v1.refunds.create(params={"payment_intent": pi.id, "amount": 1000,
                                      "reason": "requested_by_customer",
                                      "metadata": {"ticket": "7"}})
    assert r1.id.startswith("re_") and r1.status == "succeeded"
    assert (r1.amount, r1.charge, r1.payment_intent) == (1000, pi.latest_charge, pi.id)
    assert r1.reason == "requested_by_customer" and r1.metadata["ticket"] == "7"
    charge = sc.v1.charges.retrieve(pi.latest_charge)
    assert charge.amount_refunded == 1000 and charge.refunded is False
    r2 = sc.v1.refunds.create(params={"charge": pi.latest_charge})  # the rest
    assert r2.amount == 2000
    charge = sc.v1.charges.retrieve(pi.latest_charge)
    assert charge.amount_refunded == 3000 and charge.refunded is True
    assert "refunds" not in charge  # Stripe includes a charge's refunds only on request
    listed = sc.v1.refunds.list(params={"payment_intent": pi.id})
    assert [r.id for r in listed.data] == [r2.id, r1.id]
    assert sc.v1.refunds.retrieve(r1.id).amount == 1000


def test_over_refund_rejected(sc: stripe.StripeClient) -> None:
    """More than what remains → amount_too_large; nothing left → charge_already_refunded.

    https://docs.stripe.com/error-codes#charge-already-refunded
    """
    pi = _paid(sc)
    with pytest.raises(stripe.InvalidRequestError) as exc:
        sc.v1.refunds.create(params={"payment_intent": pi.id, "amount": 3001})
    assert exc.value.code == "amount_too_large" and exc.value.http_status == 400
    sc.v1.refunds.create(params={"payment_intent": pi.id, "amount": 2500})
    with pytest.raises(stripe.InvalidRequestError) as exc:
        sc.v1.refunds.create(params={"payment_intent": pi.id, "amount": 501})
    assert exc.value.code == "amount_too_large"
    sc.v1.refunds.create(params={"payment_intent": pi.id})
    with pytest.raises(stripe.InvalidRequestError) as exc:
        sc.v1.refunds.create(params={"payment_intent": pi.id, "amount": 1})
    assert exc.value.code == "charge_already_refunded"
    assert sc.v1.charges.retrieve(pi.latest_charge).amount_refunded == 3000


def test_refund_unpaid_intent_and_bad_params(sc: stripe.StripeClient) -> None:
    """Refunding a PaymentIntent without a successful charge, a bad reason, amount 0 or an
    unknown id fails.

    https://docs.stripe.com/api/refunds/create
    """
    pi = sc.v1.payment_intents.create(params={"amount": 1000, "currency": "usd"})
    with pytest.raises(stripe.InvalidRequestError) as exc:
        sc.v1.refunds.create(params={"payment_intent": pi.id})
    assert exc.value.http_status == 400
    assert exc.value.code == "payment_intent_unexpected_state"
    assert exc.value.param == "payment_intent"
    assert "does not have a successful charge to refund" in str(exc.value.user_message)
    assert sc.v1.refunds.list(params={"payment_intent": pi.id}).data == []
    paid = _paid(sc)
    for params, param in (({"payment_intent": paid.id, "reason": "changed_mind"}, "reason"),
                          ({"payment_intent": paid.id, "amount": 0}, "amount"),
                          ({"payment_intent": paid.id, "colour": "x"}, "colour")):
        with pytest.raises(stripe.InvalidRequestError) as exc:
            sc.v1.refunds.create(params=params)  # type: ignore[arg-type]
        assert exc.value.param == param
    with pytest.raises(stripe.InvalidRequestError) as exc:
        sc.v1.refunds.create(params={"payment_intent": "pi_unknown"})
    assert exc.value.http_status == 404 and exc.value.code == "resource_missing"


def test_pending_refund_settles(sc: stripe.StripeClient) -> None:
    """4000000000007726: the refund starts pending and succeeds a little later.

    https://docs.stripe.com/testing#refunds
    """
    pi = _paid(sc, number="4000000000007726")
    refund = sc.v1.refunds.create(params={"payment_intent": pi.id})
    assert refund.status == "pending"
    deadline = time.monotonic() + 5
    while sc.v1.refunds.retrieve(refund.id).status == "pending":
        assert time.monotonic() < deadline
        time.sleep(0.1)
    assert sc.v1.refunds.retrieve(refund.id).status == "succeeded"


def test_failing_refund_returns_amount(sc: stripe.StripeClient) -> None:
    """4000000000005126: the refund succeeds at first, then fails; the amount is refundable
    again.

    https://docs.stripe.com/testing#refunds
    """
    pi = _paid(sc, number="4000000000005126")
    refund = sc.v1.refunds.create(params={"payment_intent": pi.id})
    assert refund.status == "succeeded"
    deadline = time.monotonic() + 5
    while sc.v1.refunds.retrieve(refund.id).status != "failed":
        assert time.monotonic() < deadline
        time.sleep(0.1)
    assert sc.v1.charges.retrieve(pi.latest_charge).amount_refunded == 0
