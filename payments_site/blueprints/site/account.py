"""Customer account pages: payment history and a payment's detail."""

from __future__ import annotations

from flask import render_template
from flask_login import current_user, login_required

from payments_site.blueprints import parsing
from payments_site.blueprints.site.blueprint import bp
from payments_site.customer_status import HISTORY_FILTERS
from payments_site.services import payments, timeline

PAGE_SIZE = 20


@bp.get("/account/payments", endpoint="payments")
@login_required
def payments_page() -> str:
    """The customer's payments, newest first, filterable by status, paged by cursor.

    `?status=` takes the filter's values (`not_completed` covers both unfinished statuses)
    or any API status; anything else is a 400.
    """
    asked = parsing.query(parsing.AccountPaymentsQuery)
    page = payments.payment_history(current_user, limit=PAGE_SIZE, cursor=asked.cursor,
                                    status=asked.statuses(), hide_canceled=True)
    return render_template("account/payments.html", page=page, status=asked.status,
                           filters=HISTORY_FILTERS, first_page=asked.cursor is None)


@bp.get("/account/payments/<payment_id>")
@login_required
def payment_detail(payment_id: str) -> str:
    """One of the customer's payments; someone else's is a 404."""
    payment = payments.get_own_payment(current_user, payment_id)
    return render_template("account/payment_detail.html", payment=payment,
                           timeline=timeline.customer_timeline(payment))
