"""JSON routes for saved cards (/api/payments/methods/*)."""

from __future__ import annotations

from typing import Any

from flask_login import current_user, login_required

from payments_site.blueprints.api.blueprint import bp
from payments_site.blueprints.api.schemas import (
    Cards,
    DeletedCard,
    PaymentMethod,
    SavedCard,
    SetupIntentSecret,
    answers,
)
from payments_site.blueprints.parsing import (
    CardRequest,
    CardToDeleteBody,
    CardToDeleteQuery,
    SaveCardRequest,
    validated,
)
from payments_site.extensions import limiter
from payments_site.ratelimits import payment_limit, user_key
from payments_site.services import methods

Answer = tuple[dict[str, Any], int]


@bp.post("/payments/methods/setup-intent", summary="A SetupIntent to save a card with Stripe.js",
         responses=answers(201, SetupIntentSecret, 401, 403, 429, 502, 503))
@login_required
@limiter.limit(payment_limit, key_func=user_key)
def create_setup_intent() -> Answer:
    """201 with a SetupIntent's client_secret for Stripe.js `confirmSetup`."""
    return SetupIntentSecret(client_secret=methods.create_setup_intent(current_user)).dump(), 201


@bp.post("/payments/methods/save", summary="Save a card to the caller's account",
         responses=answers(201, SavedCard, 401, 402, 403, 404, 429, 502, 503))
@login_required
@limiter.limit(payment_limit, key_func=user_key)
@validated
def save_card(body: SaveCardRequest) -> Answer:
    """201 with the saved card; 404 for an unknown or someone else's id, 402 if declined."""
    make_default = bool(body.make_default)
    if body.setup_intent_id is not None:
        method = methods.save_from_setup_intent(current_user, body.setup_intent_id,
                                                make_default)
    else:
        assert body.payment_method_id is not None  # the schema sends exactly one
        method = methods.save_payment_method(current_user, body.payment_method_id,
                                             make_default)
    return SavedCard(payment_method=PaymentMethod.of(method)).dump(), 201


@bp.get("/payments/methods/list", summary="The caller's saved cards, default first",
        responses=answers(200, Cards, 401))
@login_required
def list_cards() -> dict[str, Any]:
    """200 with the caller's cards, the default first."""
    return Cards(data=[PaymentMethod.of(m) for m in methods.list_methods(current_user)]).dump()


@bp.delete("/payments/methods/delete", summary="Remove a saved card",
           responses=answers(200, DeletedCard, 401, 403, 404, 502, 503))
@login_required
@validated
def delete_card(body: CardToDeleteBody, query: CardToDeleteQuery) -> dict[str, Any]:
    """200 once the card is detached at Stripe and forgotten; 404 when not the caller's."""
    pm_id = query.card_id(body)
    methods.remove_method(current_user, pm_id)
    return DeletedCard(deleted=True, id=pm_id).dump()


@bp.post("/payments/methods/default", summary="Make a saved card the default",
         responses=answers(200, SavedCard, 401, 403, 404, 502, 503))
@login_required
@validated
def make_card_default(body: CardRequest) -> dict[str, Any]:
    """200 with the card that is now the default; 404 when not the caller's."""
    return SavedCard(payment_method=PaymentMethod.of(
        methods.set_default(current_user, body.payment_method_id))).dump()
