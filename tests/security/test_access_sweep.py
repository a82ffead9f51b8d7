"""RELIABILITY 17: every route that takes an id or acts on an account, tried by someone else.

The sweep walks the app's URL map. Each endpoint under /account, /receipts, /admin, /checkout,
/api/payments and /api/auth/me must be in ROUTES, which says how to build a request for it
with another customer's real objects (payment, receipt number, card, refund) and what a
stranger must get: 404 for ids (never reveal that the object exists), 403 for admin routes,
and, for routes about "my" things, an answer that mentions none of the victim's ids.
Anonymous callers get 401 JSON on /api and a redirect to the login page elsewhere.
A new route that is missing from ROUTES fails the test.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest

from tests.conftest import csrf_token_from
from tests.security.flows import CustomerObjects, bearer, buy_and_refund

PROTECTED_PREFIXES = ("/account", "/receipts", "/admin", "/checkout", "/api/payments",
                      "/api/auth/me")

ID = "id"        # names another user's object: a stranger gets 404
ADMIN = "admin"  # admins only: a customer gets 403
OWN = "own"      # the caller's own things: a stranger sees none of the victim's


@dataclass(frozen=True)
class Route:
    method: str
    kind: str
    url: Callable[[CustomerObjects], str]
    body: Callable[[CustomerObjects], dict[str, Any] | None] = lambda o: None


ROUTES: dict[str, Route] = {
    "account.payments": Route("GET", OWN, lambda o: "/account/payments"),
    "account.payment_detail": Route("GET", ID, lambda o: f"/account/payments/{o.payment_id}"),
    "cards.index": Route("GET", OWN, lambda o: "/account/cards"),
    "cards.confirm_remove": Route("GET", ID, lambda o: f"/account/cards/{o.card_id}/remove"),
    "cards.remove": Route("POST", ID, lambda o: f"/account/cards/{o.card_id}/remove"),
    "cards.make_default": Route("POST", ID, lambda o: f"/account/cards/{o.card_id}/default"),
    "receipts.index": Route("GET", OWN, lambda o: "/account/receipts"),
    "receipts.download": Route("GET", ID, lambda o: f"/receipts/{o.receipt_number}.pdf"),
    "shop.checkout": Route("GET", OWN, lambda o: "/checkout"),
    "shop.checkout_complete": Route(
        "GET", ID, lambda o: f"/checkout/complete?payment={o.payment_id}"
                             f"&payment_intent={o.intent_id}"),
    "admin.index": Route("GET", ADMIN, lambda o: "/admin/"),
    "admin.payments": Route("GET", ADMIN, lambda o: "/admin/payments"),
    "admin.payment_detail": Route("GET", ADMIN, lambda o: f"/admin/payments/{o.payment_id}"),
    "admin.refund": Route("POST", ADMIN, lambda o: f"/admin/payments/{o.payment_id}/refund"),
    "admin_webhooks.index": Route("GET", ADMIN, lambda o: "/admin/webhooks"),
    "admin_webhooks.replay": Route("POST", ADMIN,
                                   lambda o: "/admin/webhooks/evt_does_not_matter/replay"),
    "api_auth.me": Route("GET", OWN, lambda o: "/api/auth/me"),
    "api_payments.history": Route("GET", OWN, lambda o: "/api/payments/history"),
    "api_payments.detail": Route("GET", ID, lambda o: f"/api/payments/{o.payment_id}"),
    "api_payments.process": Route(
        "POST", ID, lambda o: "/api/payments/process",
        lambda o: {"items": [{"product_id": 1, "quantity": 1}],
                   "payment_method_id": o.card_id}),
    "api_receipts.resend": Route("POST", ID,
                                 lambda o: f"/api/payments/{o.payment_id}/receipt/resend"),
    "api_refunds.refund_payment": Route(
        "POST", ADMIN, lambda o: "/api/payments/refund",
        lambda o: {"payment_id": o.payment_id, "amount": 100}),
    "api_methods.list_methods": Route("GET", OWN, lambda o: "/api/payments/methods/list"),
    "api_methods.create_setup_intent": Route("POST", OWN,
                                             lambda o: "/api/payments/methods/setup-intent"),
    "api_methods.save": Route("POST", ID, lambda o: "/api/payments/methods/save",
                              lambda o: {"payment_method_id": o.card_id}),
    "api_methods.delete": Route("DELETE", ID, lambda o: "/api/payments/methods/delete",
                                lambda o: {"payment_method_id": o.card_id}),
    "api_methods.make_default": Route("POST", ID, lambda o: "/api/payments/methods/default",
                                      lambda o: {"payment_method_id": o.card_id}),
}


def protected_endpoints(app: Any) -> dict[str, set[str]]:
    found: dict[str, set[str]] = {}
    for rule in app.url_map.iter_rules():
        if rule.rule.startswith(PROTECTED_PREFIXES):
            methods = (rule.methods or set()) - {"HEAD", "OPTIONS"}
            found.setdefault(rule.endpoint, set()).update(methods)
    return found


class Caller:
    """A test client that sends a valid CSRF token on state-changing requests (so what is
    tested is access control, not CSRF), logged in through the real form or anonymous."""

    def __init__(self, app: Any, email: str | None = None, password: str | None = None):
        self.client = app.test_client()
        if email is not None:
            page = self.client.get("/auth/login")
            response = self.client.post("/auth/login", data={
                "email": email, "password": password,
                "csrf_token": csrf_token_from(page.get_data(as_text=True))})
            assert response.status_code == 302
        self.csrf = csrf_token_from(self.client.get("/").get_data(as_text=True))

    def send(self, route: Route, objects: CustomerObjects,
             headers: dict[str, str] | None = None) -> Any:
        url, body = route.url(objects), route.body(objects)
        form_route = not url.startswith("/api/")
        extra = {"X-CSRFToken": self.csrf, **(headers or {})}
        if route.method == "GET":
            return self.client.get(url, headers=headers)
        if form_route:
            return self.client.open(url, method=route.method,
                                    data={"csrf_token": self.csrf, **(body or {})},
                                    headers=extra)
        return self.client.open(url, method=route.method, json=body or {}, headers=extra)


@pytest.fixture
def victim(app, client, emulator, make_user, admin, product, api_token, run_jobs):
    app.config["PAYMENT_LIMIT"] = "1000 per minute"
    app.config["REFUND_LIMIT"] = "1000 per minute"
    return buy_and_refund(client, emulator.url, make_user("victim@example.com"), admin,
                          product, api_token, run_jobs)


def test_every_protected_route_is_in_the_table(app):
    """A new route under a protected prefix must say how it is attacked (RELIABILITY 17)."""
    found = protected_endpoints(app)
    missing = sorted(set(found) - set(ROUTES))
    assert not missing, f"add these endpoints to ROUTES in {__file__}: {missing}"
    for endpoint, route in ROUTES.items():
        if endpoint in found:
            assert route.method in found[endpoint], (endpoint, route.method, found[endpoint])


def _victim_ids(objects: CustomerObjects) -> list[str]:
    return [objects.payment_id, objects.receipt_number, objects.refund_note_number,
            objects.card_id, objects.refund_id, objects.user.email]


def test_another_customer_gets_404_or_403_and_sees_nothing(app, victim, make_user, admin):
    """RELIABILITY 17: someone else's payment, receipt, card, refund, resend → 404."""
    stranger = make_user("stranger@example.com")
    from tests.conftest import DEFAULT_PASSWORD

    caller = Caller(app, stranger.email, DEFAULT_PASSWORD)
    token_caller = Caller(app)
    from flask import current_app

    with current_app.test_client() as api_client:
        stranger_token = api_client.post("/api/auth/token", json={
            "email": stranger.email, "password": DEFAULT_PASSWORD}).get_json()["token"]
    checked = []
    for endpoint in sorted(protected_endpoints(app)):
        route = ROUTES[endpoint]
        callers = [(caller, None)]
        if route.url(victim).startswith("/api/"):
            callers.append((token_caller, bearer(stranger_token)))
        for who, headers in callers:
            response = who.send(route, victim, headers)
            text = response.get_data(as_text=True)
            where = (endpoint, "bearer" if headers else "session", response.status_code)
            if route.kind == ID:
                assert response.status_code == 404, where
                if route.url(victim).startswith("/api/"):
                    assert response.get_json()["error"]["code"] == "not_found", where
            elif route.kind == ADMIN:
                assert response.status_code == 403, where
            else:
                assert response.status_code in (200, 201), where
            leaked = [value for value in _victim_ids(victim) if value in text]
            assert not leaked, (where, leaked)
            checked.append(endpoint)
    assert len(set(checked)) == len(protected_endpoints(app))

    # The objects were real: the owner (or an admin, for admin pages) can read them.
    owner = Caller(app, victim.user.email, DEFAULT_PASSWORD)
    boss = Caller(app, admin.email, DEFAULT_PASSWORD)
    for endpoint, route in ROUTES.items():
        if route.method != "GET" or route.kind == OWN:
            continue
        response = (boss if route.kind == ADMIN else owner).send(route, victim)
        allowed = (200, 302) if endpoint == "admin.index" else (200,)  # /admin/ → payments
        assert response.status_code in allowed, (endpoint, response.status_code)
    # Nothing the stranger tried changed the victim's card.
    response = owner.client.get("/api/payments/methods/list")
    assert [m["id"] for m in response.get_json()["data"]] == [victim.card_id]


def test_anonymous_gets_401_json_or_the_login_page(app, victim):
    """RELIABILITY 17: no session → 401 JSON on /api, a redirect to log in on pages."""
    anonymous = Caller(app)
    for endpoint in sorted(protected_endpoints(app)):
        route = ROUTES[endpoint]
        response = anonymous.send(route, victim)
        if route.url(victim).startswith("/api/"):
            assert response.status_code == 401, (endpoint, response.status_code)
            assert response.get_json()["error"]["code"] == "unauthenticated", endpoint
        else:
            assert response.status_code == 302, (endpoint, response.status_code)
            assert response.headers["Location"].startswith("/auth/login"), endpoint
        if response.status_code != 302:  # a redirect only echoes the asked URL in next=
            for value in _victim_ids(victim):
                assert value not in response.get_data(as_text=True), (endpoint, value)


def test_a_forged_or_foreign_bearer_token_is_401(app, victim):
    """RELIABILITY 17: a token signed with another key does not open the victim's payment."""
    import jwt

    forged = jwt.encode({"sub": str(victim.user.id), "exp": 4102444800, "typ": "access"},
                        "not-the-secret-key-of-this-site-at-all", algorithm="HS256")
    client = app.test_client()
    response = client.get(f"/api/payments/{victim.payment_id}", headers=bearer(forged))
    assert response.status_code == 401
    response = client.get(f"/api/payments/{victim.payment_id}", headers=bearer(victim.token))
    assert response.status_code == 200
