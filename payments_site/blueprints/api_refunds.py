"""JSON route for refunds (admin only)."""

from __future__ import annotations

from flask import Blueprint, jsonify, request
from flask_login import current_user

from payments_site.blueprints.parsing import json_body
from payments_site.extensions import limiter
from payments_site.ratelimits import refund_limit, user_key
from payments_site.security import require_admin
from payments_site.serializers import refund_to_dict
from payments_site.services import refunds
from payments_site.services.idempotency import run_idempotent

bp = Blueprint("api_refunds", __name__, url_prefix="/api/payments")


@bp.post("/refund")
@limiter.limit(refund_limit, key_func=user_key)
def refund_payment():
    """202 {"refund": Refund}, pending until the worker hears back from Stripe.

    401 anonymous, 403 customers, 404 unknown payment, 400 invalid_request (bad amount or
    reason, payment not succeeded) or amount_too_large (more than remains refundable).
    """
    require_admin()
    body = json_body()

    def handler() -> tuple[dict[str, object], int]:
        refund = refunds.request_refund(body.get("payment_id"), body.get("amount"),
                                        body.get("reason"), actor=current_user,
                                        currency=body.get("currency"))
        return {"refund": refund_to_dict(refund)}, 202

    response, status = run_idempotent("refund", current_user.id,
                                      request.headers.get("Idempotency-Key"), body, handler)
    return jsonify(response), status
