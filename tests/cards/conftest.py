"""Saved-card fixtures: helpers that save cards the way the page does (SetupIntent from our
API, confirmed at Stripe with the `sdk` fixture, then saved)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import requests
import stripe

from tests.conftest import STRIPE_TEST_PUBLISHABLE_KEY

VISA = "4242424242424242"
MASTERCARD = "5555555555554444"
AMEX = "378282246310005"
DECLINED = "4000000000000002"
THREE_DS = "4000002500003155"


def new_card(sdk: stripe.StripeClient, number: str = VISA, exp_month: int = 12,
             exp_year: int = 2030) -> stripe.PaymentMethod:
    cvc = "1234" if len(number) == 15 else "123"
    return sdk.v1.payment_methods.create({"type": "card", "card": {
        "number": number, "exp_month": exp_month, "exp_year": exp_year, "cvc": cvc}})


def seti_id(client_secret: str) -> str:
    return client_secret.split("_secret_")[0]


def authenticate_setup(emulator: Any, setup_intent_id: str, client_secret: str,
                       success: bool = True) -> None:
    """What the emulator's Stripe.js posts when the customer completes (or fails) 3DS."""
    response = requests.post(
        f"{emulator.url}/v1/setup_intents/{setup_intent_id}/_authenticate",
        params={"success": "true" if success else "false"},
        data={"key": STRIPE_TEST_PUBLISHABLE_KEY, "client_secret": client_secret}, timeout=10)
    assert response.status_code == 200, response.text


@pytest.fixture
def confirmed_setup(sdk: stripe.StripeClient) -> Callable[..., str]:
    """confirmed_setup(session, number=VISA, **card) -> the id of a SetupIntent created through
    our API and confirmed at Stripe with that card (as Stripe.js confirmSetup would)."""

    def make(session: Any, number: str = VISA, **card: Any) -> str:
        response = session.post("/api/payments/methods/setup-intent", json={})
        assert response.status_code == 201, response.get_json()
        intent_id = seti_id(response.get_json()["client_secret"])
        sdk.v1.setup_intents.confirm(intent_id, {"payment_method": new_card(sdk, number,
                                                                            **card).id})
        return intent_id

    return make


@pytest.fixture
def save_card(confirmed_setup: Callable[..., str]) -> Callable[..., dict[str, Any]]:
    """save_card(session, number=VISA, make_default=None, **card) -> the saved PaymentMethod."""

    def save(session: Any, number: str = VISA, make_default: bool | None = None,
             **card: Any) -> dict[str, Any]:
        body: dict[str, Any] = {"setup_intent_id": confirmed_setup(session, number, **card)}
        if make_default is not None:
            body["make_default"] = make_default
        response = session.post("/api/payments/methods/save", json=body)
        assert response.status_code == 201, response.get_json()
        return dict(response.get_json()["payment_method"])

    return save
