"""The admin home (/admin/): today and the last 30 days at a glance."""

from __future__ import annotations

from flask import render_template

from payments_site.blueprints.admin.blueprint import bp
from payments_site.services import overview


@bp.get("/")
def index() -> str:
    """Payments, revenue and refunds per day and currency (a chart and its table), the
    checkout success rate, open disputes, and the webhook events and emails that failed."""
    return render_template("admin/overview.html", overview=overview.overview())
