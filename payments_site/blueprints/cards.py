"""The customer's saved cards page: list, add (Stripe Payment Element), make default, remove."""

from __future__ import annotations

from flask import Blueprint, flash, redirect, render_template, request, url_for
from flask_login import current_user, login_required

from payments_site.errors import DomainError
from payments_site.models import PaymentMethod
from payments_site.services import methods

bp = Blueprint("cards", __name__, url_prefix="/account/cards")


def _card_label(method: PaymentMethod) -> str:
    return f"{method.brand.title()} ending {method.last4}"


@bp.get("")
@login_required
def index():
    """The cards page. Also Stripe's `return_url` after a redirect-based setup (3-D Secure):
    then the SetupIntent in the query is saved and the page reloads without it."""
    setup_intent_id = request.args.get("setup_intent")
    if setup_intent_id:
        try:
            method = methods.save_from_setup_intent(current_user, setup_intent_id)
        except DomainError as error:
            flash(error.message, "error")
        else:
            flash(f"{_card_label(method)} is saved.", "success")
        return redirect(url_for("cards.index"))
    cards = [(m, methods.expiry_status(m)) for m in methods.list_methods(current_user)]
    saved = request.args.get("saved")
    return render_template("account/cards.html", cards=cards, saved=saved)


@bp.post("/<pm_id>/default")
@login_required
def make_default(pm_id: str):
    """Make a card the default; 404 when it is not the caller's."""
    try:
        method = methods.set_default(current_user, pm_id)
    except DomainError as error:
        if error.status == 404:
            raise
        flash(error.message, "error")
    else:
        flash(f"{_card_label(method)} is now your default card.", "success")
    return redirect(url_for("cards.index"))


@bp.get("/<pm_id>/remove")
@login_required
def confirm_remove(pm_id: str):
    """The confirmation step before removing a card (also the no-script fallback)."""
    method = methods.get_owned_method(current_user, pm_id)
    return render_template("account/card_remove.html", method=method,
                           label=_card_label(method))


@bp.post("/<pm_id>/remove")
@login_required
def remove(pm_id: str):
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
    return redirect(url_for("cards.index"))
