"""Sign-up, log in, log out, a forgotten password, and the links emailed to confirm addresses."""

from __future__ import annotations

from flask import current_app, flash, redirect, render_template, request, session, url_for
from flask_login import current_user, login_required, login_user, logout_user
from werkzeug.wrappers import Response

from payments_site import ratelimits
from payments_site.blueprints import parsing
from payments_site.blueprints.parsing import (
    ConfirmForm,
    ForgotPasswordForm,
    LoginForm,
    NextPageQuery,
    RegisterForm,
    ResetPasswordForm,
)
from payments_site.blueprints.site.blueprint import bp
from payments_site.errors import InvalidRequest
from payments_site.extensions import limiter
from payments_site.models import User
from payments_site.ratelimits import account_key, login_limit_per_ip, login_limits
from payments_site.security import safe_next
from payments_site.services import accounts, cart

Page = tuple[str, int]
# An address may ask for this many reset emails (and a client address for the login budget).
RESET_LIMIT_PER_ACCOUNT = "5 per hour"


def _next_page() -> str:
    return safe_next(parsing.query(NextPageQuery).next, url_for("site.catalog"))


def sign_in(user: User) -> None:
    """Log `user` in on a fresh session: nothing of the session before survives but the
    cart, so a new CSRF token is made and a cookie someone saw earlier proves nothing."""
    kept = {key: session[key] for key in (cart.CART_KEY, cart.OWNER_KEY, cart.RESUME_KEY)
            if key in session}
    session.clear()
    session.update(kept)
    session.permanent = True  # expires after SESSION_LIFETIME without a request
    login_user(user)
    cart.claim_cart(session, user.id)


def _show_error(form: object, error: InvalidRequest) -> None:
    field = getattr(form, error.param or "", None)
    if field is not None and hasattr(field, "errors"):
        field.errors = [*field.errors, error.message]
    else:
        flash(error.message, "error")


@bp.route("/auth/register", methods=["GET", "POST"])
@limiter.limit(login_limit_per_ip, methods=["POST"])
def register() -> Page | Response:
    """The sign-up form. A valid form always answers the same (check your inbox, then log
    in), whether the address was new or already had an account."""
    form = RegisterForm()
    if form.validate_on_submit():
        try:
            accounts.register(form.email.data or "", form.password.data or "",
                              name=form.name.data or "")
        except InvalidRequest as error:
            _show_error(form, error)
        else:
            flash("Thank you! We sent a message to your address: open its link to confirm "
                  "it. You can log in now.", "success")
            return redirect(url_for("site.login", next=parsing.query(NextPageQuery).next))
    status = 400 if form.is_submitted() else 200
    return render_template("auth/register.html", form=form), status


@bp.route("/auth/login", methods=["GET", "POST"])
@login_limits
def login() -> Page | Response:
    """The login form; one generic message whether the email is unknown or the password wrong."""
    if current_user.is_authenticated and request.method == "GET":
        return redirect(_next_page())
    form = LoginForm()
    if form.validate_on_submit():
        user = accounts.authenticate(form.email.data or "", form.password.data or "")
        if user is not None:
            sign_in(user)
            response = redirect(_next_page())
            ratelimits.remember_login_place(user.email, response)
            return response
        current_app.logger.info("login refused")
        flash("Invalid email or password.", "error")
    status = 400 if form.is_submitted() else 200
    return render_template("auth/login.html", form=form), status


@bp.post("/auth/logout")
@login_required
def logout() -> Response:
    """Sign out: this session, and every other session and Bearer token of the account,
    end now; the cart goes too (the next person on this browser starts empty)."""
    accounts.revoke_credentials(current_user._get_current_object())
    logout_user()
    session.clear()
    flash("You are logged out.", "info")
    return redirect(url_for("site.catalog"))


@bp.route("/auth/forgot", methods=["GET", "POST"])
@limiter.limit(login_limit_per_ip, methods=["POST"])
@limiter.limit(RESET_LIMIT_PER_ACCOUNT, key_func=account_key, methods=["POST"])
def forgot_password() -> Page | Response:
    """Ask for a reset link. The answer is the same whether the address has an account:
    either way one email goes to it (a link, or a note that no account uses it)."""
    form = ForgotPasswordForm()
    if form.validate_on_submit():
        try:
            accounts.request_password_reset(form.email.data or "")
        except InvalidRequest as error:
            _show_error(form, error)
        else:
            return render_template("auth/forgot_sent.html"), 200
    status = 400 if form.is_submitted() else 200
    return render_template("auth/forgot.html", form=form), status


def _link_problem(error: InvalidRequest) -> Page:
    return render_template("auth/link_invalid.html", message=error.message), 400


@bp.route("/auth/reset/<token>", methods=["GET", "POST"])
@limiter.limit(login_limit_per_ip, methods=["POST"])
def reset_password(token: str) -> Page | Response:
    """Choose a new password from an emailed link (an hour, once); then signed in, and every
    other session and token of the account ended."""
    try:
        user = accounts.user_for_reset(token)
    except InvalidRequest as error:
        return _link_problem(error)
    form = ResetPasswordForm()
    if form.validate_on_submit():
        try:
            user = accounts.reset_password(token, form.password.data or "")
        except accounts.LinkInvalid as error:
            return _link_problem(error)
        except InvalidRequest as error:
            _show_error(form, error)
        else:
            sign_in(user)
            flash("Your password is changed and you are signed in. Every other device was "
                  "signed out.", "success")
            return redirect(url_for("site.settings"))
    status = 400 if form.is_submitted() else 200
    return render_template("auth/reset.html", form=form, email=user.email), status


@bp.route("/auth/confirm/<token>", methods=["GET", "POST"])
def confirm_email(token: str) -> Page | Response:
    """Confirm an address from the link sent at sign-up (a button, so a mail scanner that
    opens links confirms nothing)."""
    form = ConfirmForm()
    if form.validate_on_submit():
        try:
            accounts.confirm_email(token)
        except InvalidRequest as error:
            return _link_problem(error)
        flash("Thank you, your email address is confirmed.", "success")
        return redirect(url_for("site.settings" if current_user.is_authenticated
                                else "site.login"))
    if form.is_submitted():
        return render_template("auth/confirm.html", form=form, action="confirm"), 400
    return render_template("auth/confirm.html", form=form, action="confirm"), 200


@bp.route("/auth/change-email/<token>", methods=["GET", "POST"])
def change_email(token: str) -> Page | Response:
    """Move the account to a new address from the link sent to it; every session and token
    made before ends (a browser signed in to that account stays signed in)."""
    try:
        change = accounts.email_change_for(token)
    except InvalidRequest as error:
        return _link_problem(error)
    form = ConfirmForm()
    if form.validate_on_submit():
        mine = current_user.is_authenticated and current_user.id == change.user.id
        try:
            user = accounts.confirm_email_change(token)
        except InvalidRequest as error:
            return _link_problem(error)
        if mine:
            sign_in(user)
        flash(f"Your email address is now {user.email}.", "success")
        return redirect(url_for("site.settings" if mine else "site.login"))
    status = 400 if form.is_submitted() else 200
    return render_template("auth/confirm.html", form=form, action="change",
                           new_email=change.new_email), status
