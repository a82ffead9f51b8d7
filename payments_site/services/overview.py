"""The admin overview: today and the last 30 days at a glance.

Payments, revenue and refunds per UTC day and currency come from `daily_totals`, which the
worker's sweep rebuilds every SWEEP_INTERVAL seconds for today and for every day whose
payments or refunds changed since its last run (found through the indexed `updated_at`
columns); a day not rolled up yet is summed from the rows themselves (indexed by
`created_at`). So the page reads a few dozen rows however many payments there are, and its
numbers are the sums of the payment rows as of the last roll-up (at most one SWEEP_INTERVAL
old).

A payment counts on the day it was created, a refund on the day it was made; revenue is
what the payments that succeeded took. The checkout success rate is the share of payments
that reached an outcome (succeeded, failed or canceled) that succeeded.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta

from sqlalchemy import ColumnElement, case, delete, func, select

from payments_site.db import unit_of_work
from payments_site.extensions import db
from payments_site.models import (
    DailyTotal,
    OutboundEmail,
    Payment,
    Refund,
    WebhookEvent,
    utcnow,
)

log = logging.getLogger(__name__)

WINDOW_DAYS = 30
# Rows changed this long before the last roll-up are looked at again: a transaction that
# stamped `updated_at` before the roll-up read may have committed after it.
CHANGE_MARGIN = timedelta(minutes=5)
OPEN_DISPUTE_STATUSES = ("warning_needs_response", "needs_response", "under_review",
                         "warning_under_review")
LISTED = 5  # failed webhook events and emails shown by name


@dataclass(frozen=True)
class DayTotals:
    """One UTC day in one currency."""

    day: date
    currency: str
    payments: int = 0
    succeeded: int = 0
    failed: int = 0
    canceled: int = 0
    revenue: int = 0
    refunds: int = 0
    refunded: int = 0


@dataclass(frozen=True)
class CurrencySeries:
    """One currency's days, oldest first (every day of the window, zeros included)."""

    currency: str
    days: list[DayTotals]

    @property
    def payments(self) -> int:
        return sum(d.payments for d in self.days)

    @property
    def revenue(self) -> int:
        return sum(d.revenue for d in self.days)

    @property
    def refunded(self) -> int:
        return sum(d.refunded for d in self.days)

    @property
    def refunds(self) -> int:
        return sum(d.refunds for d in self.days)

    @property
    def peak(self) -> int:
        """The largest daily revenue or refund total (the chart's scale)."""
        return max([1, *(max(d.revenue, d.refunded) for d in self.days)])


@dataclass(frozen=True)
class Overview:
    today: date
    first_day: date
    series: list[CurrencySeries]
    today_totals: list[DayTotals]
    succeeded: int
    finished: int  # succeeded + failed + canceled
    open_disputes: list[Payment]
    failed_webhook_count: int
    failed_webhooks: list[WebhookEvent]
    failed_email_count: int
    failed_emails: list[OutboundEmail] = field(default_factory=list)

    @property
    def success_rate(self) -> float | None:
        return self.succeeded / self.finished if self.finished else None


def _day_start(day: date) -> datetime:
    return datetime.combine(day, time.min, tzinfo=UTC)


def sum_day(day: date) -> list[DayTotals]:
    """One day's totals per currency, summed from the payment and refund rows."""
    start, end = _day_start(day), _day_start(day + timedelta(days=1))
    payment_rows = db.session.execute(
        select(Payment.currency, func.count(),
               func.sum(case((Payment.status == "succeeded", 1), else_=0)),
               func.sum(case((Payment.status == "failed", 1), else_=0)),
               func.sum(case((Payment.status == "canceled", 1), else_=0)),
               func.sum(case((Payment.status == "succeeded", Payment.amount), else_=0)))
        .where(Payment.created_at >= start, Payment.created_at < end)
        .group_by(Payment.currency)).all()
    refund_rows = db.session.execute(
        select(Refund.currency, func.count(), func.sum(Refund.amount))
        .where(Refund.created_at >= start, Refund.created_at < end,
               Refund.status == "succeeded")
        .group_by(Refund.currency)).all()
    totals: dict[str, DayTotals] = {}
    for currency, count, succeeded, failed, canceled, revenue in payment_rows:
        totals[currency] = DayTotals(day, currency, int(count), int(succeeded or 0),
                                     int(failed or 0), int(canceled or 0), int(revenue or 0))
    for currency, count, amount in refund_rows:
        base = totals.get(currency, DayTotals(day, currency))
        totals[currency] = DayTotals(day, currency, base.payments, base.succeeded, base.failed,
                                     base.canceled, base.revenue, int(count), int(amount or 0))
    return sorted(totals.values(), key=lambda t: t.currency)


# --- the worker's roll-up ------------------------------------------------------------------

def days_to_roll_up(today: date) -> set[date]:
    """Today, and the days of the window that are missing or whose rows changed since the
    last roll-up."""
    first = today - timedelta(days=WINDOW_DAYS - 1)
    stored = set(db.session.scalars(select(DailyTotal.day).distinct()
                                    .where(DailyTotal.day >= first)))
    due = {first + timedelta(days=n) for n in range(WINDOW_DAYS)} - stored
    due.add(today)
    last_run = db.session.scalar(select(func.min(DailyTotal.computed_at))
                                 .where(DailyTotal.day >= first))
    if last_run is not None:
        since = last_run - CHANGE_MARGIN
        window_start = _day_start(first)
        for model in (Payment, Refund):
            changed = db.session.scalars(select(model.created_at).where(
                model.updated_at >= since, model.created_at >= window_start))
            due.update(when.astimezone(UTC).date() for when in changed)
    return {day for day in due if first <= day <= today}


def roll_up(now: datetime | None = None) -> int:
    """Rebuild the daily totals of every day that needs it; returns how many days."""
    today = (now or utcnow()).astimezone(UTC).date()
    days = sorted(days_to_roll_up(today))
    for day in days:
        totals = sum_day(day)
        with unit_of_work():
            db.session.execute(delete(DailyTotal).where(DailyTotal.day == day))
            computed_at = utcnow()
            # A day without payments still gets a row, so it is not summed again each time.
            db.session.add_all([DailyTotal(day=t.day, currency=t.currency, payments=t.payments,
                                           succeeded=t.succeeded, failed=t.failed,
                                           canceled=t.canceled, revenue=t.revenue,
                                           refunds=t.refunds, refunded=t.refunded,
                                           computed_at=computed_at)
                                for t in totals]
                               or [DailyTotal(day=day, currency="", payments=0, succeeded=0,
                                              failed=0, canceled=0, revenue=0, refunds=0,
                                              refunded=0, computed_at=computed_at)])
    if days:
        log.info("rolled up %d day(s) of totals", len(days))
    return len(days)


# --- the page --------------------------------------------------------------------------------

def _stored_days(first: date, today: date) -> dict[date, list[DayTotals]]:
    found: dict[date, list[DayTotals]] = {}
    for row in db.session.scalars(select(DailyTotal).where(DailyTotal.day >= first,
                                                           DailyTotal.day <= today)):
        totals = found.setdefault(row.day, [])
        if row.currency:
            totals.append(DayTotals(row.day, row.currency, row.payments, row.succeeded,
                                    row.failed, row.canceled, row.revenue, row.refunds,
                                    row.refunded))
    return found


def _series(days: list[date], totals: Iterable[DayTotals]) -> list[CurrencySeries]:
    by_currency: dict[str, dict[date, DayTotals]] = {}
    for total in totals:
        by_currency.setdefault(total.currency, {})[total.day] = total
    return [CurrencySeries(currency, [found.get(day, DayTotals(day, currency)) for day in days])
            for currency, found in sorted(by_currency.items())]


def overview(now: datetime | None = None) -> Overview:
    """Today and the 29 days before it (30 days), with what needs an operator's attention."""
    today = (now or utcnow()).astimezone(UTC).date()
    first = today - timedelta(days=WINDOW_DAYS - 1)
    days = [first + timedelta(days=n) for n in range(WINDOW_DAYS)]
    stored = _stored_days(first, today)
    totals: list[DayTotals] = []
    for day in days:
        totals.extend(stored[day] if day in stored else sum_day(day))
    today_totals = [t for t in totals if t.day == today]
    succeeded = sum(t.succeeded for t in totals)
    finished = succeeded + sum(t.failed + t.canceled for t in totals)
    disputes = list(db.session.scalars(
        select(Payment).where(Payment.stripe_dispute_id.is_not(None),
                              Payment.dispute_status.in_(OPEN_DISPUTE_STATUSES))
        .order_by(Payment.dispute_evidence_due_by.asc(), Payment.id).limit(50)))
    return Overview(
        today=today, first_day=first, series=_series(days, totals), today_totals=today_totals,
        succeeded=succeeded, finished=finished, open_disputes=disputes,
        failed_webhook_count=_count(WebhookEvent, WebhookEvent.status == "failed"),
        failed_webhooks=list(db.session.scalars(
            select(WebhookEvent).where(WebhookEvent.status == "failed")
            .order_by(WebhookEvent.id.desc()).limit(LISTED))),
        failed_email_count=_count(OutboundEmail, OutboundEmail.status == "failed"),
        failed_emails=list(db.session.scalars(
            select(OutboundEmail).where(OutboundEmail.status == "failed")
            .order_by(OutboundEmail.id.desc()).limit(LISTED))))


def _count(model: type[WebhookEvent] | type[OutboundEmail],
           *where: ColumnElement[bool]) -> int:
    return int(db.session.scalar(select(func.count()).select_from(model).where(*where)) or 0)
