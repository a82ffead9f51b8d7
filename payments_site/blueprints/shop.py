"""The shop: the public catalog, the checkout page and the page Stripe returns to."""

from __future__ import annotations

from flask import Blueprint, render_template

from payments_site.services.catalog import active_products

bp = Blueprint("shop", __name__)


@bp.get("/")
def catalog():  # type: ignore[no-untyped-def]
    """The catalog (public)."""
    return render_template("shop/catalog.html", products=active_products())
