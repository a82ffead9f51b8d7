"""RELIABILITY 19 and 14: brute force is throttled, accounts are not enumerable, money routes
are rate limited. Limits are lowered through app.config so a handful of requests trips them."""

from __future__ import annotations

import re
import statistics
import time

import pytest

from tests.conftest import APP_KDF, DEFAULT_PASSWORD, csrf_token_from


@pytest.fixture
def customer(make_user):
    """The customer with a password hash of the app's own cost: what these tests measure and
    throttle is the real login (the suite's other fixtures use a cheaper hash)."""
    return make_user("customer@example.com", name="Jane Customer", kdf=APP_KDF)


def _login_form(client, email: str, password: str, ip: str = "10.0.0.1",
                forwarded_for: str | None = None):
    environ = {"REMOTE_ADDR": ip}
    headers = {"X-Forwarded-For": forwarded_for} if forwarded_for else {}
    page = client.get("/auth/login", environ_base=environ, headers=headers)
    return client.post("/auth/login", environ_base=environ, headers=headers, data={
        "email": email, "password": password,
        "csrf_token": csrf_token_from(page.get_data(as_text=True))})


def _token(client, email: str, password: str, ip: str = "10.0.0.1"):
    return client.post("/api/auth/token", json={"email": email, "password": password},
                       environ_base={"REMOTE_ADDR": ip})


def _assert_throttled(response) -> None:
    assert response.status_code == 429, response.status_code
    assert int(response.headers["Retry-After"]) > 0
    if response.is_json:
        assert response.get_json()["error"]["code"] == "rate_limited"


@pytest.mark.parametrize("via", ["form", "token"])
def test_login_is_throttled_per_ip(app, client, customer, via):
    """RELIABILITY 19: many emails from one IP → 429 with Retry-After; another IP still works."""
    app.config["LOGIN_LIMIT_PER_IP"] = "3 per minute"
    attempt = _login_form if via == "form" else _token
    for n in range(3):
        response = attempt(client, f"nobody{n}@example.com", "wrong-password-1")
        assert response.status_code in (400, 401), response.status_code
    _assert_throttled(attempt(client, "nobody9@example.com", "wrong-password-1"))
    # Even the right password is refused from the throttled address...
    _assert_throttled(attempt(client, customer.email, DEFAULT_PASSWORD))
    # ...while the customer on another address gets in.
    response = attempt(client, customer.email, DEFAULT_PASSWORD, ip="10.0.0.2")
    assert response.status_code in (200, 302)


@pytest.mark.parametrize("via", ["form", "token"])
def test_login_is_throttled_per_account_across_ips(app, client, customer, make_user, via):
    """RELIABILITY 19: one account tried from many IPs → 429; other accounts unaffected."""
    app.config["LOGIN_LIMIT_PER_ACCOUNT"] = "3 per minute"
    attempt = _login_form if via == "form" else _token
    for n in range(3):
        response = attempt(client, customer.email, "wrong-password-1", ip=f"10.1.0.{n + 1}")
        assert response.status_code in (400, 401)
    _assert_throttled(attempt(client, customer.email.upper(), DEFAULT_PASSWORD,
                              ip="10.1.0.99"))
    other = make_user("other@example.com")
    response = attempt(client, other.email, DEFAULT_PASSWORD, ip="10.1.0.99")
    assert response.status_code in (200, 302)


def test_unknown_and_known_emails_answer_alike(app, client, customer):
    """RELIABILITY 19: the same status and body whether the email exists or not."""
    unknown = _token(client, "nobody@example.com", "wrong-password-1")
    known = _token(client, customer.email, "wrong-password-1")
    assert unknown.status_code == known.status_code == 401
    assert unknown.get_json() == known.get_json()

    def page_text(response) -> str:
        return re.sub(r'(name="csrf[-_]token"[^>]*?(?:value|content)=")[^"]+', r"\1",
                      response.get_data(as_text=True))

    unknown = _login_form(client, "nobody@example.com", "wrong-password-1", ip="10.2.0.1")
    known = _login_form(client, customer.email, "wrong-password-1", ip="10.2.0.2")
    assert unknown.status_code == known.status_code == 400
    assert page_text(unknown).replace("nobody@example.com", "E") == \
        page_text(known).replace(customer.email, "E")


def test_unknown_and_known_emails_cost_the_same_kdf(app, customer):
    """RELIABILITY 19: an unknown email still runs the password KDF (no timing oracle)."""
    from payments_site.services.accounts import authenticate

    def median_seconds(email: str) -> float:
        runs = []
        for _ in range(5):
            started = time.perf_counter()
            assert authenticate(email, "wrong-password-1") is None
            runs.append(time.perf_counter() - started)
        return statistics.median(runs)

    authenticate("warm@example.com", "x")  # builds the dummy user's hash once
    known, unknown = median_seconds(customer.email), median_seconds("nobody@example.com")
    assert known > 0.005, "the password check is too cheap to be a KDF"
    assert 0.5 < unknown / known < 2.0, (known, unknown)


def test_passwords_are_stored_with_a_kdf(customer):
    """RELIABILITY 19: scrypt or PBKDF2 hashes, salted, never the password."""
    stored = customer.password_hash
    assert stored.startswith(("scrypt:", "pbkdf2:")), stored[:10]
    assert DEFAULT_PASSWORD not in stored
    assert customer.check_password(DEFAULT_PASSWORD)


def test_payment_route_is_rate_limited(app, client, customer, product, api_token):
    """RELIABILITY 14 and 19: too many checkouts from one user → 429 rate_limited + Retry-After;
    the throttled requests leave no payment behind."""
    from payments_site.extensions import db
    from payments_site.models import Payment

    app.config["PAYMENT_LIMIT"] = "2 per minute"
    headers = {"Authorization": f"Bearer {api_token(customer)}"}
    for quantity in (1, 2):
        response = client.post("/api/payments/process", headers=headers, json={
            "items": [{"product_id": product.id, "quantity": quantity}]})
        assert response.status_code == 201, response.get_json()
    response = client.post("/api/payments/process", headers=headers, json={
        "items": [{"product_id": product.id, "quantity": 3}]})
    _assert_throttled(response)
    db.session.expire_all()
    assert db.session.query(Payment).count() == 2


def test_retry_after_says_when_the_breached_window_ends(app, client, customer, product,
                                                       api_token):
    """A refused checkout says how long until its limit's window ends (here an hour's, so
    more than the 60 s a fixed answer would give); answers within the limit carry no
    X-RateLimit-* headers (they would cost Redis round trips on every request)."""
    app.config["PAYMENT_LIMIT"] = "1 per hour"
    headers = {"Authorization": f"Bearer {api_token(customer)}"}
    body = {"items": [{"product_id": product.id, "quantity": 1}]}
    allowed = client.post("/api/payments/process", headers=headers, json=body)
    assert allowed.status_code == 201, allowed.get_json()
    assert not [name for name in allowed.headers.keys() if name.lower().startswith("x-ratelimit")]
    refused = client.post("/api/payments/process", headers=headers, json=body)
    _assert_throttled(refused)
    assert 60 < int(refused.headers["Retry-After"]) <= 3600


def test_refund_route_is_rate_limited(app, client, admin, api_token):
    """RELIABILITY 19: too many refund requests from one admin → 429 before any work."""
    app.config["REFUND_LIMIT"] = "2 per minute"
    headers = {"Authorization": f"Bearer {api_token(admin)}"}
    for _ in range(2):
        response = client.post("/api/payments/refund", headers=headers,
                               json={"payment_id": "pay_unknown", "amount": 100})
        assert response.status_code == 404
    _assert_throttled(client.post("/api/payments/refund", headers=headers,
                                  json={"payment_id": "pay_unknown", "amount": 100}))


BALANCER = "10.0.0.254"  # every request reaches the app from the load balancer's address


def _app_behind_proxies(app, proxies: int):
    """A second app on the same database and Redis, built with TRUSTED_PROXIES=proxies."""
    from payments_site import create_app

    config = {k: v for k, v in app.config.items() if k.isupper() and k != "SERVER_NAME"}
    return create_app({**config, "TRUSTED_PROXIES": proxies, "LOGIN_LIMIT_PER_IP": "3 per minute"})


def test_behind_a_trusted_proxy_each_client_is_throttled_on_its_own(app, customer):
    """TRUSTED_PROXIES=1: the per-IP login limit keys on the client the balancer names in
    X-Forwarded-For, so one noisy client does not lock out everyone behind the balancer."""
    proxied = _app_behind_proxies(app, 1)
    noisy, other = proxied.test_client(), proxied.test_client()
    for n in range(3):
        response = _login_form(noisy, f"nobody{n}@example.com", "wrong-password-1",
                               ip=BALANCER, forwarded_for="203.0.113.5")
        assert response.status_code == 400, response.status_code
    _assert_throttled(_login_form(noisy, "nobody9@example.com", "wrong-password-1",
                                  ip=BALANCER, forwarded_for="203.0.113.5"))
    # Addresses the client wrote in front of the balancer's entry are not believed.
    _assert_throttled(_login_form(noisy, "nobody9@example.com", "wrong-password-1",
                                  ip=BALANCER, forwarded_for="198.51.100.7, 203.0.113.5"))
    # Another customer behind the same balancer still logs in.
    response = _login_form(other, customer.email, DEFAULT_PASSWORD, ip=BALANCER,
                           forwarded_for="203.0.113.6")
    assert response.status_code == 302, response.status_code


def test_without_trusted_proxies_x_forwarded_for_is_ignored(app, client, customer):
    """TRUSTED_PROXIES=0 (the default): a client cannot dodge the per-IP limit by sending a
    new X-Forwarded-For with every attempt."""
    assert app.config["TRUSTED_PROXIES"] == 0
    app.config["LOGIN_LIMIT_PER_IP"] = "3 per minute"
    for n in range(3):
        response = _login_form(client, f"nobody{n}@example.com", "wrong-password-1",
                               ip="10.0.0.7", forwarded_for=f"198.51.100.{n + 1}")
        assert response.status_code == 400, response.status_code
    _assert_throttled(_login_form(client, customer.email, DEFAULT_PASSWORD, ip="10.0.0.7",
                                  forwarded_for="198.51.100.99"))


def test_trusted_proxies_setting_is_read_and_checked(monkeypatch, tmp_path):
    """TRUSTED_PROXIES comes from the environment, defaults to 0 and refuses nonsense."""
    from payments_site.config import ConfigError, load_config

    monkeypatch.delenv("TRUSTED_PROXIES", raising=False)
    assert load_config(tmp_path)["TRUSTED_PROXIES"] == 0
    monkeypatch.setenv("TRUSTED_PROXIES", "2")
    assert load_config(tmp_path)["TRUSTED_PROXIES"] == 2
    for bad in ("-1", "yes"):
        monkeypatch.setenv("TRUSTED_PROXIES", bad)
        with pytest.raises(ConfigError, match="TRUSTED_PROXIES"):
            load_config(tmp_path)


# --- RELIABILITY 30: one budget per account, however spelled and whichever route -------------

SPELLINGS = ["customer@ＥＸＡＭＰＬＥ.com", "customer@example。com", "CUSTOMER@Example.COM",
             " customer@example.com "]


def test_every_spelling_of_an_address_is_the_account_login_looks_up():
    from payments_site.services.accounts import account_lookup_key

    assert {account_lookup_key(s) for s in SPELLINGS} == {"customer@example.com"}


@pytest.mark.parametrize("spelling", SPELLINGS)
def test_each_spelling_logs_in_and_counts_against_the_same_account(app, client, customer,
                                                                   spelling):
    """RELIABILITY 30: every spelling of an address spends the one account's budget."""
    app.config["LOGIN_LIMIT_PER_ACCOUNT"] = "3 per minute"
    for n, other in enumerate(s for s in SPELLINGS if s != spelling):
        assert _token(client, other, "wrong-password-1", ip=f"10.3.0.{n}").status_code == 401
    _assert_throttled(_token(client, spelling, DEFAULT_PASSWORD, ip="10.3.0.99"))
    # The same spelling, once the budget is fresh, signs in to that very account.
    app.config["LOGIN_LIMIT_PER_ACCOUNT"] = "100 per minute"
    assert _token(client, spelling, DEFAULT_PASSWORD, ip="10.3.0.98").status_code == 200


def test_login_page_and_token_route_share_one_budget(app, client, customer):
    """RELIABILITY 30: the login page and the token route spend one budget."""
    app.config["LOGIN_LIMIT_PER_ACCOUNT_IP"] = "3 per minute"
    assert _login_form(client, customer.email, "wrong-password-1").status_code == 400
    assert _token(client, customer.email, "wrong-password-1").status_code == 401
    assert _login_form(client, customer.email, "wrong-password-1").status_code == 400
    _assert_throttled(_token(client, customer.email, DEFAULT_PASSWORD))
    _assert_throttled(_login_form(client, customer.email, DEFAULT_PASSWORD))


def test_successful_sign_ins_do_not_use_up_the_account_budget(app, client, customer):
    app.config["LOGIN_LIMIT_PER_ACCOUNT_IP"] = app.config["LOGIN_LIMIT_PER_ACCOUNT"] = \
        "2 per minute"
    for _ in range(5):
        assert _token(client, customer.email, DEFAULT_PASSWORD).status_code == 200


def test_failures_from_elsewhere_do_not_lock_the_owner_out_of_a_known_place(app, customer):
    """An attacker on many addresses uses up the account's budget; the owner, on a browser
    and an address that signed in before, still gets in. A new place is throttled."""
    app.config["LOGIN_LIMIT_PER_ACCOUNT"] = "3 per minute"
    owner_browser = app.test_client()
    assert _login_form(owner_browser, customer.email, DEFAULT_PASSWORD,
                       ip="10.4.0.1").status_code == 302
    owner_browser.post("/auth/logout", data={"csrf_token": csrf_token_from(
        owner_browser.get("/").get_data(as_text=True))})
    attacker = app.test_client()
    for n in range(6):
        _login_form(attacker, customer.email, f"guess-{n}-password", ip=f"10.5.0.{n}")
    _assert_throttled(_login_form(attacker, customer.email, DEFAULT_PASSWORD, ip="10.5.0.50"))
    # The owner's browser, even from a new address (its signed cookie names the account)...
    assert _login_form(owner_browser, customer.email, DEFAULT_PASSWORD,
                       ip="10.4.0.2").status_code == 302
    # ...and an API client on the address the owner signed in from.
    assert _token(app.test_client(), customer.email, DEFAULT_PASSWORD,
                  ip="10.4.0.1").status_code == 200
    # A browser that never signed in, on a new address, is throttled with the attacker.
    _assert_throttled(_login_form(app.test_client(), customer.email, DEFAULT_PASSWORD,
                                  ip="10.6.0.1"))


def test_a_throttled_account_opens_again_when_the_window_ends(app, client, make_user):
    """Attempts refused while throttled do not count, so the lock never outlasts its window."""
    user = make_user("window@example.com")  # a cheap hash: the window, not the KDF, is timed
    app.config["LOGIN_LIMIT_PER_ACCOUNT"] = "2 per 3 seconds"
    window_ends = time.monotonic() + 3
    for n in range(2):
        _token(client, user.email, "wrong-password-1", ip=f"10.7.0.{n}")
    for _ in range(3):  # the attacker keeps trying while locked: refused, and not counted
        _assert_throttled(_token(client, user.email, "wrong-password-1", ip="10.7.0.9"))
    time.sleep(max(window_ends - time.monotonic(), 0) + 0.3)
    assert _token(client, user.email, DEFAULT_PASSWORD, ip="10.7.1.1").status_code == 200


def test_the_throttle_key_and_the_lookup_are_one_function():
    """Both read `accounts.account_lookup_key`: no second normaliser to drift."""
    import inspect

    from payments_site import ratelimits
    from payments_site.services import accounts

    assert "account_lookup_key" in inspect.getsource(ratelimits.account_digest)
    assert "account_lookup_key" in inspect.getsource(accounts.find_account)
    assert "find_account" in inspect.getsource(accounts.authenticate)
