"""JSON routes for saved cards (/api/payments/methods/*)."""

from __future__ import annotations

import re
from typing import Any

from flask import Blueprint, jsonify, request
from flask_login import current_user, login_required

from payments_site.blueprints.parsing import json_body
from payments_site.errors import InvalidRequest
from payments_site.extensions import limiter
from payments_site.ratelimits import payment_limit, user_key
from payments_site.serializers import payment_method_to_dict
from payments_site.services import methods

bp = Blueprint("api_methods", __name__, url_prefix="/api/payments/methods")

_ID_PATTERNS = {"payment_method_id": re.compile(r"pm_[A-Za-z0-9_]{1,250}"),
                "setup_intent_id": re.compile(r"seti_[A-Za-z0-9_]{1,250}")}


def stripe_id(value: Any, param: str) -> str:
    """A Stripe object id of the expected kind (pm_…, seti_…); 400 otherwise."""
    if not isinstance(value, str) or not _ID_PATTERNS[param].fullmatch(value):
        raise InvalidRequest(f"{param} must be a Stripe id.", param=param)
    return value


def optional_bool(body: dict[str, Any], param: str) -> bool:
    value = body.get(param, False)
    if value is None:
        return False
    if not isinstance(value, bool):
        raise InvalidRequest(f"{param} must be true or false.", param=param)
    return value


@bp.post("/setup-intent")
@login_required
@limiter.limit(payment_limit, key_func=user_key)
def create_setup_intent():
    """201 with a SetupIntent's client_secret for Stripe.js `confirmSetup`."""
    return jsonify(client_secret=methods.create_setup_intent(current_user)), 201


@bp.post("/save")
@login_required
@limiter.limit(payment_limit, key_func=user_key)
def save():
    """201 with the saved card; 404 for an unknown or someone else's id, 402 if declined."""
    body = json_body()
    make_default = optional_bool(body, "make_default")
    has_seti, has_pm = "setup_intent_id" in body, "payment_method_id" in body
    if has_seti == has_pm:
        raise InvalidRequest("Send exactly one of setup_intent_id or payment_method_id.",
                             param="setup_intent_id")
    if has_seti:
        method = methods.save_from_setup_intent(
            current_user, stripe_id(body["setup_intent_id"], "setup_intent_id"), make_default)
    else:
        method = methods.save_payment_method(
            current_user, stripe_id(body["payment_method_id"], "payment_method_id"),
            make_default)
    return jsonify(payment_method=payment_method_to_dict(method)), 201


@bp.get("/list")
@login_required
def list_methods():
    """200 with the caller's cards, the default first."""
    return jsonify(data=[payment_method_to_dict(m) for m in methods.list_methods(current_user)])


@bp.delete("/delete")
@login_required
def delete():
    """200 once the card is detached at Stripe and forgotten; 404 when not the caller's."""
    body = json_body()
    value = body.get("payment_method_id", request.args.get("payment_method_id"))
    pm_id = stripe_id(value, "payment_method_id")
    methods.remove_method(current_user, pm_id)
    return jsonify(deleted=True, id=pm_id)


@bp.post("/default")
@login_required
def make_default():
    """200 with the card that is now the default; 404 when not the caller's."""
    pm_id = stripe_id(json_body().get("payment_method_id"), "payment_method_id")
    return jsonify(payment_method=payment_method_to_dict(
        methods.set_default(current_user, pm_id)))
