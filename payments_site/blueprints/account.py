"""Customer account pages: payment history and a payment's detail."""

from __future__ import annotations

from flask import Blueprint, render_template, request
from flask_login import current_user, login_required

from payments_site.customer_status import HISTORY_FILTERS
from payments_site.errors import InvalidRequest
from payments_site.models import PAYMENT_STATUSES
from payments_site.services import payments, timeline

bp = Blueprint("account", __name__, url_prefix="/account")

PAGE_SIZE = 20


@bp.get("/payments", endpoint="payments")
@login_required
def payments_page():
    """The customer's payments, newest first, filterable by status, paged by cursor.

    `?status=` takes the filter's values (`not_completed` covers both unfinished statuses)
    or any API status; anything else is a 400.
    """
    status = request.args.get("status") or None
    cursor = request.args.get("cursor") or None
    chosen = next((f for f in HISTORY_FILTERS if f.value == status), None)
    if status and chosen is None and status not in PAYMENT_STATUSES:
        raise InvalidRequest("There is no such status to show: pick one from the list.",
                             param="status")
    _, cursor, api_status = payments.parse_history_query(None, cursor,
                                                         None if chosen else status)
    page = payments.payment_history(current_user, limit=PAGE_SIZE, cursor=cursor,
                                    status=chosen.statuses if chosen else api_status,
                                    hide_canceled=True)
    return render_template("account/payments.html", page=page, status=status,
                           filters=HISTORY_FILTERS, first_page=cursor is None)


@bp.get("/payments/<payment_id>")
@login_required
def payment_detail(payment_id: str):
    """One of the customer's payments; someone else's is a 404."""
    payment = payments.get_own_payment(current_user, payment_id)
    return render_template("account/payment_detail.html", payment=payment,
                           timeline=timeline.customer_timeline(payment))
