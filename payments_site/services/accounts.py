"""Accounts: registration, credential checks and user creation (for pages, API and CLI)."""

from __future__ import annotations

import secrets
from functools import lru_cache

from email_validator import EmailNotValidError, validate_email
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from payments_site.db import unit_of_work
from payments_site.errors import InvalidRequest
from payments_site.extensions import db
from payments_site.models import User

MIN_PASSWORD_LENGTH = 10


@lru_cache(maxsize=1)
def _dummy_user() -> User:
    """Checked against when the email is unknown, so both answers cost the same hash check."""
    user = User(email="")
    user.set_password(secrets.token_urlsafe(16))
    return user


class EmailTaken(InvalidRequest):
    code = "email_taken"
    message = "An account with this email already exists."


def normalize_email(raw: str) -> str:
    try:
        return validate_email(raw.strip(), check_deliverability=False).normalized.lower()
    except (EmailNotValidError, AttributeError) as error:
        raise InvalidRequest("Enter a valid email address.", param="email") from error


def check_password_strength(password: str) -> None:
    if not isinstance(password, str) or len(password) < MIN_PASSWORD_LENGTH:
        raise InvalidRequest(f"Use a password of at least {MIN_PASSWORD_LENGTH} characters.",
                             param="password")
    if password.strip() == "" or len(set(password)) < 4:
        raise InvalidRequest("This password is too easy to guess.", param="password")


def create_user(email: str, password: str, *, name: str = "", role: str = "customer",
                enforce_strength: bool = True) -> User:
    """Create a user with a scrypt-hashed password; raise EmailTaken on a duplicate email."""
    email = normalize_email(email)
    if enforce_strength:
        check_password_strength(password)
    if role not in ("customer", "admin"):
        raise InvalidRequest("role must be customer or admin", param="role")
    user = User(email=email, name=name.strip()[:120], role=role)
    user.set_password(password)
    try:
        with unit_of_work():
            db.session.add(user)
    except IntegrityError as error:
        raise EmailTaken(param="email") from error
    return user


def authenticate(email: str, password: str) -> User | None:
    """The user for these credentials, or None; unknown emails cost the same hash check."""
    try:
        normalized = normalize_email(email)
    except InvalidRequest:
        normalized = None
    user = db.session.scalar(select(User).where(User.email == normalized)) if normalized else None
    candidate = user or _dummy_user()
    ok = candidate.check_password(password or "")
    return user if (user is not None and ok) else None
