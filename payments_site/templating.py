"""Jinja filters and globals: money and dates formatted for the viewer's locale."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from babel.dates import format_date, format_datetime, format_timedelta
from flask import Flask
from flask_login import current_user

from payments_site.money import format_money


def viewer_locale() -> str:
    if current_user and current_user.is_authenticated:
        return str(current_user.locale or "en_US")
    return "en_US"


def init_templating(app: Flask) -> None:
    @app.template_filter("money")
    def money_filter(amount: int, currency: str, locale: str | None = None) -> str:
        return format_money(int(amount), currency, locale or viewer_locale())

    @app.template_filter("datetime")
    def datetime_filter(value: datetime | None, fmt: str = "medium") -> str:
        if value is None:
            return ""
        return format_datetime(value, format=fmt, tzinfo=UTC, locale=viewer_locale())

    @app.template_filter("date")
    def date_filter(value: datetime | None, fmt: str = "medium") -> str:
        if value is None:
            return ""
        return format_date(value, format=fmt, locale=viewer_locale())

    @app.template_filter("ago")
    def ago_filter(value: datetime) -> str:
        """How long ago, in words ("2 minutes ago"): needs no time zone to be read right."""
        return format_timedelta(value - datetime.now(UTC), add_direction=True,
                                locale=viewer_locale())

    @app.context_processor
    def site_globals() -> dict[str, Any]:
        return {"merchant_name": app.config["MERCHANT_NAME"],
                "stripe_js_url": app.config["STRIPE_JS_URL"],
                "stripe_publishable_key": app.config["STRIPE_PUBLISHABLE_KEY"],
                # Lets the layout link only to pages that exist in this build.
                "endpoints": app.view_functions.keys()}
