"""Admin pages: every payment, one payment's timeline and the refund form."""

from __future__ import annotations

import secrets
from typing import Any

from flask import flash, redirect, render_template, url_for
from flask_login import current_user
from werkzeug.wrappers import Response

from payments_site.blueprints import parsing
from payments_site.blueprints.admin.blueprint import bp
from payments_site.blueprints.api.schemas import Refund
from payments_site.blueprints.parsing import REFUND_REASON_CHOICES, RefundForm
from payments_site.errors import DomainError
from payments_site.models import PAYMENT_STATUSES, Payment
from payments_site.money import format_money, to_major_string
from payments_site.services import admin_payments, refunds, timeline
from payments_site.services.admin_payments import DEFAULT_PAGE_SIZE, PaymentFilters
from payments_site.services.idempotency import run_idempotent
from payments_site.templating import viewer_locale

Page = str | tuple[str, int]


@bp.get("/payments")
def payments() -> Page:
    """Every payment, newest first, filtered by search text, status and dates; keyset pages."""
    try:
        search = parsing.query(parsing.AdminPaymentsQuery)
        page = admin_payments.search_payments(search.filters(), after=search.after,
                                              before=search.before)
    except DomainError as error:
        flash(error.message, "error")
        return render_template("admin/payments.html", filters=parsing.query_args(), page=None,
                               statuses=_status_choices(), link_args={}), 400
    return render_template("admin/payments.html", filters=parsing.query_args(), page=page,
                           statuses=_status_choices(), link_args=_link_args(search.filters()))


@bp.get("/payments/<public_id>")
def payment_detail(public_id: str) -> Page:
    """One payment: its facts, refunds, timeline and the refund form; 404 if unknown."""
    payment = refunds.get_payment(public_id)
    form = RefundForm(formdata=None)
    remaining = refunds.refundable_amount(payment)
    if remaining > 0:
        form.amount.data = to_major_string(remaining, payment.currency)
    return _render_detail(payment, form)


@bp.post("/payments/<public_id>/refund")
def refund(public_id: str) -> Page | Response:
    """Two steps: the first submit asks "Refund X to customer Y?", the confirmed one refunds."""
    payment = refunds.get_payment(public_id)
    form = RefundForm()
    if not form.validate_on_submit():
        return _render_detail(payment, form, status=400)
    amount = form.minor_units(payment.currency)
    if amount is None:
        return _render_detail(payment, form, status=400)
    reason = form.refund_reason()
    try:
        refunds.validate_refund_request(payment, amount, reason)
    except DomainError as error:
        _field_error(form, error)
        return _render_detail(payment, form, status=400)

    if form.confirm.data != "yes":
        form.amount.data = to_major_string(amount, payment.currency)
        form.form_key.data = secrets.token_urlsafe(24)
        form.confirm.data = "yes"
        return _render_detail(payment, form, confirm_amount=amount)

    def request_refund() -> tuple[dict[str, Any], int]:
        try:
            made = refunds.request_refund(payment.public_id, amount, reason, actor=current_user,
                                          request_key=form.form_key.data or None)
        except DomainError as error:
            return error.to_dict(), error.status
        return {"refund": Refund.of(made).dump()}, 202

    try:
        body, status = run_idempotent(
            "admin_refund_form", current_user.id, form.form_key.data or None,
            {"payment_id": payment.public_id, "amount": amount, "reason": reason},
            request_refund)
    except DomainError as error:  # the same form still running, or sent with other values
        body, status = error.to_dict(), error.status
    money = format_money(amount, payment.currency, viewer_locale())
    if status == 202:
        flash(f"Refund of {money} to {payment.user.email} requested "
              f"({body['refund']['id']}). It shows as succeeded once Stripe confirms it.",
              "success")
    else:
        flash(f"The refund of {money} was not made: {body['error']['message']}", "error")
    return redirect(url_for("admin.payment_detail", public_id=payment.public_id))


def _render_detail(payment: Payment, form: RefundForm, *, confirm_amount: int | None = None,
                   status: int = 200) -> tuple[str, int]:
    return render_template(
        "admin/payment_detail.html", payment=payment, form=form,
        refundable=refunds.refundable_amount(payment),
        refunds=list(payment.refunds),
        timeline=timeline.payment_timeline(payment),
        confirm_amount=confirm_amount,
        reason_labels=dict(REFUND_REASON_CHOICES)), status


def _field_error(form: RefundForm, error: DomainError) -> None:
    target = {"amount": form.amount, "reason": form.reason}.get(error.param or "")
    if target is not None:
        target.errors = [error.message]
    else:
        flash(error.message, "error")


def _link_args(filters: PaymentFilters) -> dict[str, str]:
    """The filters as query-string arguments, for the paging links."""
    args = {"q": filters.query, "status": filters.status,
            "from": filters.date_from.isoformat() if filters.date_from else "",
            "to": filters.date_to.isoformat() if filters.date_to else ""}
    if filters.limit != DEFAULT_PAGE_SIZE:
        args["limit"] = str(filters.limit)
    return {k: v for k, v in args.items() if v}


def _status_choices() -> list[tuple[str, str]]:
    return ([("", "Any status")]
            + [(s, s.replace("_", " ").capitalize()) for s in PAYMENT_STATUSES]
            + [("disputed", "Disputed"), ("refunded", "Refunded (any)")])
