"""The JSON API's answers (API.md's objects), declared once: each route answers by dumping
one of these models, and /api/openapi.json describes it from the same model."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal, cast

from flask import url_for
from flask_openapi3.types import ResponseDict
from pydantic import BaseModel, ConfigDict, Field, PlainSerializer, WithJsonSchema

from payments_site import models
from payments_site.models import PaymentStatus, RefundReason, RefundStatus
from payments_site.times import iso_utc

RefundState = Literal["none", "partial", "full"]
# ISO 8601 in UTC, exactly as the pages' <time> elements print it.
UtcTime = Annotated[datetime, PlainSerializer(iso_utc, return_type=str),
                    WithJsonSchema({"type": "string", "format": "date-time"})]


class Answer(BaseModel):
    """A JSON answer: `dump()` is the body sent."""

    model_config = ConfigDict(strict=True)

    def dump(self) -> dict[str, Any]:
        return self.model_dump(mode="json")


class Product(Answer):

    id: int
    name: str
    description: str
    unit_amount: Annotated[int, Field(ge=1)]
    currency: Annotated[str, Field(min_length=3, max_length=3)]

    @classmethod
    def of(cls, product: models.Product) -> Product:
        return cls(id=product.id, name=product.name, description=product.description,
                   unit_amount=product.unit_amount, currency=product.currency)


class PaymentItem(Answer):

    product_id: int
    name: str
    quantity: int
    unit_amount: int


class PaymentCard(Answer):

    brand: str | None
    last4: str | None


class ReceiptLink(Answer):

    number: str
    url: str


class PaymentFailure(Answer):

    code: str | None
    message: str | None


class Payment(Answer):

    id: Annotated[str, Field(pattern="^pay_")]
    status: PaymentStatus
    amount: int
    currency: str
    amount_refunded: Annotated[int, Field(ge=0)]
    refund_status: RefundState
    description: str
    items: list[PaymentItem]
    payment_method: PaymentCard | None
    receipt: ReceiptLink | None
    failure: PaymentFailure | None
    created_at: UtcTime
    stripe_payment_intent_id: str | None

    @classmethod
    def of(cls, payment: models.Payment) -> Payment:
        receipt = payment.receipt
        failure = None
        if payment.failure_code or payment.failure_message:
            failure = PaymentFailure(code=payment.failure_decline_code or payment.failure_code,
                                 message=payment.failure_message)
        return cls(
            id=payment.public_id, status=cast(PaymentStatus, payment.status), amount=payment.amount,
            currency=payment.currency, amount_refunded=payment.amount_refunded,
            refund_status=cast(RefundState, payment.refund_status),
            description=payment.description,
            items=[PaymentItem(product_id=item.product_id, name=item.name,
                                  quantity=item.quantity, unit_amount=item.unit_amount)
                   for item in payment.items],
            payment_method=(PaymentCard(brand=payment.card_brand, last4=payment.card_last4)
                            if payment.card_last4 else None),
            receipt=(ReceiptLink(number=receipt.number,
                                url=url_for("site.download_receipt", number=receipt.number))
                     if receipt is not None else None),
            failure=failure, created_at=payment.created_at,
            stripe_payment_intent_id=payment.stripe_payment_intent_id)


class PaymentMethod(Answer):

    id: str
    brand: str
    last4: str
    exp_month: int
    exp_year: int
    is_default: bool

    @classmethod
    def of(cls, method: models.PaymentMethod) -> PaymentMethod:
        return cls(id=method.stripe_payment_method_id, brand=method.brand,
                   last4=method.last4, exp_month=method.exp_month, exp_year=method.exp_year,
                   is_default=method.is_default)


class Refund(Answer):

    id: Annotated[str, Field(pattern="^ref_")]
    payment_id: str
    amount: int
    currency: str
    status: RefundStatus
    reason: RefundReason | None
    created_at: UtcTime

    @classmethod
    def of(cls, refund: models.Refund) -> Refund:
        return cls(id=refund.public_id, payment_id=refund.payment.public_id,
                   amount=refund.amount, currency=refund.currency,
                   status=cast(RefundStatus, refund.status),
                   reason=cast(RefundReason | None, refund.reason), created_at=refund.created_at)


class ErrorDetail(Answer):
    code: str
    message: str
    param: str | None = None
    decline_code: str | None = None


class Error(Answer):
    """Every error (API.md); a decline also shows its payment."""

    error: ErrorDetail
    payment: Payment | None = None


# --- The routes' answers --------------------------------------------------------------------

class Token(Answer):
    token: str
    token_type: Literal["Bearer"]
    expires_in: int


class Account(Answer):
    id: int
    email: str
    name: str
    role: str
    # False until the owner opens the link sent to the address (receipts wait for it).
    email_verified: bool


class Me(Answer):
    user: Account


class Products(Answer):
    data: list[Product]


class ProcessedPayment(Answer):
    payment: Payment
    client_secret: str | None
    requires_action: bool


class PaymentPage(Answer):
    data: list[Payment]
    next_cursor: str | None


class PaymentWithRefunds(Answer):
    payment: Payment
    refunds: list[Refund]


class RequestedRefund(Answer):
    refund: Refund


class Queued(Answer):
    queued: bool


class SetupIntentSecret(Answer):
    client_secret: str


class SavedCard(Answer):
    payment_method: PaymentMethod


class Cards(Answer):
    data: list[PaymentMethod]


class DeletedCard(Answer):
    deleted: bool
    id: str


class Received(Answer):
    received: bool


_ERRORS = {400: "Invalid request", 401: "Not authenticated", 402: "Card declined",
           403: "Forbidden (role or CSRF)", 404: "Not found or not yours",
           409: "Idempotency-Key in progress", 422: "Idempotency-Key reused",
           429: "Rate limited (Retry-After: seconds until the limit's window ends)",
           502: "Payment provider error", 503: "Payment provider unavailable"}


def answers(success: int, model: type[Answer], *errors: int) -> ResponseDict:
    """A route's documented answers: its success model and its errors (always the 400 of a
    refused request), each error with API.md's shape."""
    documented: ResponseDict = {success: model}
    for status in sorted({400, *errors}):
        documented[status] = {"description": _ERRORS[status], "content": {
            "application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}
    return documented
