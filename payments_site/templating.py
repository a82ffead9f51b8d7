"""Jinja filters and globals: money and times formatted for the viewer's locale."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

from babel.dates import format_timedelta
from flask import Flask, current_app
from flask_login import current_user
from markupsafe import Markup

from payments_site.customer_status import CustomerStatus, customer_status, refund_status_label
from payments_site.money import format_money
from payments_site.services import payments
from payments_site.times import format_moment, iso_utc


def viewer_locale() -> str:
    if current_user and current_user.is_authenticated:
        return str(current_user.locale or "en_US")
    return "en_US"


def external_url(endpoint: str, **values: Any) -> str:
    """An absolute URL on the site's public address (SITE_URL), for emails.

    It needs no request: the worker writes the emails, and even in a request the address
    the app was reached at (a load balancer's, an internal one) is not the customer's.
    """
    site = urlsplit(current_app.config["SITE_URL"])
    adapter = current_app.url_map.bind(site.netloc, script_name=site.path or "/",
                                       url_scheme=site.scheme)
    return adapter.build(endpoint, values, force_external=True)


def init_templating(app: Flask) -> None:
    @app.template_filter("money")
    def money_filter(amount: int, currency: str, locale: str | None = None) -> str:
        return format_money(int(amount), currency, locale or viewer_locale())

    @app.template_filter("local_time")
    def local_time_filter(value: datetime | None) -> Markup:
        """`<time>` holding the moment in UTC, named as such; the pages' script rewrites it
        into the reader's own time zone."""
        if value is None:
            return Markup("")
        return Markup('<time datetime="{}" data-local-time>{}</time>').format(
            iso_utc(value), format_moment(value, UTC, viewer_locale()))

    @app.template_global("customer_status")
    def customer_status_global(payment: Any) -> CustomerStatus:
        """The payment's state in the customer's words, for customer pages."""
        return customer_status(payment, viewer_locale())

    app.add_template_filter(refund_status_label, "refund_status_label")
    app.add_template_global(payments.can_retry, "can_retry")
    app.add_template_global(external_url, "external_url")

    @app.template_filter("ago")
    def ago_filter(value: datetime) -> str:
        """How long ago, in words ("2 minutes ago"): needs no time zone to be read right."""
        return format_timedelta(value - datetime.now(UTC), add_direction=True,
                                locale=viewer_locale())

    @app.context_processor
    def site_globals() -> dict[str, Any]:
        return {"merchant_name": app.config["MERCHANT_NAME"],
                # BCP 47, for the browser's Intl formatting (the pages' times).
                "viewer_language_tag": viewer_locale().replace("_", "-"),
                "stripe_js_url": app.config["STRIPE_JS_URL"],
                "stripe_publishable_key": app.config["STRIPE_PUBLISHABLE_KEY"]}
