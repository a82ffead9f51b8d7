"""Times for people: stored in UTC, always printed with the time zone they are in.

Pages print UTC and their script (`static/js/local-time.js`) rewrites each time into the
reader's own zone; receipts and emails, read away from the site, use the merchant's zone
(`MERCHANT_TIMEZONE`).
"""

from __future__ import annotations

from datetime import UTC, datetime, tzinfo
from zoneinfo import ZoneInfo

from babel.dates import format_date, format_time, get_datetime_format
from flask import current_app


def merchant_timezone() -> ZoneInfo:
    """The zone of receipts and emails (checked when the app started)."""
    return ZoneInfo(str(current_app.config["MERCHANT_TIMEZONE"]))


def as_utc(value: datetime) -> datetime:
    """The same moment in UTC (a naive value is taken to be UTC already)."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def iso_utc(value: datetime) -> str:
    """`2026-12-07T00:48:00Z`: the moment for machines (`<time datetime>`, JSON)."""
    return as_utc(value).isoformat().replace("+00:00", "Z")


def format_moment(value: datetime, zone: tzinfo, locale: str = "en_US") -> str:
    """`Dec 7, 2026, 12:48 AM UTC`: the date, the time to the minute and the zone's
    abbreviation (EST, CET, UTC…), in the reader's language."""
    local = as_utc(value).astimezone(zone)
    date_text = format_date(local, "medium", locale=locale)
    time_text = format_time(local, "short", tzinfo=zone, locale=locale)
    # The locale's own way of joining a date and a time ("{1}, {0}" in English).
    joined = str(get_datetime_format("medium", locale=locale))
    text = joined.replace("{1}", date_text).replace("{0}", time_text)
    return f"{text} {local.tzname() or zone}"


def format_day(value: datetime, zone: tzinfo, locale: str = "en_US",
               fmt: str = "long") -> str:
    """The calendar date of `value` in `zone` (`December 7, 2026`)."""
    return format_date(as_utc(value).astimezone(zone), fmt, locale=locale)
