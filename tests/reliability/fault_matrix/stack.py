"""The services one fault-matrix run owns and breaks, all on loopback.

A fresh PostgreSQL database, an embedded Redis on a TCP port of its own (stopped and
restarted on the same address), the Stripe emulator with a webhook registered to the app, an
SMTP sink, the app over real HTTP from this process, and `flask worker` as a separate process
(restarted when killed, as a supervisor would). All of them come from
`payments_site.devtools.stack`.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import stripe
from flask_migrate import upgrade

from payments_site import create_app
from payments_site.devtools.smtp_sink import MailSink
from payments_site.devtools.stack import (
    Database,
    RedisDatabase,
    Stack,
    StripeEmulator,
    ThreadedServer,
    Worker,
    app_environment,
    free_port,
)
from payments_site.extensions import db
from tests.harness.services import postgres_admin_url

SECRET_KEY = "f" * 48
STRIPE_SECRET_KEY = "sk_test_" + "m" * 24
STRIPE_PUBLISHABLE_KEY = "pk_test_" + "m" * 24
WEBHOOK_SECRET = "whsec_" + "m" * 32
STRIPE_TIMEOUT = 1.5  # seconds; an injected delay beyond it is a timeout
WEBHOOK_PATH = "/api/webhooks/stripe"

# No limit gets in the way of the load (the limiter itself still runs).
UNLIMITED = {"PAYMENT_LIMIT": "100000 per minute", "REFUND_LIMIT": "100000 per minute",
             "LOGIN_LIMIT_PER_IP": "100000 per minute",
             "LOGIN_LIMIT_PER_ACCOUNT": "100000 per minute"}


class TimedWebhooks:
    """WSGI middleware: how long the app takes to acknowledge each webhook delivery."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.lock = threading.Lock()
        self.samples: list[tuple[float, int]] = []

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        if environ.get("PATH_INFO") != WEBHOOK_PATH:
            return self.app(environ, start_response)
        started = time.perf_counter()
        status: list[int] = []

        def capture(code: str, headers: Any, exc_info: Any = None) -> Any:
            status.append(int(code[:3]))
            return start_response(code, headers, exc_info)

        result = self.app(environ, capture)
        try:
            body = b"".join(result)
        finally:
            if hasattr(result, "close"):
                result.close()
        with self.lock:
            self.samples.append((time.perf_counter() - started, status[0] if status else 0))
        return [body]


class MatrixStack:
    """Every service of one run, started on loopback and stopped by `close()`."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.parts = Stack()
        try:
            self._start()
        except BaseException:
            self.parts.stop()
            raise

    def _start(self) -> None:
        self.database = self.parts.add(Database(
            self.workdir / "db", name_prefix="payments_site_faults", postgres=True,
            admin_url=postgres_admin_url()))
        self.redis = self.parts.add(RedisDatabase(self.workdir / "redis", server=False,
                                                  port=free_port()))
        self.emulator = self.parts.add(StripeEmulator(log_dir=self.workdir))
        self.mail = self.parts.add(MailSink())
        self.env = app_environment(
            database=self.database, redis_db=self.redis, emulator=self.emulator,
            mail=self.mail, instance=self.workdir, stripe_secret_key=STRIPE_SECRET_KEY,
            stripe_publishable_key=STRIPE_PUBLISHABLE_KEY, webhook_secret=WEBHOOK_SECRET,
            APP_ENV="development", SECRET_KEY=SECRET_KEY, STRIPE_TIMEOUT=str(STRIPE_TIMEOUT),
            STRIPE_MAX_RETRIES="2", SWEEP_INTERVAL="3", LOG_LEVEL="WARNING", **UNLIMITED)
        os.environ["INSTANCE_PATH"] = str(self.workdir)
        os.environ["LOG_LEVEL"] = "WARNING"
        self.app = create_app({
            "SECRET_KEY": SECRET_KEY,
            "SQLALCHEMY_DATABASE_URI": self.database.sqlalchemy_url,
            "REDIS_URL": self.redis.url, "RATELIMIT_STORAGE_URI": self.redis.limiter_url,
            "STRIPE_SECRET_KEY": STRIPE_SECRET_KEY,
            "STRIPE_PUBLISHABLE_KEY": STRIPE_PUBLISHABLE_KEY,
            "STRIPE_WEBHOOK_SECRET": [WEBHOOK_SECRET], "STRIPE_API_BASE": self.emulator.url,
            "STRIPE_JS_URL": self.emulator.js_url,
            "STRIPE_TIMEOUT": STRIPE_TIMEOUT, "STRIPE_MAX_RETRIES": 2,
            "STRIPE_RETRY_BASE_DELAY": 0.1,
            "MAIL_SERVER": self.mail.host, "MAIL_PORT": self.mail.port, **UNLIMITED,
        })
        with self.app.app_context():
            upgrade()
        self._log_to_file()
        self.timed = TimedWebhooks(self.app)
        self.server = self.parts.add(ThreadedServer(self.timed))
        self.url = self.server.url
        self.worker = self.parts.add(Worker(self.env, self.workdir / "worker.log"))
        self.register_webhook()
        self.sdk = stripe.StripeClient(STRIPE_SECRET_KEY,
                                       base_addresses={"api": self.emulator.url},
                                       max_network_retries=0)

    def _log_to_file(self) -> None:
        """The app's own log (errors while a fault is on are expected) goes to a file."""
        root = logging.getLogger()
        for handler in list(root.handlers):
            root.removeHandler(handler)
        app_log = logging.FileHandler(self.workdir / "app.log")
        app_log.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        root.addHandler(app_log)
        logging.getLogger("werkzeug").setLevel(logging.WARNING)  # one line per request

    def register_webhook(self, duplicate: int = 1, shuffle: bool = False) -> None:
        self.emulator.register_webhook("app", f"{self.url}{WEBHOOK_PATH}", WEBHOOK_SECRET,
                                       duplicate=duplicate, shuffle=shuffle)

    def fault(self, **spec: Any) -> None:
        self.emulator.add_fault(**spec)

    def clear_faults(self) -> None:
        self.emulator.clear_faults()

    def terminate_db_connections(self) -> int:
        return self.database.terminate_connections()

    def close(self) -> None:
        with contextlib.suppress(Exception), self.app.app_context():
            db.engine.dispose()
        self.parts.stop()
