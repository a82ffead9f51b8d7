"""The admin home (/admin/): today and the last 30 days at a glance."""

from __future__ import annotations

from dataclasses import dataclass

from flask import render_template

from payments_site.blueprints.admin.blueprint import bp
from payments_site.money import format_money
from payments_site.services import overview
from payments_site.services.overview import CurrencySeries
from payments_site.templating import viewer_locale

# The chart's drawing area (SVG user units): the left margin holds the scale's labels.
WIDTH, HEIGHT, LEFT, RIGHT, TOP, BOTTOM = 720, 240, 96, 8, 12, 36
PLOT_W, PLOT_H = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM


@dataclass(frozen=True)
class Bar:
    x: str
    y: str
    height: str
    title: str


@dataclass(frozen=True)
class Chart:
    """One currency's bars and labels, placed here so the template only prints them."""

    series: CurrencySeries
    peak: str
    bar_width: str
    revenue: list[Bar]
    refunds: list[Bar]
    ticks: list[tuple[str, str]]  # (x, label)


def chart_of(series: CurrencySeries, locale: str) -> Chart:
    slot = PLOT_W / len(series.days)
    width = max(slot * 0.38, 1.0)
    peak = series.peak
    revenue, refunds, ticks = [], [], []
    last = len(series.days) - 1
    for index, day in enumerate(series.days):
        x = LEFT + slot * index + slot * 0.1
        if day.revenue:
            height = PLOT_H * day.revenue / peak
            revenue.append(Bar(f"{x:.1f}", f"{TOP + PLOT_H - height:.1f}", f"{height:.1f}",
                               f"{day.day.isoformat()}: revenue "
                               f"{format_money(day.revenue, series.currency, locale)} "
                               f"({day.succeeded} paid)"))
        if day.refunded:
            height = PLOT_H * day.refunded / peak
            refunds.append(Bar(f"{x + width:.1f}", f"{TOP + PLOT_H - height:.1f}",
                               f"{height:.1f}", f"{day.day.isoformat()}: refunds "
                               f"{format_money(day.refunded, series.currency, locale)}"))
        if index == last or (index % 7 == 0 and last - index > 3):
            ticks.append((f"{LEFT + slot * index + slot / 2:.1f}",
                          f"{day.day.strftime('%b')} {day.day.day}"))
    return Chart(series, format_money(peak, series.currency, locale), f"{width:.1f}",
                 revenue, refunds, ticks)


@bp.get("/")
def index() -> str:
    """Payments, revenue and refunds per day and currency (a chart and its table), the
    checkout success rate, open disputes, and the webhook events and emails that failed."""
    locale = viewer_locale()
    found = overview.overview()
    return render_template("admin/overview.html", overview=found, locale=locale,
                           charts={s.currency: chart_of(s, locale) for s in found.series},
                           size={"width": WIDTH, "height": HEIGHT, "left": LEFT,
                                 "right": RIGHT, "top": TOP, "plot_h": PLOT_H})
