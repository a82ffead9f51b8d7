"""payments_site: take card payments with Stripe and give customers a clean account area."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from dotenv import load_dotenv
from flask import Flask, Response, g, request
from flask.json.provider import DefaultJSONProvider
from flask_openapi3.openapi import OpenAPI
from werkzeug.middleware.proxy_fix import ProxyFix

from payments_site import metrics, stripe_gateway, tracing
from payments_site.blueprints import register_blueprints as add_blueprints
from payments_site.blueprints.api import OPENAPI_OPTIONS
from payments_site.blueprints.parsing import incoming_request_id, refuse_hostile_input
from payments_site.cli import register_commands
from payments_site.config import check_settings, load_config
from payments_site.errors import register_error_handlers
from payments_site.extensions import csrf, db, limiter, login_manager, mail, migrate
from payments_site.logging_filters import configure_logging
from payments_site.models.pool import install_idle_ping
from payments_site.models.sqlite import configure_sqlite
from payments_site.private_files import private_directory, touch_private
from payments_site.security import init_security
from payments_site.templating import init_templating


def create_app(test_config: dict[str, Any] | None = None) -> OpenAPI:
    """Build the app: config from the environment (or `test_config`), extensions, blueprints."""
    load_dotenv(Path.cwd() / ".env", override=False)
    # flask-openapi3's Flask: the API's declared schemas check each request through it.
    app = OpenAPI(__name__, instance_path=os.environ.get("INSTANCE_PATH") or None,
                  instance_relative_config=True, **OPENAPI_OPTIONS)
    private_directory(Path(app.instance_path))
    app.config.update(load_config(Path(app.instance_path)))
    if test_config:
        app.config.update(test_config)
    check_settings(app.config)
    register_private_database(app)

    register_proxies(app)
    register_json(app)
    register_logging(app)
    register_tracing(app)
    register_server_timing(app)
    register_input_guard(app)
    register_extensions(app)
    register_security(app)
    register_blueprints(app)
    register_template_helpers(app)
    register_cli(app)
    register_error_handlers(app)
    return app


def register_private_database(app: Flask) -> None:
    """A SQLite database file is created 0600 before SQLite opens it (SQLite gives its journal
    and WAL files the database file's mode)."""
    uri = str(app.config["SQLALCHEMY_DATABASE_URI"])
    if uri.startswith("sqlite:///") and not uri.startswith("sqlite:///:memory:"):
        path = Path(uri[len("sqlite:///"):].split("?", 1)[0])
        if path.parent.is_dir():
            touch_private(path)


def register_proxies(app: Flask) -> None:
    """Behind TRUSTED_PROXIES load balancers, take the client's address and scheme from the
    X-Forwarded-For/-Proto entries they appended (the per-IP rate limits key on that address).

    Only the last n entries are believed: anything earlier was sent by the client itself.
    The Host header is left alone (load balancers pass it through unchanged).
    """
    proxies = int(app.config.get("TRUSTED_PROXIES") or 0)
    if proxies > 0:
        proxied = ProxyFix(app.wsgi_app, x_for=proxies, x_proto=proxies)
        app.wsgi_app = proxied  # type: ignore[method-assign]


def register_json(app: Flask) -> None:
    """Every JSON answer (views, errors, probes) says `application/json; charset=utf-8` (API.md)."""
    if isinstance(app.json, DefaultJSONProvider):
        app.json.mimetype = "application/json; charset=utf-8"


def register_logging(app: Flask) -> None:
    """Configure the process's logging once (a second app changes nothing); every record is
    redacted."""
    configure_logging(os.environ.get("LOG_LEVEL", "INFO").upper(),
                      str(app.config.get("LOG_FORMAT") or "text"))


def register_tracing(app: Flask) -> None:
    """Every request gets a request id (payments_site.tracing), answered as `X-Request-ID`,
    and its time is counted by route template and status class (payments_site.metrics).

    Registered before every other hook, so their log lines carry the id too. Neither adds a
    database or Redis round trip.
    """

    @app.before_request
    def start_trace() -> None:
        g.request_clock = time.perf_counter()
        g.request_id, g.trace_token = tracing.start_request(
            incoming_request_id(), trusted=bool(app.config.get("TRUST_REQUEST_ID")))

    @app.after_request
    def answer_trace(response: Response) -> Response:
        request_id = g.get("request_id")
        if request_id:
            response.headers[tracing.REQUEST_ID_HEADER] = request_id
        started = g.get("request_clock")
        if started is not None:
            rule = request.url_rule
            metrics.http_request(request.method, rule.rule if rule is not None else None,
                                 response.status_code, time.perf_counter() - started)
        return response

    @app.teardown_request
    def end_trace(_error: BaseException | None) -> None:
        token = g.pop("trace_token", None)
        if token is not None:
            tracing.end_request(token)


def register_server_timing(app: Flask) -> None:
    """`Server-Timing: stripe;dur=…, app;dur=…` on every response when SERVER_TIMING is on.

    Splits a request's time into waiting for Stripe and our own work (the benchmarks read
    it; browsers show it in their network panel). Off by default: it reveals timings.
    """
    if not app.config.get("SERVER_TIMING"):
        return

    @app.before_request
    def start_server_timing() -> None:
        g.request_started = time.perf_counter()
        stripe_gateway.start_timing()

    @app.after_request
    def add_server_timing(response: Response) -> Response:
        started = g.get("request_started")
        timings = stripe_gateway.stop_timing()
        if started is not None and timings is not None:
            total = (time.perf_counter() - started) * 1000
            stripe_ms = timings.seconds * 1000
            response.headers["Server-Timing"] = (
                f'stripe;dur={stripe_ms:.2f};desc="{timings.calls} calls", '
                f"app;dur={max(total - stripe_ms, 0.0):.2f}")
        return response


def register_input_guard(app: Flask) -> None:
    """Refuse hostile shapes (deep JSON, NUL bytes) before anything else reads the request:
    registered ahead of the rate limiter, whose key functions read the login's email."""
    app.before_request(refuse_hostile_input)


def register_extensions(app: Flask) -> None:
    db.init_app(app)
    migrate.init_app(app, db, directory=str(Path(__file__).resolve().parent.parent /
                                            "migrations"))
    login_manager.init_app(app)
    csrf.init_app(app)
    mail.init_app(app)
    app.config.setdefault("RATELIMIT_STORAGE_URI", _limiter_storage_uri(app.config["REDIS_URL"]))
    limiter.init_app(app)
    with app.app_context():
        if app.config.get("DB_POOL_PRE_PING", True):
            install_idle_ping(db.engine, float(app.config.get("DB_POOL_PING_IDLE", 2.0)))
        if app.config["SQLALCHEMY_DATABASE_URI"].startswith("sqlite"):
            configure_sqlite(db.engine)


def _limiter_storage_uri(redis_url: str) -> str:
    if redis_url.startswith("unix://"):
        return "redis+unix://" + redis_url[len("unix://"):]
    return redis_url


def register_security(app: Flask) -> None:
    init_security(app)


def register_blueprints(app: OpenAPI) -> None:
    add_blueprints(app)


def register_template_helpers(app: Flask) -> None:
    init_templating(app)


def register_cli(app: Flask) -> None:
    # flask-openapi3 brings an `openapi` export command: the document is served instead.
    app.cli.commands.pop("openapi", None)
    register_commands(app)
