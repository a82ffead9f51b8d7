"""RELIABILITY 22: cookies, the Content-Security-Policy and cache headers."""

from __future__ import annotations

from urllib.parse import urlsplit

from payments_site.config import load_config
from tests.conftest import DEFAULT_PASSWORD, csrf_token_from


def _csp(response) -> dict[str, str]:
    policy = response.headers["Content-Security-Policy"]
    return {part.split()[0]: part for part in (p.strip() for p in policy.split(";")) if part}


def test_csp_allows_stripe_js_and_nothing_else_foreign(app, client):
    response = client.get("/")
    csp = _csp(response)
    stripe = urlsplit(app.config["STRIPE_JS_URL"])
    origin = f"{stripe.scheme}://{stripe.netloc}"
    assert csp["default-src"] == "default-src 'self'"
    assert origin in csp["script-src"]
    assert "'unsafe-inline'" not in csp["script-src"] and "'unsafe-eval'" not in csp["script-src"]
    assert "*" not in response.headers["Content-Security-Policy"]
    assert origin in csp["frame-src"]
    assert csp["frame-ancestors"] == "frame-ancestors 'none'"
    assert csp["object-src"] == "object-src 'none'"
    foreign = {token for part in csp.values() for token in part.split()[1:]
               if token.startswith("http") and token != origin
               and not token.endswith("stripe.com")
               and token != f"{urlsplit(app.config['STRIPE_API_BASE']).scheme}://"
                            f"{urlsplit(app.config['STRIPE_API_BASE']).netloc}"}
    assert foreign == set()


def test_basic_security_headers(client):
    response = client.get("/")
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["Referrer-Policy"] == "strict-origin-when-cross-origin"
    assert response.headers["X-Frame-Options"] == "DENY"
    assert "Strict-Transport-Security" not in response.headers  # not in development


def test_hsts_in_production(app, client):
    app.config["PRODUCTION"] = True
    response = client.get("/healthz")
    assert response.headers["Strict-Transport-Security"].startswith("max-age=31536000")


def test_session_cookie_is_httponly_and_lax(client, customer):
    page = client.get("/auth/login")
    response = client.post("/auth/login", data={
        "email": customer.email, "password": DEFAULT_PASSWORD,
        "csrf_token": csrf_token_from(page.get_data(as_text=True))})
    cookies = [c for c in response.headers.getlist("Set-Cookie") if c.startswith("session=")]
    assert cookies, response.headers
    cookie = cookies[-1]
    assert "HttpOnly" in cookie
    assert "SameSite=Lax" in cookie


def test_session_cookie_secure_in_production(monkeypatch, tmp_path):
    monkeypatch.setenv("APP_ENV", "production")
    for name, value in {"SECRET_KEY": "Yq4-tB7wN1xZ9mK3pL6sD0fH2jR8vC5gE_aU",
                        "STRIPE_SECRET_KEY": "sk_x",
                        "STRIPE_PUBLISHABLE_KEY": "pk_x", "STRIPE_WEBHOOK_SECRET": "whsec_x",
                        "DATABASE_URL": "postgresql://db/x", "REDIS_URL": "redis://r",
                        "SITE_URL": "https://shop.example"}.items():
        monkeypatch.setenv(name, value)
    config = load_config(tmp_path)
    assert config["SESSION_COOKIE_SECURE"] is True
    assert config["REMEMBER_COOKIE_SECURE"] is True
    assert config["SESSION_COOKIE_HTTPONLY"] is True
    assert config["SESSION_COOKIE_SAMESITE"] == "Lax"


def test_account_and_api_pages_are_not_cached(login_as, customer):
    session = login_as(customer)
    for path in ("/account/payments", "/api/auth/me"):
        response = session.get(path)
        assert response.headers["Cache-Control"] == "no-store", path


def test_public_catalog_may_be_cached_by_the_browser(client):
    assert client.get("/").headers.get("Cache-Control") != "no-store"


def test_receipt_pdf_is_not_cached(app, client, emulator, make_user, admin, product, api_token,
                                   run_jobs, login_as):
    """RELIABILITY 22: a receipt PDF carries `Cache-Control: no-store` (and nosniff)."""
    from tests.security.flows import buy_and_refund

    app.config["PAYMENT_LIMIT"] = app.config["REFUND_LIMIT"] = "1000 per minute"
    owner = make_user()
    objects = buy_and_refund(client, emulator.url, owner, admin, product, api_token, run_jobs)
    session = login_as(owner)
    for number in (objects.receipt_number, objects.refund_note_number):
        response = session.get(f"/receipts/{number}.pdf")
        assert response.status_code == 200
        assert response.mimetype == "application/pdf"
        assert response.headers["Cache-Control"] == "no-store"
        assert response.headers["X-Content-Type-Options"] == "nosniff"
        assert "attachment" in response.headers["Content-Disposition"]
    for path in ("/account/receipts", "/account/cards", "/checkout",
                 f"/account/payments/{objects.payment_id}"):
        assert session.get(path).headers["Cache-Control"] == "no-store", path


def test_error_pages_keep_the_security_headers(client):
    """RELIABILITY 22: a 404 (and a JSON 401) still carry the CSP and nosniff."""
    for path in ("/no-such-page", "/api/payments/history"):
        response = client.get(path)
        assert response.status_code in (401, 404)
        assert "Content-Security-Policy" in response.headers, path
        assert response.headers["X-Content-Type-Options"] == "nosniff"
