"""GET /metrics: Prometheus' scrape, for the operator's Bearer token only (METRICS_TOKEN).

Unset, the route answers 404 as if it did not exist; with it set, a scrape without the right
`Authorization: Bearer` header gets 401. Nothing here counts anything: the counters are kept
by payments_site.metrics wherever the work happens.
"""

from __future__ import annotations

import hmac

from flask import Blueprint, Response, current_app

from payments_site import metrics
from payments_site.blueprints.parsing import metrics_credentials
from payments_site.errors import NotFound, Unauthenticated
from payments_site.extensions import limiter
from payments_site.services import monitoring

bp = Blueprint("metrics", __name__)


@bp.get("/metrics")
@limiter.exempt
def scrape() -> Response:
    """Every process's counters on this machine, and the queue and failure gauges read now."""
    token = current_app.config.get("METRICS_TOKEN")
    if not token:
        raise NotFound("Not found.")
    offered = metrics_credentials()
    if offered is None or not hmac.compare_digest(offered.encode(), str(token).encode()):
        raise Unauthenticated("A valid Bearer token is required.")
    body = metrics.exposition(monitoring.readings())
    response = Response(body, mimetype=None, content_type=metrics.CONTENT_TYPE)
    response.headers["Cache-Control"] = "no-store"
    return response
