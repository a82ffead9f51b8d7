"""JSON authentication for API clients: exchange credentials for an expiring Bearer token."""

from __future__ import annotations

from flask import Blueprint, current_app, jsonify
from flask_login import current_user, login_required

from payments_site.blueprints.parsing import json_body
from payments_site.errors import Unauthenticated
from payments_site.extensions import limiter
from payments_site.ratelimits import account_key, login_limit_per_account, login_limit_per_ip
from payments_site.security import issue_token
from payments_site.services.accounts import authenticate

bp = Blueprint("api_auth", __name__, url_prefix="/api/auth")


@bp.post("/token")
@limiter.limit(login_limit_per_ip)
@limiter.limit(login_limit_per_account, key_func=account_key)
def issue_token_route():
    """200 with a Bearer token for valid credentials; 401 for anything else."""
    body = json_body()
    email, password = body.get("email"), body.get("password")
    if not isinstance(email, str) or not isinstance(password, str):
        raise Unauthenticated("Invalid email or password.")
    user = authenticate(email, password)
    if user is None:
        current_app.logger.info("token refused for a login attempt")
        raise Unauthenticated("Invalid email or password.")
    token, ttl = issue_token(user)
    return jsonify(token=token, token_type="Bearer", expires_in=ttl)


@bp.get("/me")
@login_required
def me():
    """200 with the caller's account (session or Bearer); 401 otherwise."""
    return jsonify(user={"id": current_user.id, "email": current_user.email,
                         "name": current_user.name, "role": current_user.role})
