"""JSON routes for payments: process, history, one payment."""

from __future__ import annotations

from flask import Blueprint, jsonify, request
from flask_login import current_user, login_required

from payments_site.blueprints.parsing import json_body
from payments_site.errors import CardDeclined
from payments_site.extensions import limiter
from payments_site.ratelimits import payment_limit, user_key
from payments_site.serializers import payment_to_dict, refund_to_dict
from payments_site.services import checkout, payments
from payments_site.services.idempotency import run_idempotent

bp = Blueprint("api_payments", __name__, url_prefix="/api/payments")


@bp.post("/process")
@login_required
@limiter.limit(payment_limit, key_func=user_key)
def process():
    """201 {payment, client_secret, requires_action}; 402 with the payment on a decline.

    Amount and currency come from the catalog; any client-sent amount, currency or status
    is ignored. The same Idempotency-Key and body replays the stored answer; the same
    `checkout_attempt` and cart is the same payment (the checkout page's Pay button).
    """
    body = json_body()
    user = current_user._get_current_object()

    def handler() -> tuple[dict[str, object], int]:
        try:
            result = checkout.process_payment(user, body.get("items"),
                                              body.get("payment_method_id"),
                                              body.get("save_payment_method", False),
                                              body.get("checkout_attempt"))
        except checkout.PaymentDeclined as declined:
            raise CardDeclined(declined.message, decline_code=declined.extra["decline_code"],
                               payload={"payment": payment_to_dict(declined.payment)}
                               ) from declined
        return {"payment": payment_to_dict(result.payment),
                "client_secret": result.client_secret,
                "requires_action": result.requires_action}, 201

    response, status = run_idempotent("payments.process", user.id,
                                      request.headers.get("Idempotency-Key"), body, handler)
    return jsonify(response), status


@bp.get("/history")
@login_required
def history():
    """200 {data: [Payment], next_cursor}: the caller's payments, newest first."""
    limit, cursor, status = payments.parse_history_query(
        request.args.get("limit"), request.args.get("cursor"), request.args.get("status"))
    page = payments.payment_history(current_user, limit=limit, cursor=cursor, status=status)
    return jsonify(data=[payment_to_dict(p) for p in page.payments],
                   next_cursor=page.next_cursor)


@bp.get("/<payment_id>")
@login_required
def detail(payment_id: str):
    """200 {payment, refunds}; 404 unless the caller owns it or is an admin."""
    payment = payments.get_payment_for(current_user, payment_id)
    return jsonify(payment=payment_to_dict(payment),
                   refunds=[refund_to_dict(r) for r in payment.refunds])
