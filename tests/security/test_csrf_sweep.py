"""RELIABILITY 18: every state-changing route that a cookie can authenticate demands a CSRF token.

The sweep walks the app's URL map, so a new POST/DELETE route is covered the day it is added.
Bearer requests are exempt; the webhook is exempt and protected by its signature instead.
"""

from __future__ import annotations

import re

import pytest

from payments_site.security import CSRF_EXEMPT_ENDPOINTS

STATE_CHANGING = {"POST", "PUT", "PATCH", "DELETE"}


def _state_changing_rules(app):
    for rule in app.url_map.iter_rules():
        methods = (rule.methods or set()) & STATE_CHANGING
        if methods and rule.endpoint != "static":
            yield rule, sorted(methods)


def _concrete(rule) -> str:
    # Any value will do: CSRF is checked before the view looks anything up.
    return re.sub(r"<(?:[^:<>]+:)?([^<>]+)>", "x_does_not_exist", rule.rule)


def test_the_sweep_sees_the_routes(app):
    endpoints = {rule.endpoint for rule, _ in _state_changing_rules(app)}
    assert {"site.logout", "site.login", "api.issue_token"} <= endpoints


@pytest.mark.parametrize("token", [None, "forged-token"])
def test_cookie_requests_without_valid_csrf_are_rejected(app, login_as, make_user, token):
    session = login_as(make_user(role="admin"))
    checked = []
    for rule, methods in _state_changing_rules(app):
        if rule.endpoint in CSRF_EXEMPT_ENDPOINTS:
            continue
        for method in methods:
            headers = {"X-CSRFToken": token} if token else {}
            response = session.client.open(_concrete(rule), method=method, json={},
                                           headers=headers)
            assert response.status_code == 403, (rule.rule, method, response.status_code)
            if rule.rule.startswith("/api/"):
                assert response.get_json()["error"]["code"] == "forbidden"
            checked.append(rule.rule)
    assert checked


def test_bearer_requests_need_no_csrf(app, client, api_token, make_user):
    token = api_token(make_user(role="admin"))
    for rule, methods in _state_changing_rules(app):
        if not rule.rule.startswith("/api/") or rule.endpoint in CSRF_EXEMPT_ENDPOINTS:
            continue
        for method in methods:
            response = client.open(_concrete(rule), method=method, json={},
                                   headers={"Authorization": f"Bearer {token}"})
            # Whatever else is wrong with the empty body, it is not a CSRF refusal.
            body = response.get_json(silent=True) or {}
            assert not (response.status_code == 403
                        and "CSRF" in body.get("error", {}).get("message", "")), rule.rule


def test_webhook_is_exempt_but_needs_a_signature(app, client):
    """RELIABILITY 18: no CSRF token on the webhook, its signature instead (400, nothing kept)."""
    from payments_site.extensions import db
    from payments_site.models import WebhookEvent

    assert "api.stripe_webhook" in CSRF_EXEMPT_ENDPOINTS
    response = client.post("/api/webhooks/stripe", data=b"{}",
                           content_type="application/json")
    assert response.status_code == 400
    assert response.get_json()["error"]["code"] == "invalid_request"
    assert db.session.query(WebhookEvent).count() == 0


def test_a_bearer_token_speaks_for_the_request_not_the_cookie(app, login_as, make_user,
                                                              api_token):
    """A valid token for B alongside A's session cookie acts as B; an invalid one is a 401,
    never a CSRF bypass for the cookie's owner."""
    alice, bob = make_user(name="Alice"), make_user(name="Bob")
    session = login_as(alice)
    token = api_token(bob)
    me = session.client.get("/api/auth/me", headers={"Authorization": f"Bearer {token}"})
    assert me.get_json()["user"]["email"] == bob.email
    forged = session.client.post("/api/payments/methods/setup-intent",
                                 headers={"Authorization": "Bearer forged"})
    assert forged.status_code == 401
    assert forged.get_json()["error"]["code"] == "unauthenticated"
