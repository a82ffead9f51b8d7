"""The JSON shapes of API.md's objects (Payment, PaymentMethod, Refund)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from flask import url_for

from payments_site.models import Payment, PaymentMethod, Refund
from payments_site.times import iso_utc


def iso(value: datetime | None) -> str | None:
    return None if value is None else iso_utc(value)


def payment_to_dict(payment: Payment) -> dict[str, Any]:
    receipt = payment.receipt
    failure = None
    if payment.failure_code or payment.failure_message:
        failure = {"code": payment.failure_decline_code or payment.failure_code,
                   "message": payment.failure_message}
    return {
        "id": payment.public_id,
        "status": payment.status,
        "amount": payment.amount,
        "currency": payment.currency,
        "amount_refunded": payment.amount_refunded,
        "refund_status": payment.refund_status,
        "description": payment.description,
        "items": [{"product_id": item.product_id, "name": item.name,
                   "quantity": item.quantity, "unit_amount": item.unit_amount}
                  for item in payment.items],
        "payment_method": ({"brand": payment.card_brand, "last4": payment.card_last4}
                           if payment.card_last4 else None),
        "receipt": ({"number": receipt.number,
                     "url": url_for("receipts.download", number=receipt.number)}
                    if receipt is not None else None),
        "failure": failure,
        "created_at": iso(payment.created_at),
        "stripe_payment_intent_id": payment.stripe_payment_intent_id,
    }


def payment_method_to_dict(method: PaymentMethod) -> dict[str, Any]:
    return {"id": method.stripe_payment_method_id, "brand": method.brand, "last4": method.last4,
            "exp_month": method.exp_month, "exp_year": method.exp_year,
            "is_default": method.is_default}


def refund_to_dict(refund: Refund) -> dict[str, Any]:
    return {"id": refund.public_id, "payment_id": refund.payment.public_id,
            "amount": refund.amount, "currency": refund.currency, "status": refund.status,
            "reason": refund.reason, "created_at": iso(refund.created_at)}
