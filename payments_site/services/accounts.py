"""Accounts: sign-up, credential checks, the links emailed to owners, and taking credentials back.

Three rules hold everything here together:
- One function, `account_lookup_key`, turns whatever was typed into the address login looks
  up; the login throttle keys on the same value, so no spelling of an address (case,
  full-width letters, `。`) gets a budget of its own.
- Every credential change raises the user's `credential_version` in the same transaction,
  which ends every session cookie and Bearer token issued before (see security.py).
- The links emailed to owners (confirm an address, change it, reset a password) are signed,
  expiring tokens that name the state they were issued for: a reset link names the credential
  version, so using it (which raises the version) spends it and every other link like it.
"""

from __future__ import annotations

import hashlib
import secrets
import unicodedata
import uuid
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from email_validator import EmailNotValidError, validate_email
from flask import current_app, render_template
from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from zxcvbn import zxcvbn

from payments_site.db import unit_of_work, update_rows
from payments_site.errors import InvalidRequest
from payments_site.extensions import db
from payments_site.models import User, utcnow
from payments_site.services import emails

MIN_PASSWORD_LENGTH = 10
MAX_PASSWORD_LENGTH = 256
# zxcvbn's scale: 3 is "safely unguessable: moderate protection from offline attacks".
MIN_PASSWORD_SCORE = 3
# zxcvbn's cost grows with the length; what follows the first 100 characters only adds
# strength, so only those are estimated.
STRENGTH_CHECKED_LENGTH = 100

RESET_LINK_SECONDS = 3600
CONFIRM_LINK_SECONDS = 7 * 24 * 3600
EMAIL_CHANGE_LINK_SECONDS = 24 * 3600

# The signed links, one salt per purpose so a token for one can never serve another.
_CONFIRM, _CHANGE, _RESET = "confirm-email", "change-email", "reset-password"


@lru_cache(maxsize=1)
def _dummy_user() -> User:
    """Checked against when the email is unknown, so both answers cost the same hash check."""
    user = User(email="")
    user.set_password(secrets.token_urlsafe(16))
    return user


class EmailTaken(InvalidRequest):
    code = "email_taken"
    message = "An account with this email already exists."


class LinkInvalid(InvalidRequest):
    """An emailed link that is forged, expired, already used or no longer applies."""

    code = "invalid_link"
    message = "This link has expired or was already used."


# --- addresses --------------------------------------------------------------------------------

def normalize_email(raw: str) -> str:
    try:
        return validate_email(raw.strip(), check_deliverability=False).normalized.lower()
    except (EmailNotValidError, AttributeError) as error:
        raise InvalidRequest("Enter a valid email address.", param="email") from error


def account_lookup_key(raw: str) -> str:
    """The address an attempt names, as login looks it up: the one key for finding the
    account and for throttling attempts at it. Never raises; something that is not an
    address gets a key of its own (NFKC, case-folded), which names no account."""
    try:
        return normalize_email(raw)
    except InvalidRequest:
        return unicodedata.normalize("NFKC", raw).strip().casefold()


def find_account(raw: str) -> User | None:
    """The user whose address `raw` names (however it is spelled), or None."""
    key = account_lookup_key(raw)
    return db.session.scalar(select(User).where(User.email == key)) if "@" in key else None


# --- passwords --------------------------------------------------------------------------------

def check_password_strength(password: str, *, email: str = "", name: str = "") -> None:
    """InvalidRequest (param `password`) unless `password` is long enough and zxcvbn, told
    the account's own email and name, scores it 3 or more; the message says how to do better."""
    if not isinstance(password, str) or len(password) < MIN_PASSWORD_LENGTH:
        raise InvalidRequest(f"Use a password of at least {MIN_PASSWORD_LENGTH} characters.",
                             param="password")
    if len(password) > MAX_PASSWORD_LENGTH:
        raise InvalidRequest(f"Use a password of at most {MAX_PASSWORD_LENGTH} characters.",
                             param="password")
    context = [part.lower() for part in (email, email.partition("@")[0], *name.split()) if part]
    result = zxcvbn(password[:STRENGTH_CHECKED_LENGTH], user_inputs=context)
    if int(result["score"]) >= MIN_PASSWORD_SCORE:
        return
    feedback = result.get("feedback") or {}
    hints = [str(feedback.get("warning") or "").strip(),
             *(str(s).strip() for s in feedback.get("suggestions") or [])]
    advice = " ".join(h if h.endswith(".") else f"{h}." for h in hints if h)
    raise InvalidRequest(
        "This password is too easy to guess. " + (advice or "Add a few more words.")
        + " A few unrelated words together make a strong password.", param="password")


def authenticate(email: str, password: str) -> User | None:
    """The user for these credentials, or None; unknown emails cost the same hash check."""
    user = find_account(email) if isinstance(email, str) else None
    candidate = user or _dummy_user()
    ok = candidate.check_password(password if isinstance(password, str) else "")
    return user if (user is not None and ok) else None


# --- creating accounts ------------------------------------------------------------------------

def create_user(email: str, password: str, *, name: str = "", role: str = "customer",
                enforce_strength: bool = True, verified: bool = False) -> User:
    """Create a user with a scrypt-hashed password; raise EmailTaken on a duplicate email.

    For the CLI and the seed; sign-up goes through `register`, which never says whether an
    address is taken.
    """
    email = normalize_email(email)
    name = name.strip()[:120]
    if enforce_strength:
        check_password_strength(password, email=email, name=name)
    if role not in ("customer", "admin"):
        raise InvalidRequest("role must be customer or admin", param="role")
    user = User(email=email, name=name, role=role,
                email_verified_at=utcnow() if verified else None)
    user.set_password(password)
    try:
        with unit_of_work():
            db.session.add(user)
    except IntegrityError as error:
        raise EmailTaken(param="email") from error
    return user


def register(email: str, password: str, *, name: str) -> User | None:
    """Sign-up, answered alike whether or not the address has an account.

    A new address gets an account (unconfirmed) and a link to confirm it. An address that
    has one already gets no second account: its owner is emailed that someone tried to sign
    up with it. Returns the new user, or None. Invalid input raises InvalidRequest as usual
    (the same for both cases: the password is judged before the address is looked up).
    """
    address = normalize_email(email)
    name = name.strip()[:120]
    check_password_strength(password, email=address, name=name)
    user = User(email=address, name=name, role="customer")
    user.set_password(password)  # hashed in both cases, so both take as long
    owner = find_account(address)
    if owner is None:
        try:
            with unit_of_work():
                db.session.add(user)
        except IntegrityError:
            owner = find_account(address)  # signed up a moment ago by someone else
            if owner is None:
                raise
        else:
            send_confirmation(user)
            return user
    _send_account_email("signup_attempt", to=owner.email, name=owner.name,
                        dedupe=f"signup-attempt:{owner.id}:{uuid.uuid4().hex}",
                        subject="Someone tried to sign up with your address",
                        template="signup_attempt")
    return None


# --- the emailed links ------------------------------------------------------------------------

def _serializer(purpose: str) -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(current_app.config["SECRET_KEY"], salt=purpose)


def _link_token(purpose: str, **claims: Any) -> str:
    return _serializer(purpose).dumps(claims)


def _read_link(purpose: str, token: str, max_age: int) -> dict[str, Any]:
    if not isinstance(token, str) or len(token) > 1000:
        raise LinkInvalid()
    try:
        claims = _serializer(purpose).loads(token, max_age=max_age)
    except SignatureExpired as error:
        raise LinkInvalid("This link has expired. Ask for a new one.") from error
    except BadSignature as error:
        raise LinkInvalid() from error
    if not isinstance(claims, dict) or not isinstance(claims.get("u"), int):
        raise LinkInvalid()
    return claims


def _send_account_email(kind: str, *, to: str, name: str, dedupe: str, subject: str,
                        template: str, **context: Any) -> None:
    """Record and queue one account email (the outbox: sent once, retried, never lost)."""
    merchant = current_app.config["MERCHANT_NAME"]
    text = render_template(f"email/{template}.txt", merchant_name=merchant,
                           customer_name=name or to, email=to, **context)
    emails.send_later(dedupe_key=dedupe, kind=kind, to=to,
                      subject=f"{subject} · {merchant}", text_body=text)


def send_confirmation(user: User) -> None:
    """Email `user` a link confirming their address (a new message each time it is asked)."""
    token = _link_token(_CONFIRM, u=user.id, e=user.email)
    _send_account_email("confirm_email", to=user.email, name=user.name,
                        dedupe=f"confirm:{user.id}:{uuid.uuid4().hex}",
                        subject="Confirm your email address", template="confirm_email",
                        token=token,
                        days=CONFIRM_LINK_SECONDS // 86400)


def confirm_email(token: str) -> User:
    """Mark the address a confirmation link was sent to as confirmed (again is harmless)."""
    claims = _read_link(_CONFIRM, token, CONFIRM_LINK_SECONDS)
    user = db.session.get(User, claims["u"])
    if user is None or user.email != claims.get("e"):
        raise LinkInvalid("This link is for an address the account no longer uses.")
    if user.email_verified_at is None:
        with unit_of_work():
            update_rows(User, User.id == user.id, User.email == user.email,
                        User.email_verified_at.is_(None), email_verified_at=utcnow())
        db.session.refresh(user)
    return user


def request_password_reset(raw_email: str) -> None:
    """Email a reset link when `raw_email` has an account; otherwise tell that address no
    account uses it. Either way one email is recorded and queued, so the answer and the work
    behind it look the same."""
    address = account_lookup_key(raw_email)
    if "@" not in address:
        raise InvalidRequest("Enter a valid email address.", param="email")
    user = find_account(address)
    if user is None:
        digest = hashlib.sha256(address.encode()).hexdigest()[:32]
        _send_account_email("reset_unknown", to=address, name="",
                            dedupe=f"reset-unknown:{digest}:{uuid.uuid4().hex}",
                            subject="Password reset requested", template="reset_unknown")
        return
    token = _link_token(_RESET, u=user.id, v=user.credential_version)
    _send_account_email("password_reset", to=user.email, name=user.name,
                        dedupe=f"reset:{user.id}:{uuid.uuid4().hex}",
                        subject="Reset your password", template="password_reset",
                        token=token,
                        minutes=RESET_LINK_SECONDS // 60)


def user_for_reset(token: str) -> User:
    """The user a reset link is for while it is unused and less than an hour old."""
    claims = _read_link(_RESET, token, RESET_LINK_SECONDS)
    user = db.session.get(User, claims["u"])
    if user is None or claims.get("v") != user.credential_version:
        raise LinkInvalid()
    return user


def reset_password(token: str, new_password: str) -> User:
    """Set a new password from a reset link; the link, every other such link and every
    session and token of the account stop working. The address counts as confirmed: the
    link reached it."""
    user = user_for_reset(token)
    check_password_strength(new_password, email=user.email, name=user.name)
    _store_credentials(user, new_password, extra={"email_verified_at":
                                                  user.email_verified_at or utcnow()})
    return user


@dataclass(frozen=True)
class EmailChange:
    user: User
    new_email: str


def request_email_change(user: User, current_password: str, new_email: str) -> str:
    """Email a confirmation link to the new address and tell the old one; returns the new
    address as normalised. The answer does not say whether the new address has an account:
    such an address gets no link (confirming could never succeed)."""
    _require_current_password(user, current_password)
    address = normalize_email(new_email)
    if address == user.email:
        raise InvalidRequest("That is already your email address.", param="email")
    if find_account(address) is None:
        token = _link_token(_CHANGE, u=user.id, v=user.credential_version, e=address)
        _send_account_email("email_change", to=address, name=user.name,
                            dedupe=f"email-change:{user.id}:{uuid.uuid4().hex}",
                            subject="Confirm your new email address", template="email_change",
                            token=token, old_email=user.email,
                            hours=EMAIL_CHANGE_LINK_SECONDS // 3600)
    _send_account_email("email_change_notice", to=user.email, name=user.name,
                        dedupe=f"email-change-notice:{user.id}:{uuid.uuid4().hex}",
                        subject="A change of your email address was requested",
                        template="email_change_notice", new_email=address)
    return address


def email_change_for(token: str) -> EmailChange:
    """The change a link asks for, while it still applies."""
    claims = _read_link(_CHANGE, token, EMAIL_CHANGE_LINK_SECONDS)
    user = db.session.get(User, claims["u"])
    new_email = claims.get("e")
    if user is None or claims.get("v") != user.credential_version \
            or not isinstance(new_email, str):
        raise LinkInvalid()
    return EmailChange(user, new_email)


def confirm_email_change(token: str) -> User:
    """Move the account to the address the link was sent to (now confirmed); every session
    and token made before ends."""
    change = email_change_for(token)
    user = change.user
    try:
        with unit_of_work():
            moved = update_rows(User, User.id == user.id,
                                User.credential_version == user.credential_version,
                                email=change.new_email, email_verified_at=utcnow(),
                                credential_version=User.credential_version + 1)
    except IntegrityError as error:
        raise EmailTaken("Another account uses that address now.", param="email") from error
    if not moved:
        raise LinkInvalid()
    db.session.refresh(user)
    return user


# --- changing and revoking credentials --------------------------------------------------------

def _require_current_password(user: User, current_password: str) -> None:
    if not isinstance(current_password, str) or not user.check_password(current_password):
        raise InvalidRequest("Your current password is not correct.",
                             param="current_password")


def change_password(user: User, current_password: str, new_password: str) -> None:
    """A new password, given the current one; every session and token made before ends."""
    _require_current_password(user, current_password)
    check_password_strength(new_password, email=user.email, name=user.name)
    if user.check_password(new_password):
        raise InvalidRequest("Choose a password different from your current one.",
                             param="password")
    _store_credentials(user, new_password)


def _store_credentials(user: User, password: str, extra: dict[str, Any] | None = None) -> None:
    probe = User(email=user.email)
    probe.set_password(password)
    with unit_of_work():
        changed = update_rows(User, User.id == user.id,
                              User.credential_version == user.credential_version,
                              password_hash=probe.password_hash,
                              credential_version=User.credential_version + 1, **(extra or {}))
    if not changed:
        raise LinkInvalid("Your account changed meanwhile. Please try again.")
    db.session.refresh(user)


def change_name(user: User, name: str) -> None:
    name = name.strip() if isinstance(name, str) else ""
    if not name:
        raise InvalidRequest("Enter your name.", param="name")
    if len(name) > 120:
        raise InvalidRequest("Use at most 120 characters.", param="name")
    with unit_of_work():
        update_rows(User, User.id == user.id, name=name)
    db.session.refresh(user)


def revoke_credentials(user: User) -> None:
    """End every session cookie and Bearer token of `user` (log out, sign out everywhere)."""
    with unit_of_work():
        update_rows(User, User.id == user.id,
                    credential_version=User.credential_version + 1)
    db.session.refresh(user)


def receipts_may_go_to(user: User) -> bool:
    """Receipts are emailed only to an address its owner confirmed (or that receipts went to
    before confirmation existed: those were marked confirmed when it was introduced)."""
    return user.email_verified_at is not None
