"""The app factory, configuration from the environment, health probes and error pages."""

from __future__ import annotations

import pytest

from payments_site import create_app
from payments_site.config import ConfigError, load_config, normalize_database_url


def test_testing_config_is_applied(app):
    assert app.config["TESTING"] is True
    assert app.config["STRIPE_API_BASE"].startswith("http://127.0.0.1:")


def test_production_refuses_to_start_without_secret_key(monkeypatch, tmp_path):
    monkeypatch.setenv("APP_ENV", "production")
    monkeypatch.delenv("SECRET_KEY", raising=False)
    with pytest.raises(ConfigError, match="SECRET_KEY"):
        load_config(tmp_path)


def test_production_requires_stripe_and_services(monkeypatch, tmp_path):
    monkeypatch.setenv("APP_ENV", "production")
    monkeypatch.setenv("SECRET_KEY", "x" * 40)
    for name in ("STRIPE_SECRET_KEY", "STRIPE_PUBLISHABLE_KEY", "STRIPE_WEBHOOK_SECRET",
                 "DATABASE_URL", "REDIS_URL"):
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(ConfigError, match="STRIPE_SECRET_KEY"):
        load_config(tmp_path)


def test_dev_secret_key_is_generated_once_and_kept(monkeypatch, tmp_path):
    monkeypatch.delenv("SECRET_KEY", raising=False)
    monkeypatch.delenv("APP_ENV", raising=False)
    first = load_config(tmp_path)["SECRET_KEY"]
    second = load_config(tmp_path)["SECRET_KEY"]
    assert first == second and len(first) >= 32
    assert (tmp_path / "secret_key").stat().st_mode & 0o077 == 0


def test_defaults_point_at_instance_folder(monkeypatch, tmp_path):
    for name in ("DATABASE_URL", "REDIS_URL", "STRIPE_WEBHOOK_SECRET"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("STRIPE_WEBHOOK_SECRET", "whsec_a, whsec_b")
    config = load_config(tmp_path)
    assert config["SQLALCHEMY_DATABASE_URI"] == f"sqlite:///{tmp_path / 'payments_site.db'}"
    assert config["REDIS_URL"] == f"unix://{tmp_path / 'redis.sock'}"
    assert config["STRIPE_WEBHOOK_SECRET"] == ["whsec_a", "whsec_b"]
    assert config["STRIPE_API_BASE"] == "https://api.stripe.com"


@pytest.mark.parametrize(("given", "expected"), [
    ("postgres://u@h/db", "postgresql+psycopg://u@h/db"),
    ("postgresql://u@h/db", "postgresql+psycopg://u@h/db"),
    ("sqlite:///x.db", "sqlite:///x.db"),
])
def test_database_url_uses_psycopg3(given, expected):
    assert normalize_database_url(given) == expected


def test_healthz(client):
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.get_json() == {"status": "ok"}


def test_readyz_checks_database_and_redis(client):
    response = client.get("/readyz")
    assert response.status_code == 200
    assert response.get_json()["checks"] == {"database": "ok", "redis": "ok"}


def test_readyz_names_the_failed_dependency(app, client):
    app.extensions.pop("redis", None)
    app.config["REDIS_URL"] = "redis://127.0.0.1:1/0"
    try:
        response = client.get("/readyz")
    finally:
        app.extensions.pop("redis", None)
    assert response.status_code == 503
    body = response.get_json()
    assert body["checks"]["database"] == "ok"
    assert body["checks"]["redis"].startswith("failed")


def test_unknown_api_route_is_json_404(client):
    response = client.get("/api/nothing-here")
    assert response.status_code == 404
    assert response.get_json() == {"error": {"code": "not_found", "message": "Not found."}}


def test_unknown_page_is_html_404(client):
    response = client.get("/nothing-here")
    assert response.status_code == 404
    assert response.mimetype == "text/html"
    assert "Page not found" in response.get_data(as_text=True)


SECRET_DETAIL = "secret internals sk_test_123 at /srv/app.py line 3"


@pytest.fixture
def broken(app):
    """A fresh app on the same database with two failing routes (an API one and a page) that
    flush a half-written product and then raise, and an after-request hook that commits
    whatever the session still holds, as any later work on the request would.

    `broken.seen` records, per request, how many half-written products the session could
    still see once the error handler had answered (before Flask-SQLAlchemy's teardown).
    """
    from sqlalchemy import func, select

    from payments_site.extensions import db
    from payments_site.models import Product

    # A new app, so failing routes can be added before its first request.
    failing = create_app({k: v for k, v in app.config.items()
                          if k.isupper() and k not in ("SERVER_NAME",)})
    failing.config["PROPAGATE_EXCEPTIONS"] = False
    failing.testing = False
    seen: list[int] = []

    def write_half_and_fail() -> str:
        db.session.add(Product(name="half-written", unit_amount=100, currency="usd"))
        db.session.flush()
        raise RuntimeError(SECRET_DETAIL)

    failing.add_url_rule("/api/_boom_for_test", "api_boom", write_half_and_fail)
    failing.add_url_rule("/_boom_page_for_test", "page_boom", write_half_and_fail)

    @failing.after_request
    def later_work_commits(response):  # runs after the error handler, before teardown
        seen.append(db.session.scalar(select(func.count()).select_from(Product)
                                      .where(Product.name == "half-written")))
        db.session.commit()
        return response

    failing.seen = seen  # type: ignore[attr-defined]
    return failing


def _half_written_products(app) -> int:
    from sqlalchemy import func, select

    from payments_site.extensions import db
    from payments_site.models import Product

    with app.app_context():
        return db.session.scalar(select(func.count()).select_from(Product))


def test_500_rolls_back_before_anything_else_can_commit(broken):
    """The error handler rolls the session back itself: the failed view's flushed row is
    gone before the rest of the request runs, so a later commit cannot keep it."""
    response = broken.test_client().get("/api/_boom_for_test")
    assert response.status_code == 500
    assert response.get_json()["error"]["code"] == "internal_error"
    body = response.get_data(as_text=True)
    assert "secret internals" not in body and "sk_test" not in body and "Traceback" not in body
    assert broken.seen == [0]
    assert _half_written_products(broken) == 0


def test_500_page_for_a_browser_shows_no_internals(broken):
    """A page route that fails answers the HTML error page: status 500, no exception text,
    no traceback, no file paths; and nothing it wrote is kept."""
    response = broken.test_client().get("/_boom_page_for_test",
                                        headers={"Accept": "text/html,*/*;q=0.8"})
    assert response.status_code == 500
    assert response.mimetype == "text/html"
    body = response.get_data(as_text=True)
    assert "Something went wrong" in body
    for internal in ("secret internals", "sk_test", "Traceback", "RuntimeError", "/srv/",
                     ".py", "write_half_and_fail"):
        assert internal not in body, internal
    assert broken.seen == [0]
    assert _half_written_products(broken) == 0


JSON = "application/json; charset=utf-8"  # API.md: "Requests and responses are ..."


def test_every_json_answer_says_utf8(app, client, customer, api_token):
    """API.md: probes, the document, data, and every kind of error carry the charset."""
    app.config["LOGIN_LIMIT_PER_IP"] = "2 per minute"
    token = {"Authorization": f"Bearer {api_token(customer)}"}
    answers = {
        "healthz": client.get("/healthz"),
        "readyz": client.get("/readyz"),
        "openapi": client.get("/api/openapi.json"),
        "products": client.get("/api/products"),
        "me": client.get("/api/auth/me", headers=token),
        "anonymous 401": client.get("/api/auth/me"),
        "unknown api 404": client.get("/api/nothing-here"),
        "wrong method 405": client.delete("/api/products", headers=token),
        "invalid body 400": client.post("/api/payments/process", headers=token,
                                        json={"items": "nope"}),
        "page 404 asked as JSON": client.get("/nothing-here",
                                             headers={"Accept": "application/json"}),
    }
    for _ in range(3):
        throttled = client.post("/api/auth/token", json={"email": "nobody@example.com",
                                                         "password": "wrong-password-1"})
    answers["throttled 429"] = throttled
    statuses = {name: r.status_code for name, r in answers.items()}
    assert statuses == {"healthz": 200, "readyz": 200, "openapi": 200, "products": 200,
                        "me": 200, "anonymous 401": 401, "unknown api 404": 404,
                        "wrong method 405": 405, "invalid body 400": 400,
                        "page 404 asked as JSON": 404, "throttled 429": 429}
    types = {name: r.headers["Content-Type"] for name, r in answers.items()}
    assert types == dict.fromkeys(answers, JSON)
    assert all(r.is_json and r.get_json() is not None for r in answers.values())
    # Pages stay HTML.
    assert client.get("/").headers["Content-Type"] == "text/html; charset=utf-8"


def test_create_app_twice_gives_independent_apps(app):
    other = create_app({"TESTING": True, "SQLALCHEMY_DATABASE_URI": "sqlite://",
                        "SECRET_KEY": "other"})
    assert other is not app and other.config["SECRET_KEY"] == "other"
