"""JSON route to re-send a payment's receipt email."""

from __future__ import annotations

from flask import Blueprint, Response, jsonify
from flask_login import current_user, login_required

from payments_site.extensions import limiter
from payments_site.ratelimits import user_key
from payments_site.services import receipts

bp = Blueprint("api_receipts", __name__, url_prefix="/api/payments")


@bp.post("/<payment_id>/receipt/resend")
@login_required
@limiter.limit("10 per hour", key_func=user_key)
def resend(payment_id: str) -> tuple[Response, int]:
    """202 once the stored receipt is queued to be emailed again to the payment's owner.

    404 when the payment is not the caller's (admins see every payment) or has no receipt yet.
    """
    receipts.resend_payment_receipt(payment_id, current_user)
    return jsonify(queued=True), 202
