"""Fixtures for the webhook tests: real payments in the emulator and signed deliveries."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import requests
import stripe
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select

from payments_site.extensions import db
from payments_site.models import Payment, WebhookEvent
from tests.conftest import WEBHOOK_SECRET
from tests.helpers import sign_payload

WEBHOOK_PATH = "/api/webhooks/stripe"


def post_event(client: FlaskClient, payload: bytes, *, secret: str = WEBHOOK_SECRET,
               timestamp: int | None = None) -> Any:
    """Deliver `payload` as Stripe does: raw JSON body, signed header."""
    return client.post(WEBHOOK_PATH, data=payload, content_type="application/json",
                       headers={"Stripe-Signature": sign_payload(payload, secret, timestamp)})


def event_rows() -> list[WebhookEvent]:
    db.session.expire_all()
    return list(db.session.scalars(select(WebhookEvent).order_by(WebhookEvent.id)))


def count(model: Any, *where: Any) -> int:
    db.session.expire_all()
    return int(db.session.scalar(select(func.count()).select_from(model).where(*where)) or 0)


class StripeEvents:
    """The events the emulator recorded (`GET /v1/events`), to deliver in any order."""

    def __init__(self, sc: stripe.StripeClient) -> None:
        self.sc = sc

    def all(self) -> list[dict[str, Any]]:
        events = [e.to_dict() for e in self.sc.v1.events.list({"limit": 100}).data]
        return list(reversed(events))  # oldest first

    def of(self, event_type: str, object_id: str | None = None) -> list[dict[str, Any]]:
        return [e for e in self.all() if e["type"] == event_type
                and (object_id is None or e["data"]["object"]["id"] == object_id)]

    def one(self, event_type: str, object_id: str | None = None) -> dict[str, Any]:
        found = self.of(event_type, object_id)
        assert found, f"the emulator has no {event_type} event"
        return found[-1]


@pytest.fixture
def stripe_events(sc: stripe.StripeClient) -> StripeEvents:
    return StripeEvents(sc)


def raw(event: dict[str, Any]) -> bytes:
    return json.dumps(event).encode()


@pytest.fixture
def make_payment(app: Flask, sc: stripe.StripeClient, customer: Any) -> Callable[..., Payment]:
    """A local payment and its PaymentIntent in the emulator, confirmed with `card`.

    The local row is left as checkout leaves it before Stripe answers (requires_payment_method),
    so only webhooks (or a sync) move it.
    """

    def make(card: str = "4242424242424242", amount: int = 1999, confirm: bool = True,
             user: Any = None) -> Payment:
        owner = user or customer
        payment = Payment(user_id=owner.id, amount=amount, currency="usd",
                          cart_hash="0" * 64, description="Ceramic mug")
        db.session.add(payment)
        db.session.commit()
        method = sc.v1.payment_methods.create({"type": "card", "card": {
            "number": card, "exp_month": 12, "exp_year": 2030, "cvc": "123"}})
        params: dict[str, Any] = {"amount": amount, "currency": "usd",
                                  "payment_method": method.id,
                                  "metadata": {"payment_id": payment.public_id}}
        if confirm:
            params["confirm"] = True
        try:
            intent = sc.v1.payment_intents.create(params)  # type: ignore[arg-type]
            intent_id = intent.id
        except stripe.CardError as error:
            intent_id = error.error.payment_intent["id"]  # type: ignore[union-attr,index]
        payment.stripe_payment_intent_id = intent_id
        db.session.commit()
        return payment

    return make


def wait_until(predicate: Callable[[], bool], timeout: float = 30.0,
               message: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {message}")


@pytest.fixture
def emulator_webhook(emulator: Any, live_server: Any) -> Iterator[Callable[..., None]]:
    """register(**options): the emulator delivers its events to our live server over HTTP."""

    def register(**options: Any) -> None:
        body = {"url": live_server.url + WEBHOOK_PATH, "secret": WEBHOOK_SECRET, **options}
        response = requests.post(f"{emulator.url}/_config/webhooks/test", json=body, timeout=5)
        assert response.status_code == 200, response.text

    yield register
    requests.delete(f"{emulator.url}/_config/webhooks/test", timeout=5)


def add_fault(emulator: Any, **fault: Any) -> None:
    response = requests.post(f"{emulator.url}/_config/faults", json=fault, timeout=5)
    assert response.status_code == 200, response.text


def faults(emulator: Any) -> list[dict[str, Any]]:
    body = requests.get(f"{emulator.url}/_config/faults", timeout=5).json()
    return list(body.get("faults", body if isinstance(body, list) else []))
