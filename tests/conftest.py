"""Fixtures every test can use: `app`, `client`, `runner`, users and logging in.

Each test gets a new app (`create_app`) on this process's real services (tests/harness/):
an emptied database, an emptied Redis database, a clean Stripe emulator and an empty SMTP
sink. The test runs inside the app's context (to use `db.session` and the services), and the
test client runs each request in an app context of its own, as a server does.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

import pytest
import stripe
from flask import Flask
from flask.testing import FlaskClient
from werkzeug.security import generate_password_hash

from payments_site.devtools.smtp_sink import MailSink
from payments_site.devtools.stack import StripeEmulator
from payments_site.extensions import db
from payments_site.models import User, utcnow
from payments_site.services.accounts import normalize_email
from tests.harness.config import (  # noqa: F401 (tests import these names from here)
    SECRET_KEY_FOR_TESTS,
    STRIPE_TEST_PUBLISHABLE_KEY,
    STRIPE_TEST_SECRET_KEY,
    WEBHOOK_SECRET,
    app_config,
    build_app,
    close_app,
)

if TYPE_CHECKING:
    from tests.harness.database import DatabaseCleaner
    from tests.harness.services import Services

# The harness's fixtures: the services, the database, the worker and the browser.
pytest_plugins = ["tests.harness.services", "tests.harness.database", "tests.harness.jobs",
                  "tests.browser"]

DEFAULT_PASSWORD = "correct-horse-battery"


@pytest.fixture
def app(services: Services, database: DatabaseCleaner, emulator: StripeEmulator,
        mail_sink: MailSink, monkeypatch: pytest.MonkeyPatch) -> Iterator[Flask]:
    """A new app on an empty database, an empty Redis and a clean emulator; context pushed."""
    database.clean()
    services.redis.flush()
    app = build_app(services, monkeypatch)
    try:
        with app.app_context():
            yield app
    finally:
        close_app(app)


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


@pytest.fixture
def runner(app: Flask) -> Any:
    return app.test_cli_runner()


@pytest.fixture
def sc(emulator: StripeEmulator) -> stripe.StripeClient:
    """The official Stripe SDK on the emulator with the app's key, to arrange and inspect
    Stripe's side of a test."""
    return stripe.StripeClient(STRIPE_TEST_SECRET_KEY, base_addresses={"api": emulator.url},
                               max_network_retries=0)


@pytest.fixture
def sdk(sc: stripe.StripeClient) -> stripe.StripeClient:
    return sc


# --- users and logging in --------------------------------------------------------------------

# Users made by fixtures get a real scrypt hash with a small work factor (N=1024), so that
# logging in costs milliseconds instead of the app's ~100 ms (as Django advises for tests).
# The app hashes with its own cost everything it creates (sign-up, `flask users create`,
# password changes); pass `kdf=APP_KDF` where the KDF's cost is what is tested.
FIXTURE_KDF = "scrypt:1024:8:1"
APP_KDF = "scrypt"
_password_hashes: dict[tuple[str, str], str] = {}


def password_hash(password: str, kdf: str = FIXTURE_KDF) -> str:
    """A salted scrypt hash of `password`, made once per test process and method."""
    if (password, kdf) not in _password_hashes:
        _password_hashes[password, kdf] = generate_password_hash(password, method=kdf)
    return _password_hashes[password, kdf]


@pytest.fixture
def make_user(app: Flask) -> Callable[..., Any]:
    """Create a user directly: make_user(email=None, role="customer", name=..., password=...,
    kdf=FIXTURE_KDF, verified=True) (verified: the address is confirmed)."""

    def factory(email: str | None = None, *, role: str = "customer", name: str = "Test Customer",
                password: str = DEFAULT_PASSWORD, locale: str = "en_US",
                kdf: str = FIXTURE_KDF, verified: bool = True) -> User:
        user = User(email=normalize_email(email or f"user-{uuid.uuid4().hex[:8]}@example.com"),
                    name=name, role=role, password_hash=password_hash(password, kdf),
                    locale=locale, email_verified_at=utcnow() if verified else None)
        db.session.add(user)
        db.session.commit()
        return user

    return factory


def csrf_token_from(html: str) -> str:
    match = re.search(r'name="csrf-token" content="([^"]+)"', html)
    assert match, "page has no csrf-token meta tag"
    return match.group(1)


class BrowserSession:
    """A logged-in test client that sends the CSRF header like the pages' scripts do."""

    def __init__(self, client: FlaskClient, user: Any) -> None:
        self.client = client
        self.user = user
        home = client.get("/", follow_redirects=True)
        self.csrf_token = csrf_token_from(home.get_data(as_text=True))

    def _headers(self, headers: dict[str, str] | None) -> dict[str, str]:
        return {"X-CSRFToken": self.csrf_token, **(headers or {})}

    def get(self, path: str, **kwargs: Any) -> Any:
        return self.client.get(path, **kwargs)

    def post(self, path: str, json: Any = None, headers: dict[str, str] | None = None,
             **kwargs: Any) -> Any:
        return self.client.post(path, json=json, headers=self._headers(headers), **kwargs)

    def delete(self, path: str, json: Any = None, headers: dict[str, str] | None = None,
               **kwargs: Any) -> Any:
        return self.client.delete(path, json=json, headers=self._headers(headers), **kwargs)


def login(client: FlaskClient, email: str, password: str = DEFAULT_PASSWORD) -> Any:
    form = client.get("/auth/login")
    token = csrf_token_from(form.get_data(as_text=True))
    return client.post("/auth/login", data={"email": email, "password": password,
                                            "csrf_token": token})


@pytest.fixture
def login_as(app: Flask) -> Callable[..., BrowserSession]:
    """login_as(user) -> a fresh client logged in through the real login form."""

    def do_login(user: Any, password: str = DEFAULT_PASSWORD) -> BrowserSession:
        client = app.test_client()
        response = login(client, user.email, password)
        assert response.status_code == 302, response.get_data(as_text=True)[:500]
        return BrowserSession(client, user)

    return do_login


@pytest.fixture
def customer(make_user: Callable[..., Any]) -> Any:
    return make_user("customer@example.com", name="Jane Customer")


@pytest.fixture
def admin(make_user: Callable[..., Any]) -> Any:
    return make_user("admin@example.com", role="admin", name="Ada Admin")


@pytest.fixture
def api_token(client: FlaskClient) -> Callable[..., str]:
    """api_token(user) -> a Bearer token from POST /api/auth/token."""

    def issue(user: Any, password: str = DEFAULT_PASSWORD) -> str:
        response = client.post("/api/auth/token", json={"email": user.email,
                                                         "password": password})
        assert response.status_code == 200, response.get_json()
        return str(response.get_json()["token"])

    return issue


@pytest.fixture
def product(app: Flask) -> Any:
    from payments_site.services.catalog import create_product

    return create_product("Ceramic mug", 1999, "usd")
