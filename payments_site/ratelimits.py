"""Rate-limit keys and limits (Flask-Limiter on Redis, so they hold across every node)."""

from __future__ import annotations

import hashlib

from flask import current_app, request
from flask_login import current_user

from payments_site.blueprints.parsing import login_email


def login_limit_per_ip() -> str:
    return str(current_app.config["LOGIN_LIMIT_PER_IP"])


def login_limit_per_account() -> str:
    return str(current_app.config["LOGIN_LIMIT_PER_ACCOUNT"])


def payment_limit() -> str:
    return str(current_app.config["PAYMENT_LIMIT"])


def refund_limit() -> str:
    return str(current_app.config["REFUND_LIMIT"])


def account_key() -> str:
    """The email being tried, hashed (limits brute force on one account from many IPs)."""
    digest = hashlib.sha256(login_email().strip().lower().encode()).hexdigest()[:32]
    return f"account:{digest}"


def user_key() -> str:
    if current_user.is_authenticated:
        return f"user:{current_user.id}"
    return f"ip:{request.remote_addr}"
