"""Accounts a customer can manage and an attacker cannot keep: settings, forgotten passwords,
confirmed addresses, and credentials taken back (RELIABILITY 29)."""

from __future__ import annotations

import re
import time

import jwt
import pytest
from itsdangerous import URLSafeTimedSerializer
from sqlalchemy import select

from payments_site.extensions import db
from payments_site.models import OutboundEmail, User
from tests.conftest import DEFAULT_PASSWORD, csrf_token_from
from tests.helpers import emailed_link, follow_emailed_link

NEW_PASSWORD = "velvet-otter-harbour-92"


def _emails(kind: str, to: str | None = None) -> list[OutboundEmail]:
    query = select(OutboundEmail).where(OutboundEmail.kind == kind).order_by(OutboundEmail.id)
    if to is not None:
        query = query.where(OutboundEmail.to_address == to)
    return list(db.session.scalars(query))


def _fresh(user: User) -> User:
    found = db.session.get(User, user.id, populate_existing=True)
    assert found is not None
    return found


def _settings_post(session, path: str, **data: str):
    page = session.client.get("/account/settings").get_data(as_text=True)
    return session.client.post(path, data={"csrf_token": csrf_token_from(page), **data})


def _me(client, headers=None):
    return client.get("/api/auth/me", headers=headers or {})


def _without_tokens(response) -> str:
    return re.sub(r'(name="csrf[-_]token"[^>]*?(?:value|content)=")[^"]+', r"\1",
                  response.get_data(as_text=True))


def _forgot(client, email: str):
    page = client.get("/auth/forgot")
    return client.post("/auth/forgot", data={
        "email": email, "csrf_token": csrf_token_from(page.get_data(as_text=True))})


# --- revocation -------------------------------------------------------------------------------

def test_a_copied_session_cookie_and_a_token_stop_working_at_logout(app, customer, login_as,
                                                                    api_token):
    """RELIABILITY 29: a cookie and a token copied before logout are refused after it."""
    session = login_as(customer)
    cookie = session.client.get_cookie("session").value
    token = api_token(customer)
    copy = app.test_client()
    copy.set_cookie("session", cookie)
    assert _me(copy).status_code == 200
    assert _me(app.test_client(), {"Authorization": f"Bearer {token}"}).status_code == 200

    response = session.post("/auth/logout")
    assert response.status_code == 302
    assert _me(copy).status_code == 401
    assert _me(app.test_client(), {"Authorization": f"Bearer {token}"}).status_code == 401


@pytest.mark.parametrize("change", ["password", "sign_out_everywhere", "email", "reset"])
def test_every_credential_change_ends_other_sessions_and_tokens(app, client, customer, login_as,
                                                                api_token, change):
    """RELIABILITY 29: each credential change takes back every other session and token."""
    other_browser = login_as(customer)
    token = api_token(customer)
    bearer = {"Authorization": f"Bearer {token}"}
    session = login_as(customer)
    if change == "password":
        response = _settings_post(session, "/account/settings/password",
                                  current_password=DEFAULT_PASSWORD, password=NEW_PASSWORD,
                                  confirm=NEW_PASSWORD)
        assert response.status_code == 302
        assert _me(session.client).status_code == 200  # this browser stays signed in
    elif change == "sign_out_everywhere":
        response = _settings_post(session, "/account/settings/sign-out-everywhere")
        assert response.status_code == 302
        assert _me(session.client).status_code == 401  # this browser too
    elif change == "email":
        _settings_post(session, "/account/settings/email", email="jane@new.example",
                       current_password=DEFAULT_PASSWORD)
        link = _emails("email_change", "jane@new.example")[0].body_text
        assert follow_emailed_link(session.client, link, "/auth/change-email/")\
            .status_code == 302
        assert _me(session.client).get_json()["user"]["email"] == "jane@new.example"
    else:
        _forgot(client, customer.email)
        link = _emails("password_reset", customer.email)[0].body_text
        fresh = app.test_client()
        response = follow_emailed_link(fresh, link, "/auth/reset/",
                                       {"password": NEW_PASSWORD, "confirm": NEW_PASSWORD})
        assert response.status_code == 302
        assert _me(fresh).status_code == 200  # the link signs its user in
        assert _me(session.client).status_code == 401
    assert _me(other_browser.client).status_code == 401
    assert _me(app.test_client(), bearer).status_code == 401


def test_login_rotates_the_session_and_the_csrf_token(app, customer):
    client = app.test_client()
    page = client.get("/auth/login").get_data(as_text=True)
    before_token = csrf_token_from(page)
    before_cookie = client.get_cookie("session").value
    client.post("/auth/login", data={"email": customer.email, "password": DEFAULT_PASSWORD,
                                     "csrf_token": before_token})
    after_token = csrf_token_from(client.get("/").get_data(as_text=True))
    assert client.get_cookie("session").value != before_cookie
    # The token from before login is no longer accepted.
    response = client.post("/auth/logout", data={"csrf_token": before_token})
    assert response.status_code == 403
    assert after_token != before_token
    assert client.post("/auth/logout", data={"csrf_token": after_token}).status_code == 302


def test_session_and_csrf_tokens_expire_with_the_session_lifetime(app, customer, login_as):
    assert app.permanent_session_lifetime.total_seconds() == app.config["WTF_CSRF_TIME_LIMIT"]
    session = login_as(customer)
    assert session.client.get_cookie("session").expires is not None  # a permanent session


def test_a_session_cookie_older_than_its_lifetime_is_refused(app, customer, login_as):
    from datetime import timedelta

    session = login_as(customer)
    assert _me(session.client).status_code == 200
    app.config["PERMANENT_SESSION_LIFETIME"] = timedelta(seconds=1)
    app.config["WTF_CSRF_TIME_LIMIT"] = 1
    time.sleep(2.1)
    assert _me(session.client).status_code == 401
    # Its CSRF token has expired with it.
    assert session.post("/auth/logout").status_code == 403
    assert _me(session.client).status_code == 401


def test_tokens_carry_iat_and_a_token_without_the_version_is_refused(app, client, customer,
                                                                      api_token):
    claims = jwt.decode(api_token(customer), app.config["SECRET_KEY"], algorithms=["HS256"])
    assert claims["iat"] <= time.time() and claims["ver"] == customer.credential_version
    legacy = jwt.encode({"sub": str(customer.id), "typ": "access", "iat": int(time.time()),
                         "exp": int(time.time()) + 600}, app.config["SECRET_KEY"],
                        algorithm="HS256")
    assert _me(client, {"Authorization": f"Bearer {legacy}"}).status_code == 401


def test_revocation_costs_no_extra_statement(app, customer, login_as):
    """The version is compared with the row the request loads anyway."""
    from tests.helpers import statements_run

    session = login_as(customer)
    with statements_run(db.engine) as seen:
        assert _me(session.client).status_code == 200
    assert len([s for s in seen if "users" in s.lower()]) == 1, seen


# --- settings ---------------------------------------------------------------------------------

def test_settings_page_and_name_change(customer, login_as):
    session = login_as(customer)
    page = session.get("/account/settings")
    assert page.status_code == 200
    assert "Sign out everywhere" in page.get_data(as_text=True)
    response = _settings_post(session, "/account/settings/name", name="  Jane Q. Customer ")
    assert response.status_code == 302
    assert _fresh(customer).name == "Jane Q. Customer"
    response = _settings_post(session, "/account/settings/name", name="   ")
    assert response.status_code == 400
    assert _fresh(customer).name == "Jane Q. Customer"


def test_settings_need_a_signed_in_user(client):
    for path in ("/account/settings/name", "/account/settings/password",
                 "/account/settings/email", "/account/settings/sign-out-everywhere"):
        response = client.post(path, data={})
        # No session: CSRF first (403), and never a change.
        assert response.status_code in (302, 403), path
    assert client.get("/account/settings").headers["Location"].startswith("/auth/login")


@pytest.mark.parametrize("current, new, confirm, message", [
    ("wrong-password-x", NEW_PASSWORD, NEW_PASSWORD, "current password is not correct"),
    (DEFAULT_PASSWORD, "password12", "password12", "too easy to guess"),
    # Strong for zxcvbn on its own (score 4); the account's own address as context sinks it.
    (DEFAULT_PASSWORD, "customer@example.com", "customer@example.com", "too easy to guess"),
    (DEFAULT_PASSWORD, NEW_PASSWORD, "something-else-entirely", "do not match"),
    (DEFAULT_PASSWORD, DEFAULT_PASSWORD, DEFAULT_PASSWORD, "different from your current"),
])
def test_password_change_refusals(customer, login_as, current, new, confirm, message):
    session = login_as(customer)
    version = customer.credential_version
    response = _settings_post(session, "/account/settings/password", current_password=current,
                              password=new, confirm=confirm)
    assert response.status_code == 400
    assert message in response.get_data(as_text=True)
    user = _fresh(customer)
    assert user.check_password(DEFAULT_PASSWORD) and user.credential_version == version


def test_password_change_then_login_with_the_new_one(app, customer, login_as):
    session = login_as(customer)
    _settings_post(session, "/account/settings/password", current_password=DEFAULT_PASSWORD,
                   password=NEW_PASSWORD, confirm=NEW_PASSWORD)
    assert login_as(customer, NEW_PASSWORD).client is not None
    from tests.conftest import login

    assert login(app.test_client(), customer.email, DEFAULT_PASSWORD).status_code == 400


def test_email_change_sends_a_link_to_the_new_address_and_tells_the_old(customer, login_as):
    session = login_as(customer)
    response = _settings_post(session, "/account/settings/email", email="Jane@New.Example",
                              current_password=DEFAULT_PASSWORD)
    assert response.status_code == 302
    assert _fresh(customer).email == "customer@example.com"  # not before the link is opened
    notice = _emails("email_change_notice", "customer@example.com")
    assert len(notice) == 1 and "jane@new.example" in notice[0].body_text
    link = _emails("email_change", "jane@new.example")
    assert len(link) == 1
    assert follow_emailed_link(session.client, link[0].body_text,
                               "/auth/change-email/").status_code == 302
    user = _fresh(customer)
    assert user.email == "jane@new.example" and user.email_verified
    # Spent: the version it names is gone.
    again = session.client.get(emailed_link(link[0].body_text, "/auth/change-email/"))
    assert again.status_code == 400


@pytest.mark.parametrize("email, password, status, message", [
    ("taken@example.com", DEFAULT_PASSWORD, 302, None),
    ("not-an-address", DEFAULT_PASSWORD, 400, "valid email"),
    ("customer@example.com", DEFAULT_PASSWORD, 400, "already your email"),
    ("jane@new.example", "wrong-password-x", 400, "current password is not correct"),
])
def test_email_change_refusals(make_user, customer, login_as, email, password, status, message):
    make_user("taken@example.com")
    session = login_as(customer)
    response = _settings_post(session, "/account/settings/email", email=email,
                              current_password=password)
    assert response.status_code == status
    if message:
        assert message in response.get_data(as_text=True)
    # A taken address gets the same answer, but no link: confirming could never succeed.
    assert _emails("email_change") == []
    assert _fresh(customer).email == "customer@example.com"


# --- forgot password --------------------------------------------------------------------------

def test_forgot_answers_alike_for_known_and_unknown_addresses(app, customer):
    known = _forgot(app.test_client(), customer.email)
    unknown = _forgot(app.test_client(), "nobody@example.com")
    assert known.status_code == unknown.status_code == 200
    assert _without_tokens(known) == _without_tokens(unknown)
    # Either way one email is recorded and queued (the same work behind both answers).
    assert [e.to_address for e in _emails("password_reset")] == [customer.email]
    assert [e.to_address for e in _emails("reset_unknown")] == ["nobody@example.com"]


def test_forgot_finds_the_account_however_the_address_is_spelled(app, customer):
    _forgot(app.test_client(), "Customer@ＥＸＡＭＰＬＥ.com")
    assert [e.to_address for e in _emails("password_reset")] == [customer.email]


def test_a_reset_link_works_once(app, customer):
    _forgot(app.test_client(), customer.email)
    _forgot(app.test_client(), customer.email)
    first, second = (e.body_text for e in _emails("password_reset"))
    response = follow_emailed_link(app.test_client(), first, "/auth/reset/",
                                   {"password": NEW_PASSWORD, "confirm": NEW_PASSWORD})
    assert response.status_code == 302
    assert _fresh(customer).check_password(NEW_PASSWORD)
    for body in (first, second):  # spent, and every other link like it
        page = app.test_client().get(emailed_link(body, "/auth/reset/"))
        assert page.status_code == 400
        assert "expired or was already used" in page.get_data(as_text=True)


def test_a_reset_link_expires_after_an_hour(app, customer, monkeypatch):
    _forgot(app.test_client(), customer.email)
    path = emailed_link(_emails("password_reset")[0].body_text, "/auth/reset/")
    later = time.time() + 3601
    monkeypatch.setattr("itsdangerous.timed.time.time", lambda: later)
    page = app.test_client().get(path)
    assert page.status_code == 400
    assert "expired" in page.get_data(as_text=True)


@pytest.mark.parametrize("token", [
    "garbage", "a.b.c",
    URLSafeTimedSerializer("another-key", salt="reset-password").dumps({"u": 1, "v": 1}),
], ids=["garbage", "three-parts", "signed-with-another-key"])  # ids fixed: test processes agree
def test_forged_reset_links_are_refused(app, customer, token):
    response = app.test_client().get(f"/auth/reset/{token}")
    assert response.status_code == 400


def test_a_confirmation_token_cannot_reset_a_password(app, customer):
    token = URLSafeTimedSerializer(app.config["SECRET_KEY"], salt="confirm-email").dumps(
        {"u": customer.id, "e": customer.email, "v": customer.credential_version})
    assert app.test_client().get(f"/auth/reset/{token}").status_code == 400


def test_a_reset_refuses_a_weak_password_and_keeps_the_link(app, customer):
    _forgot(app.test_client(), customer.email)
    body = _emails("password_reset")[0].body_text
    client = app.test_client()
    response = follow_emailed_link(client, body, "/auth/reset/",
                                   {"password": "qwertyuiop", "confirm": "qwertyuiop"})
    assert response.status_code == 400
    assert "too easy to guess" in response.get_data(as_text=True)
    assert _fresh(customer).check_password(DEFAULT_PASSWORD)
    assert client.get(emailed_link(body, "/auth/reset/")).status_code == 200


# --- confirming addresses ---------------------------------------------------------------------

def test_an_unconfirmed_account_signs_in_sees_a_reminder_and_confirms(app, make_user, login_as):
    user = make_user("fresh@example.com", verified=False)
    session = login_as(user)
    page = session.get("/").get_data(as_text=True)
    assert "Please confirm your email address" in page
    assert _me(session.client).get_json()["user"]["email_verified"] is False
    response = _settings_post(session, "/account/settings/confirmation")
    assert response.status_code == 302
    body = _emails("confirm_email", "fresh@example.com")[0].body_text
    assert follow_emailed_link(session.client, body, "/auth/confirm/").status_code == 302
    assert _fresh(user).email_verified
    assert "Please confirm your email address" not in session.get("/").get_data(as_text=True)
    assert _me(session.client).get_json()["user"]["email_verified"] is True


def test_a_confirmation_link_for_an_old_address_is_refused(app, make_user):
    user = make_user("fresh@example.com", verified=False)
    token = URLSafeTimedSerializer(app.config["SECRET_KEY"], salt="confirm-email").dumps(
        {"u": user.id, "e": "old@example.com"})
    client = app.test_client()
    page = client.get(f"/auth/confirm/{token}")
    response = client.post(f"/auth/confirm/{token}", data={
        "csrf_token": csrf_token_from(page.get_data(as_text=True))})
    assert response.status_code == 400
    assert not _fresh(user).email_verified
