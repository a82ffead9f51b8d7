"""The shop: the public catalog, the cart, the checkout page and the page Stripe returns to."""

from __future__ import annotations

from flask import Blueprint, flash, redirect, render_template, request, session, url_for
from flask_login import current_user, login_required

from payments_site.errors import InvalidRequest, NotFound
from payments_site.services import checkout, methods
from payments_site.services.catalog import active_products

bp = Blueprint("shop", __name__)


@bp.get("/")
def catalog():  # type: ignore[no-untyped-def]
    """The catalog (public), with add-to-cart buttons."""
    return render_template("shop/catalog.html", products=active_products(),
                           cart=checkout.session_cart(session))


def _product_id() -> int:
    raw = (request.form.get("product_id") or "").strip()
    if not raw.isdigit():
        raise NotFound("No such product.")
    return int(raw)


@bp.post("/cart/add")
def cart_add():  # type: ignore[no-untyped-def]
    """Add a product to the session cart; back to the catalog (or on to checkout)."""
    try:
        product = checkout.add_to_cart(session, _product_id(),
                                       checkout.parse_form_quantity(request.form.get("quantity")))
    except InvalidRequest as error:
        flash(error.message, "error")
        return redirect(url_for("shop.catalog"))
    flash(f"Added {product.name} to your cart.", "success")
    target = "shop.checkout" if request.form.get("next") == "checkout" else "shop.catalog"
    return redirect(url_for(target))


@bp.post("/cart/update")
def cart_update():  # type: ignore[no-untyped-def]
    """Change a line's quantity (0 or the remove button removes it)."""
    product_id = _product_id()
    if request.form.get("action") == "remove":
        checkout.set_cart_quantity(session, product_id, 0)
    else:
        try:
            quantity = checkout.parse_form_quantity(request.form.get("quantity"),
                                                    allow_zero=True)
        except InvalidRequest as error:
            flash(error.message, "error")
        else:
            checkout.set_cart_quantity(session, product_id, quantity)
    return redirect(url_for("shop.checkout"))


@bp.get("/checkout", endpoint="checkout")
@login_required
def checkout_page():  # type: ignore[no-untyped-def]
    """The cart, its server-computed total, saved cards and Stripe's Payment Element."""
    summary = checkout.checkout_summary(session)
    return render_template("shop/checkout.html", **summary,
                           cards=methods.list_methods(current_user),
                           checkout_token=checkout.checkout_token(session))


@bp.get("/checkout/complete")
@login_required
def checkout_complete():  # type: ignore[no-untyped-def]
    """Stripe's return_url: the payment's outcome as Stripe reports it now."""
    payment = checkout.complete_checkout(current_user, request.args.get("payment"),
                                         request.args.get("payment_intent"))
    checkout.finish_checkout(session, payment)
    return render_template("shop/checkout_complete.html", payment=payment)
