"""The shop: the public catalog, the cart, the checkout page and the page Stripe returns to."""

from __future__ import annotations

from typing import Any

from flask import flash, jsonify, redirect, render_template, request, session, url_for
from flask_login import current_user, login_required
from werkzeug.wrappers import Response

from payments_site.blueprints import parsing
from payments_site.blueprints.site.blueprint import bp
from payments_site.errors import InvalidRequest
from payments_site.models import Payment
from payments_site.money import format_money
from payments_site.services import cart, checkout, methods
from payments_site.services.catalog import active_products


def _owner_id() -> int | None:
    return current_user.id if current_user.is_authenticated else None


def _wants_json() -> bool:
    """The checkout page's script updates the cart in place and asks for JSON."""
    return request.accept_mimetypes.best == "application/json"


@bp.get("/")
def catalog() -> str:
    """The catalog (public), with add-to-cart buttons."""
    return render_template("shop/catalog.html", products=active_products(),
                           cart=cart.session_cart(session))


@bp.post("/cart/add")
def cart_add() -> Response:
    """Add a product to the session cart; back to the catalog (or on to checkout)."""
    product_id = parsing.form(parsing.CartLineForm).product_id
    try:
        asked = parsing.form(parsing.AddToCartForm)
        product = cart.add_to_cart(session, product_id, asked.quantity, _owner_id())
    except InvalidRequest as error:
        flash(error.message, "error")
        return redirect(url_for("site.catalog"))
    flash(f"Added {product.name} to your cart.", "success")
    return redirect(url_for("site.checkout" if asked.next == "checkout" else "site.catalog"))


@bp.post("/cart/update")
def cart_update() -> Response | tuple[Response, int]:
    """Change a line's quantity (0 or the remove button removes it).

    A form post redirects back to the checkout page; with `Accept: application/json` the
    answer is the repriced cart (the page updates its total and the Payment Element's amount
    in place: nothing is created at Stripe until the customer pays).
    """
    product_id = parsing.form(parsing.CartLineForm).product_id
    error: InvalidRequest | None = None
    try:
        quantity = parsing.form(parsing.UpdateCartForm).quantity
    except InvalidRequest as invalid:
        error = invalid
    else:
        cart.set_cart_quantity(session, product_id, quantity, _owner_id())
    if _wants_json():
        if error is not None:
            raise error
        if not current_user.is_authenticated:
            return jsonify(cart=None)
        return jsonify(cart=_cart_state(cart.cart_summary(session, current_user.id)))
    if error is not None:
        flash(error.message, "error")
    return redirect(url_for("site.checkout"))


def _cart_state(summary: cart.CartSummary) -> dict[str, Any]:
    """The cart as the checkout page's script shows it (amounts also formatted)."""
    currency = summary.currency or ""
    recent = checkout.recent_purchase(current_user, summary.as_items())
    return {
        "lines": [{"product_id": line.product.id, "name": line.product.name,
                   "quantity": line.quantity, "unit_amount": line.product.unit_amount,
                   "total": line.total, "total_display": format_money(line.total, currency)}
                  for line in summary.lines],
        "amount": summary.total, "currency": currency,
        "total_display": format_money(summary.total, currency) if currency else "",
        "problem": summary.problem,
        "recent_purchase": _recent_purchase_state(recent),
    }


def _recent_purchase_state(payment: Payment | None) -> dict[str, Any] | None:
    if payment is None or payment.succeeded_at is None:
        return None
    return {"id": payment.public_id, "succeeded_at": payment.succeeded_at.isoformat(),
            "url": url_for("site.payment_detail", payment_id=payment.public_id)}


@bp.get("/checkout", endpoint="checkout")
@login_required
def checkout_page() -> str:
    """The cart, its server-computed total, saved cards and Stripe's Payment Element.

    Rendering it creates nothing: the payment and its PaymentIntent are made when the
    customer presses Pay. Each rendering carries a fresh attempt token (or, after "Try
    again", the unfinished payment's own).
    """
    summary = cart.cart_summary(session, current_user.id)
    attempt = checkout.page_attempt(session, current_user, summary.as_items())
    recent = checkout.recent_purchase(current_user, summary.as_items())
    return render_template("shop/checkout.html", summary=summary, lines=summary.lines,
                           currency=summary.currency, total=summary.total,
                           problem=summary.problem, cards=methods.list_methods(current_user),
                           attempt=attempt, recent_purchase=recent,
                           recent_purchase_state=_recent_purchase_state(recent))


@bp.post("/checkout/retry/<payment_id>")
@login_required
def retry_payment(payment_id: str) -> Response:
    """"Try again" on a payment that was not completed: back to checkout with its items."""
    try:
        checkout.resume_payment(session, current_user, payment_id)
    except InvalidRequest as error:
        flash(error.message, "error")
        return redirect(url_for("site.payment_detail", payment_id=payment_id))
    return redirect(url_for("site.checkout"))


@bp.get("/checkout/complete")
@login_required
def checkout_complete() -> str:
    """Stripe's return_url: the payment's outcome as Stripe reports it now."""
    asked = parsing.query(parsing.CheckoutReturnQuery)
    payment = checkout.complete_checkout(current_user, asked.payment, asked.payment_intent)
    checkout.finish_checkout(session, payment)
    return render_template("shop/checkout_complete.html", payment=payment)
