"""A real customer's objects made through the public API: saved card, payment, receipt, refund."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import stripe
from flask.testing import FlaskClient

from tests.conftest import STRIPE_TEST_SECRET_KEY

VISA = "4242424242424242"


@dataclass
class CustomerObjects:
    """Everything one customer owns, as the ids other users would try in URLs and bodies."""

    user: Any
    token: str
    payment_id: str
    intent_id: str
    receipt_number: str
    refund_note_number: str
    card_id: str
    refund_id: str
    tokens_issued: list[str] = field(default_factory=list)


def sdk(emulator_url: str) -> stripe.StripeClient:
    return stripe.StripeClient(STRIPE_TEST_SECRET_KEY, base_addresses={"api": emulator_url},
                               max_network_retries=0)


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def buy_and_refund(client: FlaskClient, emulator_url: str, user: Any, admin: Any,
                   product: Any, api_token: Callable[..., str],
                   run_jobs: Callable[..., int], *, card: str = VISA) -> CustomerObjects:
    """Save a card (SetupIntent confirmed at Stripe), pay with it, let the worker issue the
    receipt, then have an admin refund 500 and let the worker finish that too."""
    from payments_site.extensions import db
    from payments_site.models import Payment

    sc = sdk(emulator_url)
    token = api_token(user)
    admin_token = api_token(admin)
    auth = bearer(token)

    response = client.post("/api/payments/methods/setup-intent", headers=auth, json={})
    assert response.status_code == 201, response.get_json()
    setup_intent_id = response.get_json()["client_secret"].split("_secret_")[0]
    method = sc.v1.payment_methods.create({"type": "card", "card": {
        "number": card, "exp_month": 12, "exp_year": 2030, "cvc": "123"}})
    sc.v1.setup_intents.confirm(setup_intent_id, {"payment_method": method.id})
    response = client.post("/api/payments/methods/save", headers=auth,
                           json={"setup_intent_id": setup_intent_id})
    assert response.status_code == 201, response.get_json()
    card_id = response.get_json()["payment_method"]["id"]

    response = client.post("/api/payments/process", headers=auth, json={
        "items": [{"product_id": product.id, "quantity": 2}], "payment_method_id": card_id})
    assert response.status_code == 201, response.get_json()
    paid = response.get_json()["payment"]
    assert paid["status"] == "succeeded", paid
    run_jobs()

    response = client.post("/api/payments/refund", headers=bearer(admin_token),
                           json={"payment_id": paid["id"], "amount": 500,
                                 "reason": "requested_by_customer"})
    assert response.status_code == 202, response.get_json()
    refund_id = response.get_json()["refund"]["id"]
    run_jobs()

    db.session.expire_all()
    payment = db.session.query(Payment).filter_by(public_id=paid["id"]).one()
    receipts = {r.series: r.number for r in payment.receipts}
    assert "receipt" in receipts and "refund_note" in receipts, receipts
    return CustomerObjects(user=user, token=token, payment_id=paid["id"],
                           intent_id=str(payment.stripe_payment_intent_id),
                           receipt_number=receipts["receipt"],
                           refund_note_number=receipts["refund_note"], card_id=card_id,
                           refund_id=refund_id, tokens_issued=[token, admin_token])
