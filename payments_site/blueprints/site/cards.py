"""The customer's saved cards page: list, add (Stripe Payment Element), make default, remove."""

from __future__ import annotations

from flask import flash, redirect, render_template, url_for
from flask_login import current_user, login_required
from werkzeug.wrappers import Response

from payments_site.blueprints import parsing
from payments_site.blueprints.site.blueprint import bp
from payments_site.errors import DomainError
from payments_site.models import PaymentMethod
from payments_site.services import methods


def _card_label(method: PaymentMethod) -> str:
    return f"{method.brand.title()} ending {method.last4}"


@bp.get("/account/cards")
@login_required
def cards() -> str | Response:
    """The cards page. Also Stripe's `return_url` after a redirect-based setup (3-D Secure):
    then the SetupIntent in the query is saved and the page reloads without it."""
    asked = parsing.query(parsing.CardsPageQuery)
    if asked.setup_intent:
        try:
            method = methods.save_from_setup_intent(current_user, asked.setup_intent)
        except DomainError as error:
            flash(error.message, "error")
        else:
            flash(f"{_card_label(method)} is saved.", "success")
        return redirect(url_for("site.cards"))
    listed = [(m, methods.expiry_status(m)) for m in methods.list_methods(current_user)]
    return render_template("account/cards.html", cards=listed, saved=asked.saved)


@bp.post("/account/cards/<pm_id>/default")
@login_required
def make_card_default(pm_id: str) -> Response:
    """Make a card the default; 404 when it is not the caller's."""
    try:
        method = methods.set_default(current_user, pm_id)
    except DomainError as error:
        if error.status == 404:
            raise
        flash(error.message, "error")
    else:
        flash(f"{_card_label(method)} is now your default card.", "success")
    return redirect(url_for("site.cards"))


@bp.get("/account/cards/<pm_id>/remove")
@login_required
def confirm_remove_card(pm_id: str) -> str:
    """The confirmation step before removing a card (also the no-script fallback)."""
    method = methods.get_owned_method(current_user, pm_id)
    return render_template("account/card_remove.html", method=method,
                           label=_card_label(method))


@bp.post("/account/cards/<pm_id>/remove")
@login_required
def remove_card(pm_id: str) -> Response:
    """Remove a card after confirmation; 404 when it is not the caller's."""
    method = methods.get_owned_method(current_user, pm_id)
    label = _card_label(method)
    try:
        methods.remove_method(current_user, pm_id)
    except DomainError as error:
        if error.status == 404:
            raise
        flash(error.message, "error")
    else:
        flash(f"{label} was removed.", "success")
    return redirect(url_for("site.cards"))
