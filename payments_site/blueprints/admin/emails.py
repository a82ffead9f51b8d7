"""Admin page of the emails that gave up, each with a Retry button."""

from __future__ import annotations

from flask import flash, redirect, render_template, url_for
from flask_login import current_user
from werkzeug.wrappers import Response

from payments_site.blueprints.admin.blueprint import bp
from payments_site.services import admin_payments, emails


@bp.get("/emails")
def failed_emails() -> str:
    """Emails that gave up after their last attempt, newest first, each with a Retry button."""
    return render_template("admin/emails.html", failed=admin_payments.failed_emails())


@bp.post("/emails/<id:email_id>/retry")
def retry_email(email_id: int) -> Response:
    """Queue a failed email again with fresh attempts (audit-logged); 404 for an unknown id."""
    if emails.retry_failed_email(email_id, actor=current_user):
        flash(f"Email #{email_id} is queued to be sent again.", "success")
    else:
        flash(f"Email #{email_id} is not failed any more (it was retried already).", "warning")
    return redirect(url_for("admin.failed_emails"))
