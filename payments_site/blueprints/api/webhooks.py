"""The Stripe webhook endpoint: verify, store, enqueue, answer 200."""

from __future__ import annotations

from typing import Any

from flask_openapi3.models import RawModel

from payments_site.blueprints.api.blueprint import PUBLIC, bp
from payments_site.blueprints.api.schemas import Received, answers
from payments_site.blueprints.parsing import StripeSignatureHeader, raw_body, validated
from payments_site.extensions import limiter
from payments_site.services import webhooks


@bp.post("/webhooks/stripe", summary="Stripe webhook endpoint (signed; no login, no CSRF)",
         responses=answers(200, Received), openapi_extensions=PUBLIC)
# Stripe is the only legitimate sender and every delivery is signed; a 429 would only delay
# its retries. Exempt, Flask-Limiter skips resolving limits for each delivery.
@limiter.exempt
@validated
def stripe_webhook(header: StripeSignatureHeader, raw: RawModel) -> dict[str, Any]:
    """200 once the event is stored (or was already); 400 for a missing or bad signature.

    The body is read raw (the signature covers its exact bytes) and bounded by
    MAX_CONTENT_LENGTH (413 beyond it). No Stripe call, PDF or email happens here.
    """
    webhooks.receive_event(raw_body(), header.signature)
    return Received(received=True).dump()
