"""JSON routes for payments: process, history, one payment, refunds, the receipt again."""

from __future__ import annotations

from typing import Any

from flask_login import current_user, login_required

from payments_site.blueprints.api.blueprint import admin_required, bp, idempotent
from payments_site.blueprints.api.schemas import (
    Payment,
    PaymentPage,
    PaymentWithRefunds,
    ProcessedPayment,
    Queued,
    Refund,
    RequestedRefund,
    answers,
)
from payments_site.blueprints.parsing import (
    HistoryQuery,
    IdempotencyKeyHeader,
    PaymentPath,
    ProcessPaymentRequest,
    RefundRequest,
    validated,
)
from payments_site.errors import CardDeclined
from payments_site.extensions import limiter
from payments_site.ratelimits import payment_limit, refund_limit, user_key
from payments_site.services import checkout, payments, receipts, refunds

Answer = tuple[dict[str, Any], int]


@bp.post("/payments/process",
         summary="Create (and with a saved card, confirm) the payment for a cart",
         responses=answers(201, ProcessedPayment, 401, 402, 403, 404, 409, 422, 429, 502, 503))
@login_required
@limiter.limit(payment_limit, key_func=user_key)
@idempotent("payments.process")
@validated
def process_payment(body: ProcessPaymentRequest, header: IdempotencyKeyHeader) -> Answer:
    """201 {payment, client_secret, requires_action}; 402 with the payment on a decline.

    Amount and currency come from the catalog; any client-sent amount, currency or status
    is ignored. The same Idempotency-Key and body replays the stored answer, and a new key
    is a new purchase, even of the same cart; the same `checkout_attempt` and cart is the
    same payment (the checkout page's Pay button), whatever the key.
    """
    try:
        result = checkout.process_payment(current_user, body.cart(), body.payment_method_id,
                                          body.save_payment_method, body.checkout_attempt,
                                          header.key)
    except checkout.PaymentDeclined as declined:
        raise CardDeclined(declined.message, decline_code=declined.extra["decline_code"],
                           payload={"payment": Payment.of(declined.payment).dump()}
                           ) from declined
    return ProcessedPayment(payment=Payment.of(result.payment),
                            client_secret=result.client_secret,
                            requires_action=result.requires_action).dump(), 201


@bp.get("/payments/history", summary="The caller's payments, newest first",
        responses=answers(200, PaymentPage, 401))
@login_required
@validated
def payment_history(query: HistoryQuery) -> dict[str, Any]:
    """200 {data: [Payment], next_cursor}: the caller's payments, newest first."""
    page = payments.payment_history(current_user, limit=query.limit, cursor=query.cursor,
                                    status=query.status)
    return PaymentPage(data=[Payment.of(p) for p in page.payments],
                       next_cursor=page.next_cursor).dump()


@bp.get("/payments/<payment_id>", summary="One payment with its refunds",
        responses=answers(200, PaymentWithRefunds, 401, 404))
@login_required
@validated
def payment_detail(path: PaymentPath) -> dict[str, Any]:
    """200 {payment, refunds}; 404 unless the caller owns it or is an admin."""
    payment = payments.get_payment_for(current_user, path.payment_id)
    return PaymentWithRefunds(payment=Payment.of(payment),
                              refunds=[Refund.of(r) for r in payment.refunds]).dump()


@bp.post("/payments/refund", summary="Refund all or part of a payment (admin)",
         responses=answers(202, RequestedRefund, 401, 403, 404, 409, 422, 429))
@limiter.limit(refund_limit, key_func=user_key)
@admin_required
@idempotent("refund")
@validated
def refund_payment(body: RefundRequest, header: IdempotencyKeyHeader) -> Answer:
    """202 {"refund": Refund}, pending until the worker hears back from Stripe.

    401 anonymous, 403 customers, 404 unknown payment, 400 invalid_request (bad amount or
    reason, payment not succeeded), amount_too_large (more than remains refundable) or
    charge_disputed (the payment has an open dispute, which Stripe does not refund; nothing
    is reserved or recorded).
    """
    refund = refunds.request_refund(body.payment_id, body.amount, body.reason,
                                    actor=current_user, currency=body.currency,
                                    request_key=header.key)
    return RequestedRefund(refund=Refund.of(refund)).dump(), 202


@bp.post("/payments/<payment_id>/receipt/resend", summary="E-mail the stored receipt again",
         responses=answers(202, Queued, 401, 403, 404, 429))
@login_required
@limiter.limit("10 per hour", key_func=user_key)
@validated
def resend_receipt(path: PaymentPath) -> Answer:
    """202 once the stored receipt is queued to be emailed again to the payment's owner.

    404 when the payment is not the caller's (admins see every payment) or has no receipt yet.
    """
    receipts.resend_payment_receipt(path.payment_id, current_user)
    return Queued(queued=True).dump(), 202
