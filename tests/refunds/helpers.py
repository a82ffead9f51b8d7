"""Refund test helpers: a real succeeded PaymentIntent on the emulator and its local payment."""

from __future__ import annotations

from typing import Any

import requests
import stripe
from sqlalchemy import select

from payments_site.extensions import db
from payments_site.models import Payment, PaymentItem, Product, Refund, utcnow
from tests.conftest import STRIPE_TEST_SECRET_KEY


def stripe_client(emulator_url: str) -> stripe.StripeClient:
    return stripe.StripeClient(STRIPE_TEST_SECRET_KEY, base_addresses={"api": emulator_url},
                               max_network_retries=0)


def paid_payment(sdk: stripe.StripeClient, user: Any, amount: int = 3000,
                 currency: str = "usd", number: str = "4242424242424242") -> Payment:
    """Charge a test card on the emulator and record the matching succeeded local payment."""
    method = sdk.v1.payment_methods.create({"type": "card", "card": {
        "number": number, "exp_month": 12, "exp_year": 2030, "cvc": "123"}})
    intent = sdk.v1.payment_intents.create({
        "amount": amount, "currency": currency, "payment_method": method.id, "confirm": True,
        "allowed_payment_method_types": ["card"]})
    assert intent.status == "succeeded"
    product = Product(name="Ceramic mug", unit_amount=amount, currency=currency)
    db.session.add(product)
    db.session.flush()
    payment = Payment(user_id=user.id, status="succeeded", amount=amount, currency=currency,
                      description="Ceramic mug", cart_hash=f"test-{intent.id}",
                      stripe_payment_intent_id=intent.id,
                      stripe_charge_id=str(intent.latest_charge), card_brand="visa",
                      card_last4=number[-4:], created_at=utcnow())
    payment.succeeded_at = utcnow()
    payment.items.append(PaymentItem(product_id=product.id, name="Ceramic mug", quantity=1,
                                     unit_amount=amount))
    db.session.add(payment)
    db.session.commit()
    return payment


def unpaid_payment(user: Any, amount: int = 3000, currency: str = "usd",
                   status: str = "requires_payment_method") -> Payment:
    payment = Payment(user_id=user.id, status=status, amount=amount, currency=currency,
                      cart_hash="test-unpaid")
    db.session.add(payment)
    db.session.commit()
    return payment


def charge_amount_refunded(sdk: stripe.StripeClient, payment: Payment) -> int:
    intent = sdk.v1.payment_intents.retrieve(str(payment.stripe_payment_intent_id))
    return int(sdk.v1.charges.retrieve(str(intent.latest_charge)).amount_refunded)


def inject_fault(emulator_url: str, **fault: Any) -> None:
    """The emulator fails the next `times` matching requests (see API.md)."""
    response = requests.post(f"{emulator_url}/_config/faults", json=fault, timeout=5)
    response.raise_for_status()


def fresh_payment(payment_id: int) -> Payment:
    """The payment as the database has it now (nothing cached in the session)."""
    db.session.expire_all()
    return db.session.get_one(Payment, payment_id)


def fresh_refund(public_id: str) -> Refund:
    """The refund as the database has it now (nothing cached in the session)."""
    db.session.expire_all()
    refund = db.session.scalar(select(Refund).where(Refund.public_id == public_id))
    assert refund is not None
    return refund
