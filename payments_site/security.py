"""Who is calling: session login, Bearer tokens, CSRF for cookie requests, security headers."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import jwt
from flask import Flask, Request, Response, current_app, g, redirect, request, url_for
from flask_login import current_user

from payments_site import tracing
from payments_site.db import get_autocommitted
from payments_site.errors import Unauthenticated
from payments_site.extensions import csrf, login_manager
from payments_site.models import User

TOKEN_ALGORITHM = "HS256"
# Routes whose callers cannot hold a CSRF token; each is protected another way.
CSRF_EXEMPT_ENDPOINTS = frozenset({"api.stripe_webhook", "api.issue_token"})


def issue_token(user: User) -> tuple[str, int]:
    """A signed Bearer token for `user`; returns (token, seconds until it expires)."""
    ttl = int(current_app.config["API_TOKEN_TTL"])
    now = datetime.now(UTC)
    # `ver` ties the token to the user's credential version: logging out, a new password or
    # email, or "sign out everywhere" raises the version and ends every token issued before.
    claims = {"sub": str(user.id), "iat": now, "exp": now + timedelta(seconds=ttl),
              "typ": "access", "ver": user.credential_version}
    return jwt.encode(claims, current_app.config["SECRET_KEY"], algorithm=TOKEN_ALGORITHM), ttl


def user_from_token(token: str) -> User | None:
    try:
        claims = jwt.decode(token, current_app.config["SECRET_KEY"],
                            algorithms=[TOKEN_ALGORITHM],
                            options={"require": ["exp", "iat", "sub"]})
    except jwt.PyJWTError:
        return None
    if claims.get("typ") != "access":
        return None
    try:
        user_id = int(claims["sub"])
    except (TypeError, ValueError):
        return None
    return current_credential(get_autocommitted(User, user_id), claims.get("ver"))


def current_credential(user: User | None, version: object) -> User | None:
    """`user` when `version` is the credential version it holds now, else None (revoked)."""
    if user is None or isinstance(version, bool) or version != user.credential_version:
        return None
    return user


def session_user_id(value: str) -> tuple[int, int] | None:
    """(user id, credential version) from what `User.get_id` put in the session."""
    if not isinstance(value, str) or len(value) > 24:
        return None
    ident, _, version = value.partition(".")
    if not (ident.isascii() and ident.isdigit() and version.isascii() and version.isdigit()):
        return None
    return int(ident), int(version)


def bearer_token(req: Request) -> str | None:
    header = req.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        return token.strip()
    return None


def is_safe_next(target: str | None) -> bool:
    """Only local paths: no scheme, no host, no protocol-relative or backslash tricks."""
    if not target or not target.startswith("/") or target.startswith("//"):
        return False
    if "\\" in target or any(ord(ch) < 32 for ch in target):
        return False
    parts = urlsplit(target)
    return not parts.scheme and not parts.netloc


def safe_next(target: str | None, default: str = "/") -> str:
    return target if target is not None and is_safe_next(target) else default


def init_security(app: Flask) -> None:
    login_manager.login_view = "site.login"
    login_manager.login_message = "Please log in to continue."
    login_manager.login_message_category = "info"
    login_manager.session_protection = "basic"

    @login_manager.user_loader
    def load_user(user_id: str) -> User | None:
        # An explicit Bearer token speaks for the request, whatever the cookie says.
        if bearer_token(request) is not None:
            return None
        parsed = session_user_id(user_id)
        if parsed is None:
            return None
        ident, version = parsed
        # The row is loaded for every signed-in request anyway; comparing its version is free.
        user = current_credential(get_autocommitted(User, ident), version)
        if user is not None:
            tracing.bind_user(user.id)
        return user

    @login_manager.request_loader
    def load_user_from_request(req: Request) -> User | None:
        token = bearer_token(req)
        if token is None:
            return None
        user = user_from_token(token)
        if user is not None:
            g.auth_via_bearer = True
            tracing.bind_user(user.id)
        return user

    @login_manager.unauthorized_handler
    def unauthorized() -> Any:
        if request.path.startswith("/api/"):
            raise Unauthenticated()
        return redirect(url_for("site.login", next=request.full_path.rstrip("?")))

    @app.before_request
    def protect_against_csrf() -> None:
        if request.method in ("GET", "HEAD", "OPTIONS", "TRACE"):
            return
        if request.endpoint in CSRF_EXEMPT_ENDPOINTS:
            return
        # A Bearer request carries its credential explicitly; a forged cross-site request
        # cannot add the header, so CSRF does not apply (an invalid token is a 401 later).
        if bearer_token(request) is not None:
            # Resolved once by the request loader below and kept for the view.
            if not current_user.is_authenticated:
                raise Unauthenticated("The Bearer token is invalid or expired.")
            return
        # An anonymous JSON call carries no session to abuse: let the view answer 401.
        # (Pages keep CSRF for anonymous forms too: login CSRF is a real attack.)
        if request.path.startswith("/api/") and not current_user.is_authenticated:
            return
        csrf.protect()

    @app.after_request
    def set_security_headers(response: Response) -> Response:
        return apply_security_headers(response)


def content_security_policy() -> str:
    stripe_js = current_app.config["STRIPE_JS_URL"]
    parts = urlsplit(stripe_js)
    stripe_origin = f"{parts.scheme}://{parts.netloc}" if parts.netloc else ""
    api = urlsplit(current_app.config["STRIPE_API_BASE"])
    api_origin = f"{api.scheme}://{api.netloc}" if api.netloc else ""
    frames = " ".join(o for o in {stripe_origin, "https://js.stripe.com",
                                  "https://hooks.stripe.com"} if o)
    connects = " ".join(o for o in {stripe_origin, api_origin, "https://api.stripe.com"} if o)
    return "; ".join([
        "default-src 'self'",
        f"script-src 'self' {stripe_origin}".strip(),
        "style-src 'self'",
        "img-src 'self' data:",
        "font-src 'self'",
        f"connect-src 'self' {connects}",
        f"frame-src {frames}",
        "frame-ancestors 'none'",
        "form-action 'self'",
        "base-uri 'self'",
        "object-src 'none'",
    ])


def apply_security_headers(response: Response) -> Response:
    response.headers.setdefault("Content-Security-Policy", content_security_policy())
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    response.headers.setdefault("X-Frame-Options", "DENY")
    response.headers.setdefault("Referrer-Policy", "strict-origin-when-cross-origin")
    if current_app.config.get("PRODUCTION"):
        response.headers.setdefault("Strict-Transport-Security",
                                    "max-age=31536000; includeSubDomains")
    if request.path.startswith(("/account", "/receipts", "/admin", "/checkout", "/api/")):
        response.headers["Cache-Control"] = "no-store"
    return response
