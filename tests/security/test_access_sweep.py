"""RELIABILITY 17: every route that takes an id or acts on an account, tried by someone else.

The sweep walks EVERY rule in the app's URL map. Each endpoint is either in ROUTES, which says
how to build a request for it with another customer's real objects (payment, receipt number,
card, refund) and what a stranger must get: 404 for ids (never reveal that the object exists),
403 for admin routes, and, for routes about "my" things, an answer that mentions none of the
victim's ids; or it is in PUBLIC, the commented list of routes anyone may call. Anonymous
callers of ROUTES get 401 JSON on /api and a redirect to the login page elsewhere.
A new route (or a new method on a route) that is in neither list fails the test.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest

from tests.conftest import csrf_token_from
from tests.security.flows import CustomerObjects, bearer, buy_and_refund

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
    "site.payments": Route("GET", OWN, lambda o: "/account/payments"),
    "site.payment_detail": Route("GET", ID, lambda o: f"/account/payments/{o.payment_id}"),
    "site.cards": Route("GET", OWN, lambda o: "/account/cards"),
    "site.confirm_remove_card": Route("GET", ID, lambda o: f"/account/cards/{o.card_id}/remove"),
    "site.remove_card": Route("POST", ID, lambda o: f"/account/cards/{o.card_id}/remove"),
    "site.make_card_default": Route("POST", ID, lambda o: f"/account/cards/{o.card_id}/default"),
    "site.receipts": Route("GET", OWN, lambda o: "/account/receipts"),
    "site.settings": Route("GET", OWN, lambda o: "/account/settings"),
    "site.download_receipt": Route("GET", ID, lambda o: f"/receipts/{o.receipt_number}.pdf"),
    "site.checkout": Route("GET", OWN, lambda o: "/checkout"),
    "site.retry_payment": Route("POST", ID, lambda o: f"/checkout/retry/{o.payment_id}"),
    "site.checkout_complete": Route(
        "GET", ID, lambda o: f"/checkout/complete?payment={o.payment_id}"
                             f"&payment_intent={o.intent_id}"),
    "admin.index": Route("GET", ADMIN, lambda o: "/admin/"),
    "admin.payments": Route("GET", ADMIN, lambda o: "/admin/payments"),
    "admin.payment_detail": Route("GET", ADMIN, lambda o: f"/admin/payments/{o.payment_id}"),
    "admin.refund": Route("POST", ADMIN, lambda o: f"/admin/payments/{o.payment_id}/refund"),
    "admin.failed_emails": Route("GET", ADMIN, lambda o: "/admin/emails"),
    "admin.retry_email": Route("POST", ADMIN, lambda o: "/admin/emails/1/retry"),
    "admin.webhook_events": Route("GET", ADMIN, lambda o: "/admin/webhooks"),
    "admin.replay_webhook": Route("POST", ADMIN,
                                   lambda o: "/admin/webhooks/evt_does_not_matter/replay"),
    "api.me": Route("GET", OWN, lambda o: "/api/auth/me"),
    "api.payment_history": Route("GET", OWN, lambda o: "/api/payments/history"),
    "api.payment_detail": Route("GET", ID, lambda o: f"/api/payments/{o.payment_id}"),
    "api.process_payment": Route(
        "POST", ID, lambda o: "/api/payments/process",
        lambda o: {"items": [{"product_id": 1, "quantity": 1}],
                   "payment_method_id": o.card_id}),
    "api.resend_receipt": Route("POST", ID,
                                 lambda o: f"/api/payments/{o.payment_id}/receipt/resend"),
    "api.refund_payment": Route(
        "POST", ADMIN, lambda o: "/api/payments/refund",
        lambda o: {"payment_id": o.payment_id, "amount": 100}),
    "api.list_cards": Route("GET", OWN, lambda o: "/api/payments/methods/list"),
    "api.create_setup_intent": Route("POST", OWN,
                                             lambda o: "/api/payments/methods/setup-intent"),
    "api.save_card": Route("POST", ID, lambda o: "/api/payments/methods/save",
                              lambda o: {"payment_method_id": o.card_id}),
    "api.delete_card": Route("DELETE", ID, lambda o: "/api/payments/methods/delete",
                                lambda o: {"payment_method_id": o.card_id}),
    "api.make_card_default": Route("POST", ID, lambda o: "/api/payments/methods/default",
                                      lambda o: {"payment_method_id": o.card_id}),
}


# Endpoints (and the methods reviewed) that take no other customer's id and act on no
# account, so the stranger and anonymous checks do not apply. Each says why it is public.
PUBLIC: dict[str, frozenset[str]] = {
    # CSS, scripts and fonts: the same files for everyone.
    "static": frozenset({"GET"}),
    # The catalog, as a page and as JSON: products are public.
    "site.catalog": frozenset({"GET"}),
    "api.list_products": frozenset({"GET"}),
    # The cart lives in the caller's own session; the product ids it takes are public.
    "site.cart_add": frozenset({"POST"}),
    "site.cart_update": frozenset({"POST"}),
    # Getting in: anonymous by nature, throttled per IP and per account (test_abuse.py).
    "site.login": frozenset({"GET", "POST"}),
    "site.register": frozenset({"GET", "POST"}),
    "api.issue_token": frozenset({"POST"}),
    # Ends the caller's own session; there is nothing of anyone else's to name.
    "site.logout": frozenset({"POST"}),
    # A forgotten password: anonymous by nature, answers alike for every address, throttled.
    "site.forgot_password": frozenset({"GET", "POST"}),
    # The links emailed to an owner: the signed, expiring token in the path is the credential
    # (tests/foundation/test_accounts.py forges, reuses and lets them expire).
    "site.reset_password": frozenset({"GET", "POST"}),
    "site.confirm_email": frozenset({"GET", "POST"}),
    "site.change_email": frozenset({"GET", "POST"}),
    # The settings forms change only the caller's own account (login required, no id in the
    # path or body; tests/foundation/test_accounts.py sends them signed out and as others).
    "site.change_name": frozenset({"POST"}),
    "site.change_password": frozenset({"POST"}),
    "site.change_email_request": frozenset({"POST"}),
    "site.sign_out_everywhere": frozenset({"POST"}),
    "site.resend_confirmation": frozenset({"POST"}),
    # Stripe calls it; the signature is the credential (tests/webhooks/test_receive.py).
    "api.stripe_webhook": frozenset({"POST"}),
    # The API's public OpenAPI document.
    "api.openapi_json": frozenset({"GET"}),
    # Load-balancer and orchestrator probes: no data, just "ok" or which dependency failed.
    "health.healthz": frozenset({"GET"}),
    "health.readyz": frozenset({"GET"}),
    # Prometheus' scrape: no session or user at all; its own Bearer token (METRICS_TOKEN) or
    # 404 (tests/operations/test_metrics.py).
    "metrics.scrape": frozenset({"GET"}),
}


def served_endpoints(app: Any) -> dict[str, set[str]]:
    """Every endpoint in the URL map with the methods it answers (HEAD/OPTIONS are Flask's)."""
    found: dict[str, set[str]] = {}
    for rule in app.url_map.iter_rules():
        methods = (rule.methods or set()) - {"HEAD", "OPTIONS"}
        found.setdefault(rule.endpoint, set()).update(methods)
    return found


def protected_endpoints(app: Any) -> dict[str, set[str]]:
    return {endpoint: methods for endpoint, methods in served_endpoints(app).items()
            if endpoint not in PUBLIC}


def unchecked_routes(app: Any) -> list[str]:
    """What the sweep would not cover in `app`: each problem as a line to fix."""
    served = served_endpoints(app)
    rules = {rule.endpoint: rule.rule for rule in app.url_map.iter_rules()}
    problems = []
    for endpoint, methods in sorted(served.items()):
        where = f"{endpoint} ({rules[endpoint]}, {'/'.join(sorted(methods))})"
        if endpoint in ROUTES and endpoint in PUBLIC:
            problems.append(f"{where}: in both ROUTES and PUBLIC")
        elif endpoint in ROUTES:
            if methods != {ROUTES[endpoint].method}:
                problems.append(f"{where}: ROUTES sweeps only {ROUTES[endpoint].method}")
        elif endpoint in PUBLIC:
            if not methods <= PUBLIC[endpoint]:
                problems.append(f"{where}: PUBLIC allows only {sorted(PUBLIC[endpoint])}")
        else:
            problems.append(f"{where}: add it to ROUTES (or, if anyone may call it, PUBLIC)")
    for endpoint in sorted((set(ROUTES) | set(PUBLIC)) - set(served)):
        problems.append(f"{endpoint}: listed but no longer served; remove it")
    return problems


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


def test_every_route_is_swept_or_public(app):
    """Every rule in the URL map says how it is attacked, or why it is public (RELIABILITY 17)."""
    problems = unchecked_routes(app)
    assert not problems, "fix ROUTES / PUBLIC in tests/security/test_access_sweep.py:\n" + \
        "\n".join(problems)


def test_an_unlisted_new_route_fails_the_sweep(app):
    """The check above has teeth: routes added to a real app without a sweep entry are named."""
    from payments_site import create_app

    probe = create_app({k: v for k, v in app.config.items()
                        if k.isupper() and k != "SERVER_NAME"})
    assert unchecked_routes(probe) == []

    @probe.get("/orders/<order_id>")
    def order_detail(order_id: str) -> str:  # pragma: no cover - never requested
        return order_id

    @probe.get("/api/refunds/<refund_id>")
    def refund_detail(refund_id: str) -> str:  # pragma: no cover - never requested
        return refund_id

    # A new method on a public endpoint needs a review too.
    probe.add_url_rule("/api/products", endpoint="api.list_products",
                       view_func=probe.view_functions["api.list_products"],
                       methods=["DELETE"])
    problems = unchecked_routes(probe)
    assert len(problems) == 3, problems
    assert any(p.startswith("order_detail (/orders/<order_id>, GET): add it to ROUTES")
               for p in problems), problems
    assert any(p.startswith("refund_detail (/api/refunds/<refund_id>, GET)")
               for p in problems), problems
    assert any(p.startswith("api.list_products (/api/products, DELETE/GET)")
               for p in problems), problems


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
        assert response.status_code == 200, (endpoint, response.status_code)
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
