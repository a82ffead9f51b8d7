"""The admin overview (/admin/): its numbers are the sums of the payment and refund rows,
before and after the worker's roll-up, and it shows what needs attention."""

from __future__ import annotations

import re
from collections import defaultdict
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select, update

from payments_site.extensions import db
from payments_site.models import (
    DailyTotal,
    OutboundEmail,
    Payment,
    Refund,
    WebhookEvent,
    utcnow,
)
from payments_site.services import overview
from tests.operations.rows import payment_row, refund_row

ROW = re.compile(r'<tr data-day="([0-9-]+)" data-payments="(\d+)" data-revenue="(\d+)" '
                 r'data-refunded="(\d+)">')


@pytest.fixture
def history(customer):
    """Payments over the last 40 days in two currencies, some failed, refunded or canceled."""
    made = []
    for days_ago, amount, currency, status in [
            (0, 1999, "usd", "succeeded"), (0, 500, "usd", "failed"), (0, 700, "jpy", "succeeded"),
            (1, 2500, "usd", "succeeded"), (1, 2500, "usd", "succeeded"),
            (3, 1200, "eur", "canceled"), (3, 4200, "eur", "succeeded"),
            (12, 999, "usd", "requires_action"), (29, 3000, "usd", "succeeded"),
            (30, 8000, "usd", "succeeded"), (39, 100, "usd", "succeeded")]:
        made.append(payment_row(customer, days_ago=days_ago, amount=amount, currency=currency,
                             status=status))
    refund_row(made[3], 1000, days_ago=0)
    refund_row(made[6], 4200, days_ago=2)
    refund_row(made[8], 500, days_ago=29, status="pending")  # not yet refunded: not counted
    return made


def _expected():
    """Per (currency, day): payments, revenue, refunded, from the rows themselves."""
    today = utcnow().date()
    first = today - timedelta(days=29)
    sums = defaultdict(lambda: [0, 0, 0])
    for p in db.session.scalars(select(Payment)):
        day = p.created_at.astimezone(UTC).date()
        if first <= day <= today:
            sums[p.currency, day][0] += 1
            sums[p.currency, day][1] += p.amount if p.status == "succeeded" else 0
    for r in db.session.scalars(select(Refund).where(Refund.status == "succeeded")):
        day = r.created_at.astimezone(UTC).date()
        if first <= day <= today:
            sums[r.currency, day][2] += r.amount
    return {key: tuple(value) for key, value in sums.items() if any(value)}


def _shown(html):
    """Per (currency, day): payments, revenue, refunded, as the page's tables list them."""
    shown = {}
    for section in re.split(r'<section class="card overview-currency"', html)[1:]:
        currency = re.search(r'data-currency="([a-z]{3})"', section).group(1)
        for day, payments, revenue, refunded in ROW.findall(section):
            if int(payments) or int(revenue) or int(refunded):
                shown[currency, datetime.fromisoformat(day).date()] = (
                    int(payments), int(revenue), int(refunded))
    return shown


def _field(html, name):
    return [int(v) for v in re.findall(rf'data-field="{name}">(\d+)<', html)]


def test_the_overview_equals_the_sums_of_the_rows_before_and_after_the_roll_up(
        admin, login_as, history):
    page = login_as(admin)
    expected = _expected()
    assert expected  # the fixture has rows in the window
    before = page.get("/admin/")
    assert before.status_code == 200
    assert _shown(before.get_data(as_text=True)) == expected  # nothing rolled up yet

    assert overview.roll_up() == 30  # every day of the window, once
    # Again: today, and the days whose rows changed in the last minutes (the refunds touched
    # their payments), never the rest.
    assert overview.roll_up() <= 4
    assert db.session.scalar(select(DailyTotal).where(
        DailyTotal.currency == "usd",
        DailyTotal.day == utcnow().date() - timedelta(days=1))).revenue == 5000
    after = page.get("/admin/").get_data(as_text=True)
    assert _shown(after) == expected

    # A day outside the window and a pending refund count nowhere; JPY has no decimals.
    assert ("usd", utcnow().date() - timedelta(days=30)) not in _shown(after)
    assert "¥700" in after

    # The success rate: succeeded ÷ (succeeded + failed + canceled), in the window.
    window = [p for p in history if (utcnow().date() - p.created_at.date()).days < 30]
    succeeded = sum(p.status == "succeeded" for p in window)
    finished = sum(p.status in ("succeeded", "failed", "canceled") for p in window)
    assert _field(after, "succeeded")[-1] == succeeded and _field(after, "finished") == [finished]
    assert f"{100 * succeeded / finished:.1f}%" in after


def test_today_is_rolled_up_on_every_run(admin, login_as, history, customer):
    overview.roll_up()
    payment_row(customer, days_ago=0, amount=4321)
    page = login_as(admin)
    # Until the next roll-up, today shows what the last one found ...
    assert _shown(page.get("/admin/").get_data(as_text=True)) != _expected()
    overview.roll_up()
    # ... and then the new payment.
    assert _shown(page.get("/admin/").get_data(as_text=True)) == _expected()


def test_a_change_to_an_old_day_is_rolled_up_again(admin, login_as, history):
    overview.roll_up()
    page = login_as(admin)
    # A payment of 12 days ago finally succeeds, and a refund of it is made today.
    late = history[7]
    db.session.execute(update(Payment).where(Payment.id == late.id)
                       .values(status="succeeded", succeeded_at=utcnow()))
    db.session.commit()
    refund_row(late, 300, days_ago=0)
    rolled = overview.roll_up()
    assert 2 <= rolled <= 5  # today, that day (and the ones changed minutes ago), not all 30
    assert _shown(page.get("/admin/").get_data(as_text=True)) == _expected()


def test_the_chart_reads_without_colour_and_has_no_scripts(admin, login_as, history):
    html = login_as(admin).get("/admin/").get_data(as_text=True)
    assert html.count('<svg viewBox=') == 3  # eur, jpy, usd
    assert 'role="img"' in html and "<title id=\"chart-usd-title\">" in html
    assert 'fill="url(#hatch-usd)"' in html  # refunds hatched, revenue solid
    assert "Revenue (solid)" in html and "Refunds (hatched)" in html
    overview_part = html.split("<h1>Overview</h1>", 1)[1]
    assert "<script" not in overview_part.split("</main>")[0]


def test_disputes_and_failures_are_listed_with_links(admin, login_as, customer):
    disputed = payment_row(customer, days_ago=2, amount=5000)
    due = utcnow() + timedelta(days=6)
    db.session.execute(update(Payment).where(Payment.id == disputed.id).values(
        stripe_dispute_id="dp_open1", dispute_status="needs_response",
        dispute_reason="fraudulent", dispute_evidence_due_by=due))
    closed = payment_row(customer, days_ago=2, amount=700)
    db.session.execute(update(Payment).where(Payment.id == closed.id).values(
        stripe_dispute_id="dp_won1", dispute_status="won"))
    db.session.add(WebhookEvent(stripe_event_id="evt_broken1", type="charge.refunded",
                                payload="{}", status="failed", attempts=8,
                                last_error="boom", received_at=utcnow()))
    db.session.add(OutboundEmail(dedupe_key="x:1", kind="receipt", to_address="a@example.com",
                                 subject="Your receipt", body_text="t",
                                 message_id="<m1@shop.example>", status="failed", attempts=6))
    db.session.commit()
    html = login_as(admin).get("/admin/").get_data(as_text=True)
    assert _field(html, "open-disputes") == [1]
    assert disputed.public_id in html and closed.public_id not in html
    assert f'datetime="{due.strftime("%Y-%m-%dT%H:%M")}' in html
    assert _field(html, "failed-webhooks") == [1] and "evt_broken1" in html
    assert _field(html, "failed-emails") == [1] and "Your receipt" in html
    assert 'href="/admin/webhooks?status=failed"' in html and 'href="/admin/emails"' in html


def test_only_admins_see_the_overview(client, customer, login_as):
    assert client.get("/admin/").status_code == 302  # to the login page
    assert login_as(customer).get("/admin/").status_code == 403
