"""The app under test: keys and secrets, `create_app`'s config on this process's services,
and a test client that runs each request as a server does."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest
from flask import Flask, has_app_context
from flask.testing import FlaskClient
from jinja2 import BytecodeCache
from jinja2.bccache import Bucket
from sqlalchemy import event
from sqlalchemy.orm import Session

from payments_site import create_app
from payments_site.config import normalize_database_url
from payments_site.extensions import db

if TYPE_CHECKING:
    from tests.harness.services import Services

STRIPE_TEST_SECRET_KEY = "sk_test_" + "a" * 24
STRIPE_TEST_PUBLISHABLE_KEY = "pk_test_" + "b" * 24
WEBHOOK_SECRET = "whsec_" + "t" * 32
SECRET_KEY_FOR_TESTS = "k" * 48


def app_config(database_url: str, redis_url: str, emulator_url: str, mail_host: str,
               mail_port: int, instance_path: str) -> dict[str, Any]:
    """`create_app`'s config for these services (what the environment gives in production)."""
    return {
        "TESTING": True,
        "SECRET_KEY": SECRET_KEY_FOR_TESTS,
        "SQLALCHEMY_DATABASE_URI": normalize_database_url(database_url),
        "REDIS_URL": redis_url,
        "RATELIMIT_STORAGE_URI": _limiter_uri(redis_url),
        "STRIPE_SECRET_KEY": STRIPE_TEST_SECRET_KEY,
        "STRIPE_PUBLISHABLE_KEY": STRIPE_TEST_PUBLISHABLE_KEY,
        "STRIPE_WEBHOOK_SECRET": [WEBHOOK_SECRET],
        "STRIPE_API_BASE": emulator_url,
        "STRIPE_JS_URL": f"{emulator_url}/js.stripe.com/v3/",
        "STRIPE_RETRY_BASE_DELAY": 0.02,
        "STRIPE_TIMEOUT": 5.0,
        "MAIL_SERVER": mail_host,
        "MAIL_PORT": mail_port,
        "MAIL_DEFAULT_SENDER": "Demo Shop <receipts@shop.example>",
        # `flask worker` invoked inside a test process works in that process (no forks of
        # the test runner); tests/webhooks/test_worker_processes.py runs several.
        "WORKER_PROCESSES": 1,
    }


def _limiter_uri(url: str) -> str:
    return "redis+unix://" + url[len("unix://"):] if url.startswith("unix://") else url


def services_config(services: Services) -> dict[str, Any]:
    return app_config(services.database.url, services.redis.url, services.emulator.url,
                      services.mail.host, services.mail.port, str(services.instance))


class RequestClient(FlaskClient):
    """A test client whose every request runs in an app context of its own, as on a server:
    nothing a request keeps in `g` or in its database session reaches the next one.

    The test keeps its own app context (and database session) pushed around the requests, as
    if it shared the request's session: what the test added or changed is committed before a
    request, and when the request commits or rolls back, what the test had loaded is expired,
    so the test reads the request's writes.
    """

    def open(self, *args: Any, **kwargs: Any) -> Any:
        if not has_app_context():  # from a thread of the test's: nothing of its own to share
            with self.application.app_context():
                return super().open(*args, **kwargs)
        test_session = db.session()
        if test_session.is_active and (test_session.new or test_session.dirty
                                       or test_session.deleted):
            test_session.commit()
        ended: list[Session] = []

        def ended_elsewhere(session: Session, *_: Any) -> None:
            if session is not test_session:
                ended.append(session)

        sessions = db.session.session_factory
        event.listen(sessions, "after_commit", ended_elsewhere)
        event.listen(sessions, "after_rollback", ended_elsewhere)
        try:
            with self.application.app_context():
                response = super().open(*args, **kwargs)
        finally:
            event.remove(sessions, "after_commit", ended_elsewhere)
            event.remove(sessions, "after_rollback", ended_elsewhere)
        if ended:
            test_session.expire_all()
        return response


class CompiledTemplates(BytecodeCache):
    """Compiled templates kept for the whole test process (by template and source checksum).

    Every test builds a new app, so a new Jinja environment: compiling the same templates
    again for each one costs more than most tests.
    """

    def __init__(self) -> None:
        self.compiled: dict[str, bytes] = {}

    def load_bytecode(self, bucket: Bucket) -> None:
        code = self.compiled.get(bucket.key)
        if code is not None:
            bucket.bytecode_from_string(code)

    def dump_bytecode(self, bucket: Bucket) -> None:
        self.compiled[bucket.key] = bucket.bytecode_to_string()


COMPILED_TEMPLATES = CompiledTemplates()


def build_app(services: Services, monkeypatch: pytest.MonkeyPatch) -> Flask:
    """A new app on these services, with the test client below."""
    monkeypatch.setenv("INSTANCE_PATH", str(services.instance))
    app = create_app(services_config(services))
    app.test_client_class = RequestClient
    app.jinja_env.bytecode_cache = COMPILED_TEMPLATES
    return app


def close_app(app: Flask) -> None:
    """Give back the connections this app opened (its pool, its Redis client)."""
    with app.app_context():
        db.session.remove()
        db.engine.dispose()
    client = app.extensions.get("redis")
    if client is not None:
        client.close()
