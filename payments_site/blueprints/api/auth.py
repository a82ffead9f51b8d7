"""API authentication: exchange credentials for an expiring Bearer token; who am I."""

from __future__ import annotations

from typing import Any

from flask import current_app
from flask_login import current_user, login_required

from payments_site import ratelimits, security
from payments_site.blueprints.api.blueprint import PUBLIC, bp
from payments_site.blueprints.api.schemas import Account, Me, Token, answers
from payments_site.blueprints.parsing import TokenRequest, validated
from payments_site.errors import Unauthenticated
from payments_site.ratelimits import login_limits
from payments_site.services.accounts import authenticate


@bp.post("/auth/token", summary="Exchange credentials for a Bearer token",
         responses=answers(200, Token, 401, 429), openapi_extensions=PUBLIC)
@login_limits
@validated
def issue_token(body: TokenRequest) -> dict[str, Any]:
    """200 with a Bearer token for valid credentials; 401 for anything else. Shares the
    sign-in budgets of the login page (ratelimits.login_limits)."""
    user = authenticate(body.email, body.password)
    if user is None:
        current_app.logger.info("token refused for a login attempt")
        raise Unauthenticated("Invalid email or password.")
    ratelimits.remember_login_place(user.email)
    token, ttl = security.issue_token(user)
    return Token(token=token, token_type="Bearer", expires_in=ttl).dump()


@bp.get("/auth/me", summary="The caller's account", responses=answers(200, Me, 401))
@login_required
def me() -> dict[str, Any]:
    """200 with the caller's account (session or Bearer); 401 otherwise."""
    return Me(user=Account(id=current_user.id, email=current_user.email,
                           name=current_user.name, role=current_user.role,
                           email_verified=current_user.email_verified)).dump()
