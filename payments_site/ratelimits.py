"""Rate-limit keys and limits (Flask-Limiter on Redis, so they hold across every node).

Signing in (`/auth/login` and `/api/auth/token` share every budget) is limited three ways:
- per client address: every attempt counts (`LOGIN_LIMIT_PER_IP`);
- per account and client address: failed attempts count (`LOGIN_LIMIT_PER_ACCOUNT_IP`);
- per account from everywhere: failed attempts count (`LOGIN_LIMIT_PER_ACCOUNT`, higher), but
  not against a browser or address that signed in to that account before, so failures from
  elsewhere never lock the owner out of a place they use. Refused attempts are not counted,
  so a limit ends with its window.
The account is keyed by `accounts.account_lookup_key`, the very address login looks up.
"""

from __future__ import annotations

import hashlib
import typing
from collections.abc import Callable
from typing import Any, TypeVar

import redis
from flask import current_app, request
from flask_login import current_user
from itsdangerous import BadSignature, URLSafeTimedSerializer
from werkzeug.wrappers import Response

from payments_site.blueprints.parsing import cookie, login_email
from payments_site.extensions import limiter
from payments_site.queues import get_redis
from payments_site.services.accounts import account_lookup_key

# A browser that signed in to an account keeps a signed note of it this long.
KNOWN_LOGIN_COOKIE = "known_login"
KNOWN_LOGIN_SECONDS = 90 * 24 * 3600
KNOWN_LOGIN_ACCOUNTS = 5
# Scopes of the budgets both sign-in routes share.
LOGIN_IP_SCOPE, LOGIN_ACCOUNT_IP_SCOPE, LOGIN_ACCOUNT_SCOPE = (
    "login-ip", "login-account-ip", "login-account")


def login_limit_per_ip() -> str:
    return str(current_app.config["LOGIN_LIMIT_PER_IP"])


def login_limit_per_account() -> str:
    return str(current_app.config["LOGIN_LIMIT_PER_ACCOUNT"])


def login_limit_per_account_ip() -> str:
    return str(current_app.config["LOGIN_LIMIT_PER_ACCOUNT_IP"])


def payment_limit() -> str:
    return str(current_app.config["PAYMENT_LIMIT"])


def refund_limit() -> str:
    return str(current_app.config["REFUND_LIMIT"])


View = TypeVar("View", bound=Callable[..., Any])


def login_limits(view: View) -> View:
    """The sign-in budgets, shared by every route that checks a password."""
    limits = (
        limiter.shared_limit(login_limit_per_ip, LOGIN_IP_SCOPE, key_func=login_ip_key,
                             methods=["POST"]),
        limiter.shared_limit(login_limit_per_account_ip, LOGIN_ACCOUNT_IP_SCOPE,
                             key_func=account_ip_key, methods=["POST"],
                             deduct_when=login_failed),
        limiter.shared_limit(login_limit_per_account, LOGIN_ACCOUNT_SCOPE,
                             key_func=account_key, methods=["POST"],
                             deduct_when=login_failed, exempt_when=from_known_place),
    )
    wrapped: Callable[..., Any] = view
    for limit in limits:
        wrapped = limit(wrapped)
    return typing.cast(View, wrapped)


def account_digest(raw_email: str) -> str:
    """The account an address names, hashed (so Redis keys hold no addresses)."""
    return hashlib.sha256(account_lookup_key(raw_email).encode()).hexdigest()[:32]


def _ip_digest() -> str:
    return hashlib.sha256(str(request.remote_addr or "").encode()).hexdigest()[:32]


def account_key() -> str:
    """The account being tried, however its address is spelled."""
    return f"account:{account_digest(login_email())}"


def account_ip_key() -> str:
    """The account being tried, from this client address."""
    return f"account:{account_digest(login_email())}:ip:{request.remote_addr}"


def login_ip_key() -> str:
    return f"ip:{request.remote_addr}"


def login_failed(response: Response) -> bool:
    """Whether a sign-in attempt failed (a wrong password is a 400 page or a 401 answer)."""
    return response.status_code in (400, 401)


def from_known_place() -> bool:
    """Whether this browser, or this client address, signed in to the account tried before."""
    digest = account_digest(login_email())
    if digest in _known_accounts():
        return True
    try:
        return bool(get_redis().sismember(_known_ips_key(digest), _ip_digest()))
    except redis.exceptions.RedisError:
        return False


def remember_login_place(email: str, response: Response | None = None) -> None:
    """After a successful sign-in: this address (in Redis) and this browser (a signed cookie
    on `response`) count as places the owner uses, for `from_known_place`."""
    digest = account_digest(email)
    try:
        pipe = get_redis().pipeline()
        pipe.sadd(_known_ips_key(digest), _ip_digest())
        pipe.expire(_known_ips_key(digest), KNOWN_LOGIN_SECONDS)
        pipe.execute()
    except redis.exceptions.RedisError:
        pass  # the cookie still remembers the browser
    if response is None:
        return
    known = [digest, *(d for d in _known_accounts() if d != digest)][:KNOWN_LOGIN_ACCOUNTS]
    response.set_cookie(KNOWN_LOGIN_COOKIE, _known_serializer().dumps(known),
                        max_age=KNOWN_LOGIN_SECONDS, httponly=True, samesite="Lax",
                        secure=bool(current_app.config.get("SESSION_COOKIE_SECURE")))


def _known_accounts() -> list[str]:
    value = cookie(KNOWN_LOGIN_COOKIE)
    if not value:
        return []
    try:
        known = _known_serializer().loads(value, max_age=KNOWN_LOGIN_SECONDS)
    except BadSignature:
        return []
    return [d for d in known if isinstance(d, str)] if isinstance(known, list) else []


def _known_serializer() -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(current_app.config["SECRET_KEY"], salt=KNOWN_LOGIN_COOKIE)


def _known_ips_key(digest: str) -> str:
    return f"payments_site:login-known:{digest}"


def user_key() -> str:
    if current_user.is_authenticated:
        return f"user:{current_user.id}"
    return f"ip:{request.remote_addr}"
