"""Times are printed with their zone: UTC on the pages (for the script to localise), the
merchant's zone on documents; every page that shows a time marks it up as `<time>`."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest

from payments_site.extensions import db
from payments_site.models import Payment, PaymentItem
from payments_site.times import format_day, format_moment, iso_utc

ISSUE_MOMENT = datetime(2026, 12, 7, 0, 48, tzinfo=UTC)  # 7:48 PM on Dec 6 in New York


def plain(text: str) -> str:
    """Babel and ICU put narrow no-break spaces before AM/PM; compare with plain spaces."""
    return re.sub(r"[\u00a0\u202f]", " ", text)


@pytest.mark.parametrize(("zone", "locale", "expected"), [
    ("UTC", "en_US", "Dec 7, 2026, 12:48 AM UTC"),
    ("America/New_York", "en_US", "Dec 6, 2026, 7:48 PM EST"),
    ("Europe/Berlin", "en_US", "Dec 7, 2026, 1:48 AM CET"),
    ("Europe/Berlin", "de_DE", "07.12.2026, 01:48 CET"),
    ("Asia/Kolkata", "en_GB", "7 Dec 2026, 06:18 IST"),
])
def test_a_moment_is_printed_with_its_zone(zone, locale, expected):
    assert plain(format_moment(ISSUE_MOMENT, ZoneInfo(zone), locale)) == expected


def test_summer_time_gets_its_own_abbreviation():
    july = datetime(2026, 7, 4, 16, 5, tzinfo=UTC)
    assert plain(format_moment(july, ZoneInfo("America/New_York"))) == "Jul 4, 2026, 12:05 PM EDT"


def test_naive_and_offset_moments_are_the_same_instant():
    naive = datetime(2026, 12, 7, 0, 48)
    offset = datetime(2026, 12, 6, 19, 48, tzinfo=timezone(timedelta(hours=-5)))
    assert iso_utc(naive) == iso_utc(offset) == iso_utc(ISSUE_MOMENT) == "2026-12-07T00:48:00Z"


def test_the_day_depends_on_the_zone():
    assert format_day(ISSUE_MOMENT, ZoneInfo("America/New_York")) == "December 6, 2026"
    assert format_day(ISSUE_MOMENT, UTC) == "December 7, 2026"


UTC_TIME = ('<time datetime="2026-12-07T00:48:00Z" data-local-time>'
            'Dec 7, 2026, 12:48 AM UTC</time>')


@pytest.fixture
def payment_at_issue_moment(customer, product):
    payment = Payment(user_id=customer.id, status="failed", amount=1999, currency="usd",
                      cart_hash="times", description="Ceramic mug", created_at=ISSUE_MOMENT,
                      updated_at=ISSUE_MOMENT)
    payment.items = [PaymentItem(product_id=product.id, name="Ceramic mug", quantity=1,
                                 unit_amount=1999)]
    db.session.add(payment)
    db.session.commit()
    return payment


def test_customer_pages_mark_times_up_in_utc_named(login_as, customer, payment_at_issue_moment):
    session = login_as(customer)
    history = plain(session.get("/account/payments").get_data(as_text=True))
    assert UTC_TIME in history
    detail = plain(session.get(f"/account/payments/{payment_at_issue_moment.public_id}")
                   .get_data(as_text=True))
    assert UTC_TIME in detail
    # No time is printed bare: every date on the page is a <time> with a zone.
    assert "Dec 7, 2026" not in re.sub(r"<time [^>]*>[^<]*</time>", "", detail)


def test_admin_pages_mark_times_up_in_utc_named(login_as, admin, payment_at_issue_moment):
    session = login_as(admin)
    for path in ("/admin/payments", f"/admin/payments/{payment_at_issue_moment.public_id}"):
        html = plain(session.get(path).get_data(as_text=True))
        assert UTC_TIME in html, path
        assert "Dec 7, 2026" not in re.sub(r"<time [^>]*>[^<]*</time>", "", html), path


def test_the_layout_loads_the_local_time_script_and_names_the_language(client):
    html = client.get("/").get_data(as_text=True)
    assert '<html lang="en" data-locale="en-US">' in html
    assert re.search(r'<script src="/static/js/local-time\.js" defer></script>', html)
    script = client.get("/static/js/local-time.js")
    assert script.status_code == 200
    assert "Intl.DateTimeFormat" in script.get_data(as_text=True)
