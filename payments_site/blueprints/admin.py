"""Admin pages: every payment, its timeline and the refund form; emails that failed."""

from __future__ import annotations

import secrets
from typing import Any

from flask import Blueprint, flash, redirect, render_template, request, url_for
from flask_login import current_user
from flask_wtf import FlaskForm
from wtforms import HiddenField, SelectField, StringField
from wtforms.validators import DataRequired, Length

from payments_site.errors import DomainError, Forbidden
from payments_site.extensions import login_manager
from payments_site.models import PAYMENT_STATUSES, Payment
from payments_site.money import InvalidAmount, format_money, parse_major_amount, to_major_string
from payments_site.serializers import refund_to_dict
from payments_site.services import admin_payments, emails, refunds, timeline
from payments_site.services.idempotency import run_idempotent
from payments_site.templating import viewer_locale

bp = Blueprint("admin", __name__, url_prefix="/admin")

REASON_CHOICES = [("", "Choose a reason…"),
                  ("requested_by_customer", "Requested by the customer"),
                  ("duplicate", "Duplicate payment"),
                  ("fraudulent", "Fraudulent payment")]


class RefundForm(FlaskForm):
    amount = StringField("Amount to refund", validators=[
        DataRequired("Enter the amount to refund."), Length(max=32)])
    reason = SelectField("Reason", choices=REASON_CHOICES,
                         validators=[DataRequired("Choose a reason for the refund.")])
    # "yes" only on the confirmation step's form; form_key makes a double click harmless.
    confirm = HiddenField()
    form_key = HiddenField(validators=[Length(max=64)])


@bp.before_request
def admins_only() -> Any:
    """Anonymous visitors go to the login page; customers get 403."""
    if not current_user.is_authenticated:
        return login_manager.unauthorized()
    if not current_user.is_admin:
        raise Forbidden("This area is for administrators.")
    return None


@bp.get("/")
def index():
    return redirect(url_for("admin.payments"))


@bp.get("/payments")
def payments():
    """Every payment, newest first, filtered by search text, status and dates; keyset pages."""
    args = {k: v for k, v in request.args.items()}
    try:
        filters = admin_payments.parse_filters(args)
        page = admin_payments.search_payments(filters, after=args.get("after") or None,
                                              before=args.get("before") or None)
    except DomainError as error:
        flash(error.message, "error")
        return render_template("admin/payments.html", filters=args, page=None,
                               statuses=_status_choices(), link_args={}), 400
    return render_template("admin/payments.html", filters=args, page=page,
                           statuses=_status_choices(), link_args=filters.as_args())


@bp.get("/payments/<public_id>")
def payment_detail(public_id: str):
    """One payment: its facts, refunds, timeline and the refund form; 404 if unknown."""
    payment = refunds.get_payment(public_id, param="id")
    form = RefundForm(formdata=None)
    remaining = refunds.refundable_amount(payment)
    if remaining > 0:
        form.amount.data = to_major_string(remaining, payment.currency)
    return _render_detail(payment, form)


@bp.post("/payments/<public_id>/refund")
def refund(public_id: str):
    """Two steps: the first submit asks "Refund X to customer Y?", the confirmed one refunds."""
    payment = refunds.get_payment(public_id, param="id")
    form = RefundForm()
    if not form.validate_on_submit():
        return _render_detail(payment, form, status=400)
    try:
        amount = parse_major_amount(form.amount.data or "", payment.currency)
        refunds.validate_refund_request(payment, amount, form.reason.data)
    except InvalidAmount as error:
        form.amount.errors = [str(error)]
        return _render_detail(payment, form, status=400)
    except DomainError as error:
        _field_error(form, error)
        return _render_detail(payment, form, status=400)

    if form.confirm.data != "yes":
        form.amount.data = to_major_string(amount, payment.currency)
        form.form_key.data = secrets.token_urlsafe(24)
        form.confirm.data = "yes"
        return _render_detail(payment, form, confirm_amount=amount)

    reason = form.reason.data
    try:
        body, status = run_idempotent(
            "admin_refund_form", current_user.id, form.form_key.data or None,
            {"payment_id": payment.public_id, "amount": amount, "reason": reason},
            lambda: ({"refund": refund_to_dict(refunds.request_refund(
                payment.public_id, amount, reason, actor=current_user))}, 202))
    except DomainError as error:
        body, status = error.to_dict(), error.status
    money = format_money(amount, payment.currency, viewer_locale())
    if status == 202:
        flash(f"Refund of {money} to {payment.user.email} requested "
              f"({body['refund']['id']}). It shows as succeeded once Stripe confirms it.",
              "success")
    else:
        flash(f"The refund of {money} was not made: {body['error']['message']}", "error")
    return redirect(url_for("admin.payment_detail", public_id=payment.public_id))


@bp.get("/emails")
def failed_emails():
    """Emails that gave up after their last attempt, newest first, each with a Retry button."""
    return render_template("admin/emails.html", failed=admin_payments.failed_emails())


@bp.post("/emails/<int:email_id>/retry")
def retry_email(email_id: int):
    """Queue a failed email again with fresh attempts (audit-logged); 404 for an unknown id."""
    if emails.retry_failed_email(email_id, actor=current_user):
        flash(f"Email #{email_id} is queued to be sent again.", "success")
    else:
        flash(f"Email #{email_id} is not failed any more (it was retried already).", "warning")
    return redirect(url_for("admin.failed_emails"))


def _render_detail(payment: Payment, form: RefundForm, *, confirm_amount: int | None = None,
                   status: int = 200) -> Any:
    return render_template(
        "admin/payment_detail.html", payment=payment, form=form,
        refundable=refunds.refundable_amount(payment),
        refunds=list(payment.refunds),
        timeline=timeline.payment_timeline(payment),
        confirm_amount=confirm_amount,
        reason_labels=dict(REASON_CHOICES)), status


def _field_error(form: RefundForm, error: DomainError) -> None:
    target = {"amount": form.amount, "reason": form.reason}.get(error.param or "")
    if target is not None:
        target.errors = [error.message]
    else:
        flash(error.message, "error")


def _status_choices() -> list[tuple[str, str]]:
    return ([("", "Any status")]
            + [(s, s.replace("_", " ").capitalize()) for s in PAYMENT_STATUSES]
            + [("disputed", "Disputed"), ("refunded", "Refunded (any)")])
