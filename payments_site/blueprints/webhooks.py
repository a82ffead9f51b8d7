"""The Stripe webhook endpoint: verify, store, enqueue, answer 200."""

from __future__ import annotations

from flask import Blueprint, Response, jsonify, request

from payments_site.extensions import limiter
from payments_site.services import webhooks

bp = Blueprint("webhooks", __name__, url_prefix="/api/webhooks")


@bp.post("/stripe")
# Stripe is the only legitimate sender and every delivery is signed; a 429 would only delay
# its retries. Exempt, Flask-Limiter skips resolving limits for each delivery.
@limiter.exempt
def stripe_webhook() -> tuple[Response, int]:
    """200 once the event is stored (or was already); 400 for a missing or bad signature.

    The body is read raw (the signature covers its exact bytes) and bounded by
    MAX_CONTENT_LENGTH (413 beyond it). No Stripe call, PDF or email happens here.
    """
    webhooks.receive_event(request.get_data(cache=False),
                           request.headers.get("Stripe-Signature"))
    return jsonify({"received": True}), 200
