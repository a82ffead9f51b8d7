"""Accounts: register, log in, log out, Bearer tokens, safe redirects and throttling."""

from __future__ import annotations

import re
import time

import jwt
import pytest
from sqlalchemy import select

from payments_site.extensions import db
from payments_site.models import OutboundEmail, User
from tests.conftest import DEFAULT_PASSWORD, csrf_token_from


def _register(client, email="new@example.com", password="a-good-password", confirm=None,
              name="New Person", token=None, next_url=None):
    page = client.get("/auth/register")
    data = {"name": name, "email": email, "password": password,
            "confirm": password if confirm is None else confirm,
            "csrf_token": token if token is not None else csrf_token_from(page.get_data(True))}
    path = "/auth/register" + (f"?next={next_url}" if next_url else "")
    return client.post(path, data=data)


def test_register_creates_customer_with_hashed_password(client):
    response = _register(client)
    assert response.status_code == 302
    assert response.headers["Location"].startswith("/auth/login")
    user = db.session.scalar(select(User).where(User.email == "new@example.com"))
    assert user is not None and user.role == "customer"
    assert user.password_hash.startswith("scrypt:")
    assert "a-good-password" not in user.password_hash
    # Not confirmed yet: a link to confirm it is on its way, through the outbox.
    assert user.email_verified_at is None
    sent = db.session.scalars(select(OutboundEmail)).all()
    assert [(e.kind, e.to_address) for e in sent] == [("confirm_email", "new@example.com")]
    # Signing up does not sign in (a taken address could not be signed in: both answer alike).
    assert "Log out" not in client.get("/").get_data(as_text=True)


def test_register_with_a_taken_address_answers_as_for_a_new_one(app, customer):
    """Signup reveals nothing: same status, redirect and message; the owner is told instead."""
    new, taken = app.test_client(), app.test_client()
    fresh = _register(new, email="someone-new@example.com")
    again = _register(taken, email="Customer@Example.com")
    assert fresh.status_code == again.status_code == 302
    assert fresh.headers["Location"] == again.headers["Location"]
    pages = [c.get(fresh.headers["Location"]).get_data(as_text=True) for c in (new, taken)]
    assert "We sent a message to your address" in pages[0]
    assert _without_tokens(pages[0]) == _without_tokens(pages[1])
    assert db.session.scalar(select(db.func.count()).select_from(User)) == 2
    owner_mail = db.session.scalars(select(OutboundEmail).where(
        OutboundEmail.to_address == customer.email)).all()
    assert [e.kind for e in owner_mail] == ["signup_attempt"]
    assert "already have an account" in owner_mail[0].body_text
    assert customer.check_password(DEFAULT_PASSWORD)  # nothing about the owner changed


def _without_tokens(html: str) -> str:
    return re.sub(r'(name="csrf[-_]token"[^>]*?(?:value|content)=")[^"]+', r"\1", html)


@pytest.mark.parametrize("password", ["", "short", "aaaaaaaaaaaa", "password12", "1234567890",
                                      "qwertyuiop"])
def test_register_weak_or_empty_password_is_rejected(client, password):
    response = _register(client, password=password)
    assert response.status_code == 400
    assert db.session.scalar(select(User)) is None
    assert db.session.scalar(select(OutboundEmail)) is None


def test_register_mismatched_confirmation_is_rejected(client):
    response = _register(client, confirm="another-password")
    assert response.status_code == 400
    assert "do not match" in response.get_data(as_text=True)


def test_register_bad_csrf_token_is_rejected(client):
    response = _register(client, token="forged")
    assert response.status_code == 403
    assert db.session.scalar(select(User)) is None


def test_register_invalid_email_is_rejected(client):
    response = _register(client, email="not-an-email")
    assert response.status_code == 400
    assert db.session.scalar(select(User)) is None


def _login(client, email, password, token=None, next_url=None):
    page = client.get("/auth/login")
    data = {"email": email, "password": password,
            "csrf_token": token if token is not None else csrf_token_from(page.get_data(True))}
    path = "/auth/login" + (f"?next={next_url}" if next_url else "")
    return client.post(path, data=data)


def test_login_and_logout(client, customer):
    response = _login(client, customer.email, DEFAULT_PASSWORD)
    assert response.status_code == 302
    page = client.get("/").get_data(as_text=True)
    assert "Log out" in page
    token = csrf_token_from(page)
    response = client.post("/auth/logout", data={"csrf_token": token})
    assert response.status_code == 302
    assert "Log in" in client.get("/").get_data(as_text=True)


def test_logout_requires_csrf(client, customer):
    _login(client, customer.email, DEFAULT_PASSWORD)
    response = client.post("/auth/logout", data={})
    assert response.status_code == 403
    assert "Log out" in client.get("/").get_data(as_text=True)


def test_wrong_password_and_unknown_email_answer_alike(client, customer):
    wrong = _login(client, customer.email, "not-the-password")
    unknown = _login(client, "nobody@example.com", "not-the-password")
    assert wrong.status_code == unknown.status_code == 400
    for response in (wrong, unknown):
        assert "Invalid email or password." in response.get_data(as_text=True)


def test_login_bad_csrf_token_is_rejected(client, customer):
    response = _login(client, customer.email, DEFAULT_PASSWORD, token="forged")
    assert response.status_code == 403


@pytest.mark.parametrize("target", [
    "https://evil.example", "//evil.example", "/\\evil.example", "javascript:alert(1)",
    "http:/evil.example", "/%5Cevil.example\\x",
])
def test_next_never_leaves_the_site(client, customer, target):
    response = _login(client, customer.email, DEFAULT_PASSWORD, next_url=target)
    assert response.status_code == 302
    assert response.headers["Location"] == "/"


def test_next_follows_local_paths(client, customer):
    response = _login(client, customer.email, DEFAULT_PASSWORD, next_url="/account/payments")
    assert response.headers["Location"] == "/account/payments"


def test_login_is_throttled_per_account(app, client, customer):
    app.config["LOGIN_LIMIT_PER_ACCOUNT"] = "3 per minute"
    statuses = [_login(client, customer.email, "wrong-password-x").status_code
                for _ in range(4)]
    assert statuses[:3] == [400, 400, 400]
    assert statuses[3] == 429
    # Throttled even with the right password: the account is being attacked.
    blocked = _login(client, customer.email, DEFAULT_PASSWORD)
    assert blocked.status_code == 429
    assert blocked.headers.get("Retry-After")


def test_api_token_issued_and_accepted(client, customer):
    response = client.post("/api/auth/token", json={"email": customer.email,
                                                    "password": DEFAULT_PASSWORD})
    assert response.status_code == 200
    body = response.get_json()
    assert body["token_type"] == "Bearer" and body["expires_in"] == 3600
    me = client.get("/api/auth/me", headers={"Authorization": f"Bearer {body['token']}"})
    assert me.status_code == 200
    assert me.get_json()["user"]["email"] == customer.email


@pytest.mark.parametrize("payload", [
    {"email": "customer@example.com", "password": "wrong"},
    {"email": "nobody@example.com", "password": DEFAULT_PASSWORD},
    {"email": "customer@example.com"},
    {"email": 5, "password": []},
])
def test_api_token_wrong_credentials_401(client, customer, payload):
    response = client.post("/api/auth/token", json=payload)
    assert response.status_code == 401
    assert response.get_json()["error"]["code"] == "unauthenticated"


def test_api_token_malformed_json_400(client):
    response = client.post("/api/auth/token", data="{not json",
                           content_type="application/json")
    assert response.status_code == 400
    assert response.get_json()["error"]["code"] == "invalid_request"


def _protected(client, token):
    return client.get("/api/auth/me", headers={"Authorization": f"Bearer {token}"})


def test_expired_token_is_401(app, client, customer):
    expired = jwt.encode({"sub": str(customer.id), "typ": "access", "iat": int(time.time()) - 7200,
                          "exp": int(time.time()) - 3600}, app.config["SECRET_KEY"],
                         algorithm="HS256")
    response = _protected(client, expired)
    assert response.status_code == 401
    assert response.get_json()["error"]["code"] == "unauthenticated"


@pytest.mark.parametrize("token", ["garbage", "a.b.c"])
def test_forged_token_is_401(client, customer, token):
    assert _protected(client, token).status_code == 401


def test_token_signed_with_another_key_is_401(client, customer):
    forged = jwt.encode({"sub": str(customer.id), "typ": "access",
                         "exp": int(time.time()) + 600}, "another-key-entirely-000000000000",
                        algorithm="HS256")
    assert _protected(client, forged).status_code == 401


def test_token_with_alg_none_is_401(client, customer):
    forged = jwt.encode({"sub": str(customer.id), "typ": "access",
                         "exp": int(time.time()) + 600}, None, algorithm="none")
    assert _protected(client, forged).status_code == 401


def test_anonymous_api_is_401_json_and_page_redirects(client):
    api = client.get("/api/auth/me")
    assert api.status_code == 401
    assert api.get_json()["error"]["code"] == "unauthenticated"


def test_admin_role(make_user):
    admin = make_user(role="admin")
    assert admin.is_admin
    assert not make_user().is_admin
