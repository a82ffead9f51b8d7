"""The account's settings: name, password, email address, and signing out everywhere."""

from __future__ import annotations

from typing import Any

from flask import flash, redirect, render_template, session, url_for
from flask_login import current_user, login_required, logout_user
from flask_wtf import FlaskForm
from werkzeug.wrappers import Response

from payments_site.blueprints.parsing import (
    ConfirmForm,
    EmailChangeForm,
    NameForm,
    PasswordChangeForm,
)
from payments_site.blueprints.site.auth import sign_in
from payments_site.blueprints.site.blueprint import bp
from payments_site.errors import InvalidRequest
from payments_site.extensions import limiter
from payments_site.models import User
from payments_site.ratelimits import login_limit_per_account_ip, user_key
from payments_site.services import accounts

Page = tuple[str, int]


def _user() -> User:
    user: User = current_user._get_current_object()
    return user


def _page(status: int = 200, **forms: FlaskForm) -> Page:
    user = _user()
    defaults: dict[str, Any] = {
        "name_form": NameForm(formdata=None, name=user.name),
        "password_form": PasswordChangeForm(formdata=None),
        "email_form": EmailChangeForm(formdata=None),
        "everywhere_form": ConfirmForm(formdata=None),
    }
    defaults.update(forms)
    return render_template("account/settings.html", **defaults), status


def _refused(form: FlaskForm, error: InvalidRequest) -> None:
    field = getattr(form, error.param or "", None)
    if field is not None and hasattr(field, "errors"):
        field.errors = [*field.errors, error.message]
    else:
        flash(error.message, "error")


@bp.get("/account/settings")
@login_required
def settings() -> Page:
    """The settings page: one form per change."""
    return _page()


@bp.post("/account/settings/name")
@login_required
def change_name() -> Page | Response:
    form = NameForm()
    if form.validate_on_submit():
        try:
            accounts.change_name(_user(), form.name.data or "")
        except InvalidRequest as error:
            _refused(form, error)
        else:
            flash("Your name is saved.", "success")
            return redirect(url_for("site.settings"))
    return _page(400, name_form=form)


@bp.post("/account/settings/password")
@login_required
@limiter.limit(login_limit_per_account_ip, key_func=user_key)
def change_password() -> Page | Response:
    """A new password (the current one required); every other session and token ends."""
    form = PasswordChangeForm()
    if form.validate_on_submit():
        try:
            accounts.change_password(_user(), form.current_password.data or "",
                                     form.password.data or "")
        except InvalidRequest as error:
            _refused(form, error)
        else:
            sign_in(_user())
            flash("Your password is changed. Every other device and app was signed out.",
                  "success")
            return redirect(url_for("site.settings"))
    return _page(400, password_form=form)


@bp.post("/account/settings/email")
@login_required
@limiter.limit(login_limit_per_account_ip, key_func=user_key)
def change_email_request() -> Page | Response:
    """Send a confirmation link to the new address; the current one is told. The address
    changes when the link is opened."""
    form = EmailChangeForm()
    if form.validate_on_submit():
        try:
            address = accounts.request_email_change(_user(), form.current_password.data or "",
                                                    form.email.data or "")
        except InvalidRequest as error:
            _refused(form, error)
        else:
            flash(f"We sent a link to {address}. Your address changes when you open it; "
                  "until then it stays the same.", "success")
            return redirect(url_for("site.settings"))
    return _page(400, email_form=form)


@bp.post("/account/settings/sign-out-everywhere")
@login_required
def sign_out_everywhere() -> Page | Response:
    """End every session and Bearer token of the account, this browser's too."""
    form = ConfirmForm()
    if not form.validate_on_submit():
        return _page(400)
    accounts.revoke_credentials(_user())
    logout_user()
    session.clear()
    flash("You are signed out on every device and app. Log in again to continue.", "info")
    return redirect(url_for("site.login"))


@bp.post("/account/settings/confirmation")
@login_required
@limiter.limit("5 per hour", key_func=user_key)
def resend_confirmation() -> Response:
    """Send the link confirming the account's address again."""
    form = ConfirmForm()
    user = _user()
    if form.validate_on_submit() and not user.email_verified:
        accounts.send_confirmation(user)
        flash(f"We sent a new link to {user.email}.", "success")
    return redirect(url_for("site.settings"))
