"""Shared fixtures: the real Stripe emulator, database, Redis, SMTP sink and app for every test.

The suite runs against PostgreSQL and the Redis server on 127.0.0.1 when they answer (CI
requires them), and otherwise against SQLite and an embedded Redis. Each pytest session gets
its own database and its own Redis database number, so several runs can share one machine.
"""

from __future__ import annotations

import os
import re
import secrets
import tempfile
import threading
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
import redis
from flask import Flask
from flask.testing import FlaskClient
from rq import SimpleWorker
from rq.timeouts import TimerDeathPenalty
from sqlalchemy import text
from werkzeug.serving import make_server

from tests._services import (
    POSTGRES_START,
    REDIS_START,
    EmulatorProcess,
    ensure_service,
    free_port,
    postgres_admin_url,
)

# The browser harness (Playwright + Chromium) for tests/e2e and tests/emulator: imported here,
# once, so every folder shares one browser per session.
from tests.browser import (  # noqa: F401 (pytest finds fixtures by name)
    browser,
    console_errors,
    csp_violations,
    delete_output_dir,
    open_page,
    page,
)

WEBHOOK_SECRET = "whsec_" + "t" * 32
SECRET_KEY_FOR_TESTS = "k" * 48
STRIPE_TEST_SECRET_KEY = "sk_test_" + "a" * 24
STRIPE_TEST_PUBLISHABLE_KEY = "pk_test_" + "b" * 24
DEFAULT_PASSWORD = "correct-horse-battery"


# --- services --------------------------------------------------------------------------------

@pytest.fixture(scope="session")
def emulator_process() -> Iterator[EmulatorProcess]:
    proc = EmulatorProcess()
    yield proc
    failures = proc.contract_failures(strict_keys=(STRIPE_TEST_SECRET_KEY,))
    proc.stop()
    if failures:
        pytest.fail(_contract_message(failures), pytrace=False)


@pytest.fixture
def emulator(emulator_process: EmulatorProcess) -> Iterator[EmulatorProcess]:
    """A clean emulator for each test (data, webhooks and faults wiped).

    The emulator checks every request, response and event against Stripe's published schemas
    (tests/contract/); what this test broke fails it at teardown, listed one by one.
    """
    emulator_process.contract_failures()  # earlier tests' leftovers belong to them, not here
    emulator_process.reset()
    yield emulator_process
    failures = emulator_process.contract_failures(strict_keys=(STRIPE_TEST_SECRET_KEY,))
    if failures:
        pytest.fail(_contract_message(failures), pytrace=False)


def _contract_message(failures: list[str]) -> str:
    return "Stripe contract violations (tests/contract/schemas):\n" + "\n".join(failures)


@pytest.fixture(scope="session")
def database_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A fresh database for this session: PostgreSQL when it answers, else a SQLite file."""
    explicit = os.environ.get("TEST_DATABASE_URL")
    if explicit:
        yield explicit
        return
    if ensure_service("postgresql", 5432, POSTGRES_START):
        name = f"payments_site_test_{uuid.uuid4().hex[:10]}"
        admin = postgres_admin_url()
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        yield re.sub(r"/[^/]*$", f"/{name}", admin)
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        return
    path = tmp_path_factory.mktemp("db") / "test.db"
    yield f"sqlite:///{path}"


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A Redis database number of our own on the real server, else an embedded Redis."""
    explicit = os.environ.get("TEST_REDIS_URL")
    if explicit:
        yield explicit
        return
    if ensure_service("redis", 6379, REDIS_START):
        claim = redis.Redis(host="127.0.0.1", port=6379, db=0)
        token = secrets.token_hex(8)
        for number in range(1, 16):
            if claim.set(f"payments_site:test-db-claim:{number}", token, nx=True, ex=3600):
                yield f"redis://127.0.0.1:6379/{number}"
                if claim.get(f"payments_site:test-db-claim:{number}") == token.encode():
                    claim.delete(f"payments_site:test-db-claim:{number}")
                return
        raise RuntimeError("every Redis database number is claimed by another test run")
    from payments_site.devtools.embedded_redis import EmbeddedRedis

    server = EmbeddedRedis(Path(tempfile.mkdtemp(prefix="ps-redis-"))).start()
    yield server.url
    server.stop()


@pytest.fixture(scope="session")
def mail_server() -> Iterator[Any]:
    from payments_site.devtools.smtp_sink import MailSink

    sink = MailSink().start()
    yield sink
    sink.stop()


@pytest.fixture
def mail_sink(mail_server: Any) -> Any:
    """The real SMTP server the app sends to, emptied for each test."""
    mail_server.clear()
    return mail_server


# --- the app ---------------------------------------------------------------------------------

def app_config(database_url: str, redis_url: str, emulator_url: str, mail_host: str,
               mail_port: int, instance_path: str) -> dict[str, Any]:
    return {
        "TESTING": True,
        "SECRET_KEY": SECRET_KEY_FOR_TESTS,
        "SQLALCHEMY_DATABASE_URI": _normalize(database_url),
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
    }


def _normalize(url: str) -> str:
    from payments_site.config import normalize_database_url

    return normalize_database_url(url)


def _limiter_uri(url: str) -> str:
    return "redis+unix://" + url[len("unix://"):] if url.startswith("unix://") else url


class FreshGlobalsClient(FlaskClient):
    """A test client whose every request starts with an empty `flask.g`, as in production.

    The `app` fixture keeps one app context pushed for the whole test, and Flask reuses it
    for each test request, so `g` (Flask-Login's cached user, Flask-WTF's CSRF token) would
    otherwise leak from one client's request into another's (two users in one test).
    """

    def open(self, *args: Any, **kwargs: Any) -> Any:
        from flask import g, has_app_context

        if has_app_context():
            g.__dict__.clear()
        return super().open(*args, **kwargs)


@pytest.fixture(scope="session")
def _app(database_url: str, redis_url: str, emulator_process: EmulatorProcess,
         mail_server: Any, tmp_path_factory: pytest.TempPathFactory) -> Flask:
    instance = tmp_path_factory.mktemp("instance")
    os.environ["INSTANCE_PATH"] = str(instance)
    from flask_migrate import upgrade

    from payments_site import create_app

    app = create_app(app_config(database_url, redis_url, emulator_process.url,
                                mail_server.host, mail_server.port, str(instance)))
    app.test_client_class = FreshGlobalsClient
    with app.app_context():
        upgrade()  # the real migrations, on the real backend
    return app


def _clean_database(app: Flask) -> None:
    from payments_site.extensions import db

    with app.app_context():
        tables = [t.name for t in reversed(db.metadata.sorted_tables)]
        with db.engine.begin() as conn:
            if conn.dialect.name == "postgresql":
                conn.execute(text("TRUNCATE " + ", ".join(f'"{t}"' for t in tables)
                                  + " RESTART IDENTITY CASCADE"))
            else:
                for table in tables:
                    conn.execute(text(f'DELETE FROM "{table}"'))
        db.session.remove()


def _point_limiter_at(app: Flask) -> None:
    """Flask-Limiter keeps ONE storage on its (module-global) instance, and every create_app()
    re-binds it; a test that builds a second app must not leave ours counting elsewhere."""
    from limits.storage import storage_from_string
    from limits.strategies import STRATEGIES

    from payments_site.extensions import limiter

    limiter._storage = storage_from_string(app.config["RATELIMIT_STORAGE_URI"])
    limiter._limiter = STRATEGIES[app.config.get("RATELIMIT_STRATEGY", "fixed-window")](
        limiter._storage)


@pytest.fixture
def app(_app: Flask, emulator: EmulatorProcess, mail_sink: Any) -> Iterator[Flask]:
    """The app with an empty database, an empty Redis and a clean emulator; context pushed."""
    from payments_site.extensions import db

    _clean_database(_app)
    redis.Redis.from_url(_app.config["REDIS_URL"]).flushdb()
    _point_limiter_at(_app)
    config_before = dict(_app.config)
    with _app.app_context():
        yield _app
        db.session.remove()
    _app.config.clear()
    _app.config.update(config_before)


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


@pytest.fixture
def runner(app: Flask) -> Any:
    return app.test_cli_runner()


# --- users and logging in --------------------------------------------------------------------

@pytest.fixture
def make_user(app: Flask) -> Callable[..., Any]:
    """Create a user directly: make_user(email=None, role="customer", name=..., password=...)."""
    from payments_site.services.accounts import create_user

    def factory(email: str | None = None, *, role: str = "customer", name: str = "Test Customer",
                password: str = DEFAULT_PASSWORD, locale: str = "en_US") -> Any:
        user = create_user(email or f"user-{uuid.uuid4().hex[:8]}@example.com", password,
                           name=name, role=role)
        if locale != "en_US":
            from payments_site.extensions import db

            user.locale = locale
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


# --- the worker and a live server ------------------------------------------------------------

@pytest.fixture
def run_jobs(app: Flask) -> Callable[..., int]:
    """Run every queued job (and, by default, scheduled retries) in-process, like `flask worker`.

    Returns the number of jobs run.
    """
    from payments_site.queues import QUEUE_NAMES, get_queue, get_redis

    def run(include_scheduled: bool = True, max_rounds: int = 20) -> int:
        queues = [get_queue(name) for name in QUEUE_NAMES]
        total = 0
        for _ in range(max_rounds):
            if include_scheduled:
                for queue in queues:
                    registry = queue.scheduled_job_registry
                    for job_id in registry.get_job_ids():
                        job = queue.fetch_job(job_id)
                        registry.remove(job_id)
                        if job is not None:
                            queue.enqueue_job(job)
            pending = sum(q.count for q in queues)
            if pending == 0:
                break
            worker = SimpleWorker(queues, connection=get_redis())
            worker.work(burst=True, with_scheduler=False)
            total += pending
        # The jobs committed through the same scoped session; see their writes.
        from payments_site.extensions import db

        db.session.expire_all()
        return total

    return run


class ThreadWorker(SimpleWorker):
    """A SimpleWorker that can run off the main thread (signal handlers are main-thread only)."""

    # RQ's default job timeout uses SIGALRM, which only the main thread may install.
    death_penalty_class = TimerDeathPenalty

    def _install_signal_handlers(self) -> None:
        pass


class LiveServer:
    def __init__(self, app: Flask) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._server = make_server("127.0.0.1", self.port, app, threaded=True)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()


@pytest.fixture(scope="session")
def _live_server(_app: Flask) -> Iterator[LiveServer]:
    server = LiveServer(_app)
    yield server
    server.stop()


@pytest.fixture
def live_server(app: Flask, _live_server: LiveServer) -> LiveServer:
    """The app served over real HTTP on loopback (for the browser and the emulator's webhooks);
    the links in its emails point at it."""
    app.config["SITE_URL"] = _live_server.url
    return _live_server


@pytest.fixture
def background_worker(app: Flask) -> Iterator[None]:
    """A worker thread draining every queue while the test runs (for browser tests)."""
    from payments_site.queues import QUEUE_NAMES, get_queue, get_redis

    stop = threading.Event()

    def loop() -> None:
        with app.app_context():
            queues = [get_queue(name) for name in QUEUE_NAMES]
            worker = ThreadWorker(queues, connection=get_redis())
            while not stop.is_set():
                worker.work(burst=True, with_scheduler=True)
                stop.wait(0.2)

    thread = threading.Thread(target=loop, daemon=True)
    thread.start()
    yield
    stop.set()
    thread.join(timeout=10)
