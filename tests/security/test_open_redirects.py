"""RELIABILITY 20: `next=` never sends anyone off the site, whatever trick it is written with.

A Location is judged the way a browser resolves it (WHATWG URL parsing strips tabs and
newlines, treats a backslash like a slash): it must resolve to this site's own host.
"""

from __future__ import annotations

from urllib.parse import quote, urljoin, urlsplit

import pytest

from tests.conftest import DEFAULT_PASSWORD, csrf_token_from

EVIL = [
    "https://evil.example", "http://evil.example/account", "//evil.example",
    "///evil.example", "////evil.example", "/\\evil.example", "\\\\evil.example",
    "/\\/evil.example", "\\/evil.example", "javascript:alert(1)", "JaVaScRiPt:alert(1)",
    "data:text/html,<script>alert(1)</script>", "https:evil.example", "http:/evil.example",
    " //evil.example", "/\t/evil.example", "/\n/evil.example", "/%09/evil.example",
    "/%5Cevil.example", "%2F%2Fevil.example", "https://localhost@evil.example",
    "//evil.example@localhost", "/ /evil.example",
]


def browser_host(location: str) -> str:
    """The host a browser would go to for this Location header (WHATWG-style cleanup)."""
    cleaned = "".join(ch for ch in location.strip() if ch not in "\t\n\r").replace("\\", "/")
    resolved = urljoin("http://localhost/auth/login", cleaned)
    parts = urlsplit(resolved)
    if parts.scheme not in ("http", "https"):
        return f"{parts.scheme}:"
    return parts.hostname or ""


def test_the_judge_spots_each_trick():
    assert browser_host("/account/payments") == "localhost"
    assert browser_host("/\\evil.example") == "evil.example"
    assert browser_host("/\t/evil.example") == "evil.example"
    assert browser_host("javascript:alert(1)") == "javascript:"


def _login(client, email: str, next_url: str):
    page = client.get("/auth/login?next=" + quote(next_url, safe=""))
    return client.post("/auth/login?next=" + quote(next_url, safe=""), data={
        "email": email, "password": DEFAULT_PASSWORD,
        "csrf_token": csrf_token_from(page.get_data(as_text=True))})


@pytest.mark.parametrize("target", EVIL)
def test_login_next_stays_on_the_site(app, customer, target):
    """RELIABILITY 20: after logging in, and when already logged in."""
    client = app.test_client()
    response = _login(client, customer.email, target)
    assert response.status_code == 302
    assert browser_host(response.headers["Location"]) == "localhost", response.headers
    again = client.get("/auth/login?next=" + quote(target, safe=""))
    assert again.status_code == 302
    assert browser_host(again.headers["Location"]) == "localhost", again.headers


@pytest.mark.parametrize("target", EVIL[:8])
def test_register_next_stays_on_the_site(app, target):
    """RELIABILITY 20: the sign-up form honours only local `next` targets too."""
    client = app.test_client()
    query = "?next=" + quote(target, safe="")
    page = client.get("/auth/register" + query)
    response = client.post("/auth/register" + query, data={
        "email": f"new{abs(hash(target))}@example.com", "name": "New Customer",
        "password": DEFAULT_PASSWORD, "confirm": DEFAULT_PASSWORD,
        "csrf_token": csrf_token_from(page.get_data(as_text=True))})
    assert response.status_code == 302, response.get_data(as_text=True)[:300]
    assert browser_host(response.headers["Location"]) == "localhost"


def test_local_next_is_followed(app, customer):
    """RELIABILITY 20: a real local page (with its query) is where the customer lands."""
    response = _login(app.test_client(), customer.email, "/account/payments?status=succeeded")
    assert response.headers["Location"] == "/account/payments?status=succeeded"


def test_a_protected_page_sends_anonymous_visitors_to_login_with_a_local_next(client):
    """RELIABILITY 20: the login redirect itself carries only a local path."""
    response = client.get("/account/payments?status=failed")
    assert response.status_code == 302
    location = response.headers["Location"]
    assert location.startswith("/auth/login?next=")
    assert browser_host(location) == "localhost"
