"""Register, log in and log out pages."""

from __future__ import annotations

from flask import current_app, flash, redirect, render_template, request, session, url_for
from flask_login import current_user, login_required, login_user, logout_user
from werkzeug.wrappers import Response

from payments_site.blueprints import parsing
from payments_site.blueprints.parsing import LoginForm, NextPageQuery, RegisterForm
from payments_site.blueprints.site.blueprint import bp
from payments_site.errors import InvalidRequest
from payments_site.extensions import limiter
from payments_site.ratelimits import account_key, login_limit_per_account, login_limit_per_ip
from payments_site.security import safe_next
from payments_site.services import cart
from payments_site.services.accounts import authenticate, create_user

Page = tuple[str, int]


def _next_page() -> str:
    return safe_next(parsing.query(NextPageQuery).next, url_for("site.catalog"))


@bp.route("/auth/register", methods=["GET", "POST"])
@limiter.limit(login_limit_per_ip, methods=["POST"])
def register() -> Page | Response:
    """The sign-up form; on success the new customer is logged in and sent on."""
    form = RegisterForm()
    if form.validate_on_submit():
        try:
            user = create_user(form.email.data or "", form.password.data or "",
                               name=form.name.data or "")
        except InvalidRequest as error:
            field = getattr(form, error.param or "", None)
            if field is not None:
                field.errors = [*field.errors, error.message]
            else:
                flash(error.message, "error")
        else:
            login_user(user)
            cart.claim_cart(session, user.id)
            flash("Welcome! Your account is ready.", "success")
            return redirect(_next_page())
    status = 400 if form.is_submitted() else 200
    return render_template("auth/register.html", form=form), status


@bp.route("/auth/login", methods=["GET", "POST"])
@limiter.limit(login_limit_per_ip, methods=["POST"])
@limiter.limit(login_limit_per_account, key_func=account_key, methods=["POST"])
def login() -> Page | Response:
    """The login form; one generic message whether the email is unknown or the password wrong."""
    if current_user.is_authenticated and request.method == "GET":
        return redirect(_next_page())
    form = LoginForm()
    if form.validate_on_submit():
        user = authenticate(form.email.data or "", form.password.data or "")
        if user is not None:
            login_user(user)
            cart.claim_cart(session, user.id)
            return redirect(_next_page())
        current_app.logger.info("login refused")
        flash("Invalid email or password.", "error")
    status = 400 if form.is_submitted() else 200
    return render_template("auth/login.html", form=form), status


@bp.post("/auth/logout")
@login_required
def logout() -> Response:
    """Sign out; the cart goes too (the next person on this browser starts empty)."""
    logout_user()
    cart.clear_cart(session)
    flash("You are logged out.", "info")
    return redirect(url_for("site.catalog"))
