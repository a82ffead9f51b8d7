"""Fixtures for receipts: succeeded payments and refunds written straight to the database.

The checkout and refund flows are tested elsewhere; here a payment only has to look like one
that Stripe confirmed.
"""

from __future__ import annotations

import io
import re
import uuid
from collections.abc import Callable
from typing import Any

import pytest
from pypdf import PdfReader

from payments_site.extensions import db
from payments_site.models import Payment, PaymentItem, Refund, utcnow
from payments_site.services.catalog import create_product
from tests.helpers import add_refund


@pytest.fixture
def make_payment(app: Any, customer: Any) -> Callable[..., Payment]:
    """make_payment(user=customer, currency="usd", items=[(name, quantity, unit_amount)])."""

    def factory(user: Any = None, *, currency: str = "usd",
                items: list[tuple[str, int, int]] | None = None, card_brand: str = "visa",
                card_last4: str = "4242", status: str = "succeeded") -> Payment:
        user = user or customer
        items = items or [("Ceramic mug", 2, 1999), ("Espresso beans, 1 kg", 1, 2450)]
        payment = Payment(
            user_id=user.id, status=status, currency=currency,
            amount=sum(quantity * unit for _, quantity, unit in items),
            cart_hash=uuid.uuid4().hex, card_brand=card_brand, card_last4=card_last4,
            stripe_payment_intent_id=f"pi_{uuid.uuid4().hex[:24]}",
            stripe_charge_id=f"ch_{uuid.uuid4().hex[:24]}",
            succeeded_at=utcnow() if status == "succeeded" else None)
        for name, quantity, unit in items:
            product = create_product(name, unit, currency)
            payment.items.append(PaymentItem(product_id=product.id, name=name,
                                             quantity=quantity, unit_amount=unit))
        db.session.add(payment)
        db.session.commit()
        return payment

    return factory


@pytest.fixture
def make_refund(app: Any) -> Callable[..., Refund]:
    """make_refund(payment, amount): a refund Stripe has confirmed."""

    def factory(payment: Payment, amount: int, *, reason: str = "requested_by_customer",
                status: str = "succeeded") -> Refund:
        return add_refund(payment, amount, status=status, reason=reason,
                          stripe_refund_id=f"re_{uuid.uuid4().hex[:24]}")

    return factory


def pdf_text(pdf: bytes) -> str:
    """All text of a PDF, whitespace (incl. no-break spaces) collapsed to single spaces."""
    reader = PdfReader(io.BytesIO(pdf))
    raw = "\n".join(page.extract_text() or "" for page in reader.pages)
    return re.sub(r"\s+", " ", raw.replace("\u00a0", " ").replace("\u202f", " "))


def squash(value: str) -> str:
    return re.sub(r"\s+", " ", value.replace("\u00a0", " ").replace("\u202f", " "))


def embedded_fonts(pdf: bytes) -> dict[str, bool]:
    """BaseFont name -> whether the font program is embedded, for every font the PDF uses."""
    reader = PdfReader(io.BytesIO(pdf))
    fonts: dict[str, bool] = {}
    for page in reader.pages:
        for font in page["/Resources"]["/Font"].values():
            font = font.get_object()
            descriptor = font.get("/FontDescriptor")
            descriptor = descriptor.get_object() if descriptor is not None else {}
            fonts[str(font["/BaseFont"])] = any(
                key in descriptor for key in ("/FontFile", "/FontFile2", "/FontFile3"))
    return fonts
