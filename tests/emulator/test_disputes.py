"""Disputes as Stripe lists them: https://docs.stripe.com/api/disputes/list."""

from __future__ import annotations

import stripe

from tests.emulator.helpers import card


def test_disputes_list_filters_by_created(sc: stripe.StripeClient) -> None:
    """4000000000000259 is disputed once charged (https://docs.stripe.com/testing#disputes);
    `created[gte]` keeps the disputes created since then and no older ones, and an unknown
    operator is refused like any unknown parameter."""
    pi = sc.v1.payment_intents.create(params={
        "amount": 2500, "currency": "usd", "confirm": True,
        "payment_method": card(sc, "4000000000000259").id})
    mine = [d for d in sc.v1.disputes.list({"limit": 100}).data if d.payment_intent == pi.id]
    assert len(mine) == 1
    created = mine[0].created
    since = sc.v1.disputes.list({"created": {"gte": created}, "limit": 100}).data
    assert mine[0].id in [d.id for d in since]
    later = sc.v1.disputes.list({"created": {"gte": created + 1}, "limit": 100}).data
    assert mine[0].id not in [d.id for d in later]
    try:
        sc.v1.disputes.list({"created": {"after": created}})  # type: ignore[typeddict-unknown-key]
    except stripe.InvalidRequestError as error:
        assert error.http_status == 400
    else:
        raise AssertionError("an unknown created operator was accepted")
