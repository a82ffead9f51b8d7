"""The fault matrix: inject each infrastructure fault under a steady mixed load, then check
that nothing was lost, doubled or left inconsistent (RELIABILITY 13, 14, 15, 25, 26, 27).

Run it with `python -m tests.reliability.fault_matrix` (`make reliability` does). It owns
every piece it breaks, all on loopback: a fresh PostgreSQL database, an embedded Redis on a
fixed port, the Stripe emulator (with a webhook registered to the app), an SMTP sink, the
app over real HTTP, and `flask worker` as a separate process.

For each fault, a few client threads keep buying (new cards confirmed with the publishable
key and the client secret as Stripe.js does, saved cards, 3-D Secure, declines), an admin
keeps refunding, and the emulator keeps sending webhooks. After each fault the operator's
tools run (reconcile, the sweeper), the worker drains, and the invariants are checked:

- every PaymentIntent at Stripe maps to exactly one payment, and no payment has two;
- local status, amount, currency, amount refunded and each refund equal Stripe's;
- every succeeded payment has exactly one receipt and exactly one receipt email (a row sent
  and the message in the SMTP sink; a repeat of the same Message-ID after a worker kill is
  counted, not an error);
- no payment's refunds add up to more than was captured.

It prints RELIABILITY.md's "Figures to report" and exits 1 on any violation.
"""

from __future__ import annotations

import argparse
import contextlib
import email
import email.policy
import logging
import os
import random
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import requests
import stripe
from werkzeug.serving import make_server

from tests._services import (
    POSTGRES_START,
    ROOT,
    EmulatorProcess,
    ensure_service,
    free_port,
    postgres_admin_url,
)

SECRET_KEY = "f" * 48
STRIPE_SECRET_KEY = "sk_test_" + "m" * 24
STRIPE_PUBLISHABLE_KEY = "pk_test_" + "m" * 24
WEBHOOK_SECRET = "whsec_" + "m" * 32
PASSWORD = "fault-matrix-password"
STRIPE_TIMEOUT = 1.5  # seconds; an injected delay beyond it is a timeout

VISA = "4242424242424242"
NEW_CARDS = [  # (number, weight, 3-D Secure outcome when asked)
    (VISA, 55, None),
    ("4000000000000002", 8, None),           # card_declined
    ("4000000000009995", 5, None),           # insufficient_funds
    ("4000000000000069", 3, None),           # expired_card
    ("4000002500003155", 12, True),          # 3DS, completed
    ("4000000000003220", 6, False),          # 3DS, failed
]
SAVED_3DS_EVERY_TIME = "4000002760003184"


# --- the stack ---------------------------------------------------------------------------------

class TimedWebhooks:
    """WSGI middleware: how long the app takes to acknowledge each webhook delivery."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.lock = threading.Lock()
        self.samples: list[tuple[float, int]] = []

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        if environ.get("PATH_INFO") != "/api/webhooks/stripe":
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


class WorkerProcess:
    """`flask worker` in its own process, restarted when it dies (as a supervisor would)."""

    def __init__(self, env: dict[str, str], log_path: Path) -> None:
        self.env = env
        self.log_path = log_path
        self.proc: subprocess.Popen[bytes] | None = None
        self.kills = 0
        self.restarts = 0

    def start(self) -> None:
        log = open(self.log_path, "ab")  # noqa: SIM115 (owned by the process)
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "flask", "--app", "payments_site", "worker"],
            cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT)

    def ensure_running(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            self.restarts += 1
            self.start()

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)
            self.kills += 1

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()


class Stack:
    """Every service of one run, started on loopback and torn down at the end."""

    def __init__(self, workdir: Path) -> None:
        from payments_site.devtools.embedded_redis import EmbeddedRedis
        from payments_site.devtools.smtp_sink import MailSink

        self.workdir = workdir
        if not ensure_service("postgresql", 5432, POSTGRES_START):
            raise SystemExit("the fault matrix needs PostgreSQL on 127.0.0.1:5432")
        self.db_name = f"payments_site_faults_{uuid.uuid4().hex[:10]}"
        self.admin_url = postgres_admin_url()
        with psycopg.connect(self.admin_url, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{self.db_name}"')
        self.database_url = re.sub(r"/[^/]*$", f"/{self.db_name}", self.admin_url)
        self.redis = EmbeddedRedis(workdir / "redis", port=free_port()).start()
        self.emulator = EmulatorProcess()
        self.mail = MailSink().start()
        self.env = {
            **os.environ,
            "APP_ENV": "development", "SECRET_KEY": SECRET_KEY, "INSTANCE_PATH": str(workdir),
            "DATABASE_URL": self.database_url, "REDIS_URL": self.redis.url,
            "STRIPE_SECRET_KEY": STRIPE_SECRET_KEY,
            "STRIPE_PUBLISHABLE_KEY": STRIPE_PUBLISHABLE_KEY,
            "STRIPE_WEBHOOK_SECRET": WEBHOOK_SECRET, "STRIPE_API_BASE": self.emulator.url,
            "STRIPE_JS_URL": f"{self.emulator.url}/js.stripe.com/v3/",
            "STRIPE_TIMEOUT": str(STRIPE_TIMEOUT), "STRIPE_MAX_RETRIES": "2",
            "MAIL_SERVER": self.mail.host, "MAIL_PORT": str(self.mail.port),
            "SWEEP_INTERVAL": "3", "LOG_LEVEL": "WARNING",
            "PAYMENT_LIMIT": "100000 per minute", "REFUND_LIMIT": "100000 per minute",
            "LOGIN_LIMIT_PER_IP": "100000 per minute",
            "LOGIN_LIMIT_PER_ACCOUNT": "100000 per minute",
        }
        os.environ["INSTANCE_PATH"] = str(workdir)
        os.environ["LOG_LEVEL"] = "WARNING"
        from flask_migrate import upgrade

        from payments_site import create_app

        self.app = create_app({
            "SECRET_KEY": SECRET_KEY,
            "SQLALCHEMY_DATABASE_URI": _normalize(self.database_url),
            "REDIS_URL": self.redis.url, "RATELIMIT_STORAGE_URI": self.redis.url,
            "STRIPE_SECRET_KEY": STRIPE_SECRET_KEY,
            "STRIPE_PUBLISHABLE_KEY": STRIPE_PUBLISHABLE_KEY,
            "STRIPE_WEBHOOK_SECRET": [WEBHOOK_SECRET], "STRIPE_API_BASE": self.emulator.url,
            "STRIPE_JS_URL": f"{self.emulator.url}/js.stripe.com/v3/",
            "STRIPE_TIMEOUT": STRIPE_TIMEOUT, "STRIPE_MAX_RETRIES": 2,
            "STRIPE_RETRY_BASE_DELAY": 0.1,
            "MAIL_SERVER": self.mail.host, "MAIL_PORT": self.mail.port,
            "PAYMENT_LIMIT": "100000 per minute", "REFUND_LIMIT": "100000 per minute",
            "LOGIN_LIMIT_PER_IP": "100000 per minute",
            "LOGIN_LIMIT_PER_ACCOUNT": "100000 per minute",
        })
        with self.app.app_context():
            upgrade()
        # The app's own log (errors while a fault is on are expected) goes to a file.
        root = logging.getLogger()
        for handler in list(root.handlers):
            root.removeHandler(handler)
        app_log = logging.FileHandler(workdir / "app.log")
        app_log.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        root.addHandler(app_log)
        logging.getLogger("werkzeug").setLevel(logging.WARNING)  # one line per request
        self.timed = TimedWebhooks(self.app)
        port = free_port()
        self.url = f"http://127.0.0.1:{port}"
        self.server = make_server("127.0.0.1", port, self.timed, threaded=True)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.worker = WorkerProcess(self.env, workdir / "worker.log")
        self.worker.start()
        self.register_webhook()
        self.sdk = stripe.StripeClient(STRIPE_SECRET_KEY,
                                       base_addresses={"api": self.emulator.url},
                                       max_network_retries=0)

    def register_webhook(self, duplicate: int = 1, shuffle: bool = False) -> None:
        requests.post(f"{self.emulator.url}/_config/webhooks/app", json={
            "url": f"{self.url}/api/webhooks/stripe", "secret": WEBHOOK_SECRET,
            "duplicate": duplicate, "shuffle": shuffle}, timeout=5).raise_for_status()

    def fault(self, **spec: Any) -> None:
        requests.post(f"{self.emulator.url}/_config/faults", json=spec,
                      timeout=5).raise_for_status()

    def clear_faults(self) -> None:
        requests.delete(f"{self.emulator.url}/_config/faults", timeout=5).raise_for_status()

    def terminate_db_connections(self) -> int:
        with psycopg.connect(self.database_url, autocommit=True) as conn:
            rows = conn.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid()").fetchall()
        return len(rows)

    def close(self) -> None:
        self.worker.stop()
        self.server.shutdown()
        with contextlib.suppress(Exception):
            from payments_site.extensions import db

            with self.app.app_context():
                db.engine.dispose()
        self.emulator.stop()
        self.mail.stop()
        self.redis.stop()
        with psycopg.connect(self.admin_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{self.db_name}" WITH (FORCE)')


def _normalize(url: str) -> str:
    from payments_site.config import normalize_database_url

    return normalize_database_url(url)


# --- the load ----------------------------------------------------------------------------------

@dataclass
class Shopper:
    email: str
    token: str
    saved_card: str
    saved_card_3ds: str | None = None
    carts: int = 0


@dataclass
class LoadStats:
    operations: Counter[str] = field(default_factory=Counter)
    outcomes: Counter[str] = field(default_factory=Counter)
    paid: list[tuple[str, int]] = field(default_factory=list)  # (payment id, amount)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def record(self, operation: str, outcome: str) -> None:
        with self.lock:
            self.operations[operation] += 1
            self.outcomes[f"{operation}:{outcome}"] += 1


class Load:
    """Client threads buying and refunding through the public API until stopped."""

    def __init__(self, stack: Stack, shoppers: list[Shopper], admin_token: str,
                 products: list[int], threads: int) -> None:
        self.stack = stack
        self.shoppers = shoppers
        self.admin_token = admin_token
        self.products = products
        self.threads = threads
        self.stats = LoadStats()
        self.stopping = threading.Event()
        self.cart_lock = threading.Lock()
        self.workers: list[threading.Thread] = []

    # The shared pool of succeeded payments outlives one phase: refunds pick from it.
    paid_pool: list[tuple[str, int]] = []

    def start(self) -> None:
        self.stopping.clear()
        self.stats = LoadStats()
        self.workers = [threading.Thread(target=self._run, args=(n,), daemon=True)
                        for n in range(self.threads)]
        for thread in self.workers:
            thread.start()

    def stop(self) -> LoadStats:
        self.stopping.set()
        for thread in self.workers:
            thread.join(timeout=60)
        return self.stats

    def _run(self, number: int) -> None:
        rng = random.Random(number * 7919 + int(time.time()))
        session = requests.Session()
        while not self.stopping.is_set():
            shopper = self.shoppers[rng.randrange(len(self.shoppers))]
            roll = rng.random()
            try:
                if roll < 0.50:
                    self.new_card_checkout(session, shopper, rng)
                elif roll < 0.80:
                    self.saved_card_checkout(session, shopper, rng)
                else:
                    self.refund(session, rng)
            except requests.RequestException as error:
                self.stats.record("transport", type(error).__name__)

    def next_cart(self, shopper: Shopper) -> list[dict[str, int]]:
        with self.cart_lock:
            shopper.carts += 1
            n = shopper.carts
        # A distinct cart per attempt: the same cart again would (rightly) be a double submit.
        product = self.products[n % len(self.products)]
        return [{"product_id": product, "quantity": n // len(self.products) % 99 + 1}]

    def _auth(self, token: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {token}"}

    def _process(self, operation: str, session: requests.Session, shopper: Shopper,
                 body: dict[str, Any], attempts: int = 3) -> requests.Response:
        """POST /api/payments/process, retried like a customer clicking "Pay" again."""
        response = None
        for attempt in range(attempts):
            response = session.post(f"{self.stack.url}/api/payments/process", json=body,
                                    headers=self._auth(shopper.token), timeout=30)
            if response.status_code not in (409, 429, 500, 502, 503):
                break
            if attempt < attempts - 1:
                self.stats.outcomes[f"{operation}:process {response.status_code}, "
                                    "customer retried"] += 1
            time.sleep(0.3)
        assert response is not None
        return response

    def new_card_checkout(self, session: requests.Session, shopper: Shopper,
                          rng: random.Random) -> None:
        number, _, three_ds = rng.choices(NEW_CARDS, weights=[w for _, w, _ in NEW_CARDS])[0]
        # Some customers give up after one error instead of clicking "Pay" again.
        response = self._process("new_card", session, shopper,
                                 {"items": self.next_cart(shopper)},
                                 attempts=3 if rng.random() > 0.3 else 1)
        if response.status_code != 201:
            self.stats.record("new_card", f"process {response.status_code}")
            return
        body = response.json()
        secret = body["client_secret"]
        intent_id = secret.split("_secret_")[0]
        confirmed = None
        for _ in range(3):  # what Stripe.js does on the customer's click (and a second click)
            confirmed = pk_post(self.stack, f"/v1/payment_intents/{intent_id}/confirm", {
                "client_secret": secret, "payment_method_data[type]": "card",
                "payment_method_data[card][number]": number,
                "payment_method_data[card][exp_month]": "12",
                "payment_method_data[card][exp_year]": "2031",
                "payment_method_data[card][cvc]": "123",
                "return_url": f"{self.stack.url}/checkout/complete"})
            if confirmed.status_code < 500 and confirmed.status_code != 429:
                break
            time.sleep(0.3)
        assert confirmed is not None
        status = confirmed.json().get("status") if confirmed.status_code == 200 else None
        if status == "requires_action":
            pk_post(self.stack, f"/v1/payment_intents/{intent_id}/_authenticate"
                                f"?success={'true' if three_ds else 'false'}",
                    {"client_secret": secret})
        # The browser comes back to the return page (the webhook may be earlier or later).
        page = session.get(f"{self.stack.url}/checkout/complete",
                           params={"payment": body["payment"]["id"],
                                   "payment_intent": intent_id},
                           headers=self._auth(shopper.token), timeout=30)
        self.stats.record("new_card", f"confirm {confirmed.status_code} page {page.status_code}")
        if status == "succeeded" or (status == "requires_action" and three_ds):
            with self.stats.lock:
                Load.paid_pool.append((body["payment"]["id"], body["payment"]["amount"]))

    def saved_card_checkout(self, session: requests.Session, shopper: Shopper,
                            rng: random.Random) -> None:
        card = shopper.saved_card
        if shopper.saved_card_3ds and rng.random() < 0.3:
            card = shopper.saved_card_3ds
        response = self._process("saved_card", session, shopper,
                                 {"items": self.next_cart(shopper), "payment_method_id": card},
                                 attempts=3 if rng.random() > 0.3 else 1)
        outcome = str(response.status_code)
        if response.status_code == 201:
            body = response.json()
            if body["requires_action"]:
                secret = body["client_secret"]
                intent_id = secret.split("_secret_")[0]
                pk_post(self.stack, f"/v1/payment_intents/{intent_id}/_authenticate"
                                    "?success=true", {"client_secret": secret})
                outcome += " 3ds"
            with self.stats.lock:
                Load.paid_pool.append((body["payment"]["id"], body["payment"]["amount"]))
        self.stats.record("saved_card", outcome)

    def refund(self, session: requests.Session, rng: random.Random) -> None:
        with self.stats.lock:
            if not Load.paid_pool:
                return
            payment_id, amount = rng.choice(Load.paid_pool)
        response = session.post(f"{self.stack.url}/api/payments/refund", json={
            "payment_id": payment_id, "amount": rng.randint(100, max(101, amount // 2)),
            "reason": "requested_by_customer"}, headers=self._auth(self.admin_token),
            timeout=30)
        self.stats.record("refund", str(response.status_code))


def pk_post(stack: Stack, path: str, data: dict[str, str]) -> requests.Response:
    """A publishable-key call, as the emulator's Stripe.js makes it from the browser."""
    return requests.post(f"{stack.emulator.url}{path}",
                         data={"key": STRIPE_PUBLISHABLE_KEY, **data}, timeout=30)


def metadata(obj: Any, key: str) -> str | None:
    data = obj.metadata.to_dict() if getattr(obj, "metadata", None) is not None else {}
    value = data.get(key)
    return str(value) if value is not None else None


# --- setting up customers ----------------------------------------------------------------------

def bootstrap(stack: Stack, customers: int) -> tuple[list[Shopper], str, list[int]]:
    """Customers (each with a saved card, one also with an always-3DS card), an admin, a
    catalog; all through the CLI services and the public API."""
    from payments_site.services.accounts import create_user
    from payments_site.services.catalog import create_product

    with stack.app.app_context():
        products = [create_product(f"Item {n}", 500 + 37 * n, "usd").id for n in range(20)]
        admin = create_user("admin@faults.example", PASSWORD, role="admin", name="Ops")
        emails = [create_user(f"shopper{n}@faults.example", PASSWORD, name=f"Shopper {n}").email
                  for n in range(customers)]
        admin_email = admin.email

    def token(address: str) -> str:
        response = requests.post(f"{stack.url}/api/auth/token",
                                 json={"email": address, "password": PASSWORD}, timeout=30)
        response.raise_for_status()
        return str(response.json()["token"])

    def save_card(bearer: str, number: str) -> str:
        auth = {"Authorization": f"Bearer {bearer}"}
        response = requests.post(f"{stack.url}/api/payments/methods/setup-intent", json={},
                                 headers=auth, timeout=30)
        response.raise_for_status()
        secret = response.json()["client_secret"]
        seti = secret.split("_secret_")[0]
        confirmed = pk_post(stack, f"/v1/setup_intents/{seti}/confirm", {
            "client_secret": secret, "payment_method_data[type]": "card",
            "payment_method_data[card][number]": number,
            "payment_method_data[card][exp_month]": "12",
            "payment_method_data[card][exp_year]": "2031",
            "payment_method_data[card][cvc]": "123"})
        if confirmed.status_code == 200 and confirmed.json()["status"] == "requires_action":
            pk_post(stack, f"/v1/setup_intents/{seti}/_authenticate?success=true",
                    {"client_secret": secret})
        elif confirmed.status_code != 200:  # the emulator's Stripe.js fallback: secret key
            stack.sdk.v1.setup_intents.confirm(seti, {"payment_method": stack.sdk.v1
                                                      .payment_methods.create({
                                                          "type": "card", "card": {
                                                              "number": number,
                                                              "exp_month": 12,
                                                              "exp_year": 2031,
                                                              "cvc": "123"}}).id})
        response = requests.post(f"{stack.url}/api/payments/methods/save",
                                 json={"setup_intent_id": seti}, headers=auth, timeout=30)
        response.raise_for_status()
        return str(response.json()["payment_method"]["id"])

    shoppers = []
    for n, address in enumerate(emails):
        bearer = token(address)
        shopper = Shopper(address, bearer, save_card(bearer, VISA))
        if n == 0:
            shopper.saved_card_3ds = save_card(bearer, SAVED_3DS_EVERY_TIME)
        shoppers.append(shopper)
    return shoppers, token(admin_email), products


# --- double submits ----------------------------------------------------------------------------

def double_submits(stack: Stack, load: Load, pairs: int) -> tuple[int, int]:
    """`pairs` checkouts each submitted twice at once (no Idempotency-Key, then the same key);
    returns (checkouts, the most PaymentIntents any one of them got)."""
    most = 0
    for n in range(pairs):
        shopper = load.shoppers[n % len(load.shoppers)]
        body: dict[str, Any] = {"items": load.next_cart(shopper)}
        if n % 2:
            body["payment_method_id"] = shopper.saved_card
        headers = {"Authorization": f"Bearer {shopper.token}"}
        if n % 3 == 0:
            headers["Idempotency-Key"] = f"double-{uuid.uuid4().hex}"
        results: list[requests.Response] = []
        barrier = threading.Barrier(2)

        def submit(body: dict[str, Any], headers: dict[str, str],
                   barrier: threading.Barrier, results: list[requests.Response]) -> None:
            barrier.wait()
            results.append(requests.post(f"{stack.url}/api/payments/process", json=body,
                                         headers=headers, timeout=30))

        threads = [threading.Thread(target=submit, args=(body, headers, barrier, results))
                   for _ in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        payment_ids = {r.json()["payment"]["id"] for r in results if r.status_code == 201}
        intents = {pi.id for pi in stack.sdk.v1.payment_intents.list({"limit": 100}).data
                   if metadata(pi, "payment_id") in payment_ids}
        most = max(most, len(intents), len(payment_ids))
        for response in results:
            if response.status_code == 201 and response.json()["payment"]["status"] == \
                    "succeeded":
                Load.paid_pool.append((response.json()["payment"]["id"],
                                       response.json()["payment"]["amount"]))
    return pairs, most


# --- recovery: reconcile, sweep, drain ---------------------------------------------------------

def quiet_webhooks(stack: Stack, timeout: float = 20.0) -> None:
    """Wait until the emulator has had nothing more to deliver for a moment."""
    deadline = time.monotonic() + timeout
    last, still_since = -1, time.monotonic()
    while time.monotonic() < deadline:
        count = len(stack.timed.samples)
        if count != last:
            last, still_since = count, time.monotonic()
        elif time.monotonic() - still_since > 2.5:
            return
        time.sleep(0.25)


def sweep_now() -> int:
    """The sweeper, with its grace periods treated as elapsed (the time a real sweep waits)."""
    from payments_site.models import utcnow
    from payments_site.services import emails, refunds, sweeper

    swept = sweeper.sweep_webhook_events(everything=True)
    swept += sweeper.sweep_missing_receipts(
        now=utcnow() + sweeper.RECEIPT_GRACE + timedelta(seconds=1))
    swept += emails.requeue_pending_emails(older_than=timedelta(0))
    swept += refunds.resubmit_stale_refunds(older_than=timedelta(0))
    return swept


def reconcile_and_sweep(stack: Stack, since: datetime) -> tuple[int, int]:
    """What an operator runs after an incident: `flask payments reconcile`, then the sweeper."""
    from payments_site.extensions import db
    from payments_site.services import sweeper

    with stack.app.app_context():
        report = sweeper.reconcile_payments(since)
        swept = sweep_now()
        db.session.remove()
    return report.changed, swept


def outstanding_work() -> int:
    """Work the database says is not finished: events waiting (or claimed in the last 30 s),
    emails and refunds pending, succeeded payments and refunds without their receipt."""
    from sqlalchemy import and_, exists, or_

    from payments_site.extensions import db
    from payments_site.models import OutboundEmail, Payment, Receipt, Refund, WebhookEvent, utcnow
    from payments_site.services.webhooks import processing_lease

    # A claim older than that belongs to a worker that was killed: its lease (10 minutes by
    # default) hands the event to the sweeper later, and reconcile re-reads Stripe meanwhile.
    recent_claim = utcnow() + processing_lease() - timedelta(seconds=30)
    count = db.session.query(WebhookEvent).filter(or_(
        WebhookEvent.status == "pending",
        and_(WebhookEvent.status == "processing",
             WebhookEvent.next_attempt_at > recent_claim))).count()
    count += db.session.query(OutboundEmail).filter_by(status="pending").count()
    count += db.session.query(Refund).filter_by(status="pending").count()
    count += db.session.query(Payment).filter(
        Payment.status == "succeeded",
        ~exists().where(Receipt.payment_id == Payment.id, Receipt.series == "receipt")).count()
    count += db.session.query(Refund).filter(
        Refund.status == "succeeded",
        ~exists().where(Receipt.refund_id == Refund.id)).count()
    return int(count)


def drain(stack: Stack, timeout: float = 60.0) -> bool:
    """Let the worker finish everything (queued retries brought forward); True when idle."""
    from payments_site.extensions import db
    from payments_site.queues import QUEUE_NAMES, get_queue

    deadline = time.monotonic() + timeout
    idle_rounds = 0
    last_sweep = time.monotonic()
    with stack.app.app_context():
        while time.monotonic() < deadline:
            stack.worker.ensure_running()
            queued = 0
            for queue in (get_queue(name) for name in QUEUE_NAMES):
                scheduled = queue.scheduled_job_registry
                for job_id in scheduled.get_job_ids():
                    job = queue.fetch_job(job_id)
                    scheduled.remove(job_id)
                    if job is not None:
                        queue.enqueue_job(job)
                queued += queue.count
            pending = outstanding_work()
            db.session.remove()
            if queued == 0 and pending == 0:
                idle_rounds += 1
                if idle_rounds >= 3:
                    return True
            else:
                idle_rounds = 0
                if queued == 0 and time.monotonic() - last_sweep > 3:
                    sweep_now()  # nothing queued yet work is pending: its job was lost
                    db.session.remove()
                    last_sweep = time.monotonic()
            time.sleep(0.5)
    return False


# --- invariants --------------------------------------------------------------------------------

@dataclass
class Check:
    violations: list[str] = field(default_factory=list)
    payments: int = 0
    succeeded: int = 0
    receipts_emailed: int = 0
    same_message_repeats: int = 0
    over_refunds: int = 0
    inconsistent: int = 0
    duplicate_effects: int = 0


def _stripe_state(stack: Stack) -> tuple[list[Any], dict[str, Any], dict[str, list[Any]]]:
    intents = list(stack.sdk.v1.payment_intents.list({"limit": 100}).auto_paging_iter())
    charges = {c.id: c for c in stack.sdk.v1.charges.list({"limit": 100}).auto_paging_iter()}
    refunds: dict[str, list[Any]] = defaultdict(list)
    for refund in stack.sdk.v1.refunds.list({"limit": 100}).auto_paging_iter():
        refunds[str(refund.charge)].append(refund)
    return intents, charges, refunds


def check_invariants(stack: Stack) -> Check:
    from payments_site.extensions import db
    from payments_site.models import OutboundEmail, Payment, Receipt, Refund
    from payments_site.services.payments import local_status

    result = Check()
    bad = result.violations
    intents, charges, stripe_refunds = _stripe_state(stack)
    sink_ids = Counter()
    for raw in list(stack.mail.raw):
        message = email.message_from_bytes(raw, policy=email.policy.default)
        sink_ids[str(message.get("Message-ID", "")).strip().strip("<>")] += 1

    with stack.app.app_context():
        all_payments = db.session.query(Payment).all()
        payments = {p.stripe_payment_intent_id: p for p in all_payments
                    if p.stripe_payment_intent_id}
        refunds_of: dict[int, list[Refund]] = defaultdict(list)
        for refund in db.session.query(Refund):
            refunds_of[refund.payment_id].append(refund)
        receipts_of: dict[int, list[int]] = defaultdict(list)
        for receipt_id, payment_id in db.session.query(Receipt.id, Receipt.payment_id).filter(
                Receipt.series == "receipt"):
            receipts_of[payment_id].append(receipt_id)
        mails_of: dict[int, list[OutboundEmail]] = defaultdict(list)
        for mail in db.session.query(OutboundEmail).filter(
                OutboundEmail.kind != "receipt_resend", OutboundEmail.receipt_id.is_not(None)):
            mails_of[int(mail.receipt_id or 0)].append(mail)
        result.payments = len(all_payments)
        intents_per_payment: Counter[str] = Counter()
        for intent in intents:
            owner = metadata(intent, "payment_id")
            intents_per_payment[owner or "?"] += 1
            payment = payments.get(intent.id)
            if payment is None:
                bad.append(f"{intent.id} ({intent.status}, for {owner}) has no local payment")
                result.inconsistent += 1
                continue
            problems = []
            if payment.status != local_status(intent):
                problems.append(f"status {payment.status} != {local_status(intent)}")
            if (payment.amount, payment.currency) != (intent.amount, intent.currency):
                problems.append("amount/currency differ")
            charge = charges.get(str(intent.latest_charge)) if intent.latest_charge else None
            stripe_refunded = int(charge.amount_refunded) if charge else 0
            if payment.amount_refunded != stripe_refunded:
                problems.append(f"refunded {payment.amount_refunded} != {stripe_refunded}")
            local_refunds = {r.stripe_refund_id: r for r in refunds_of[payment.id]
                             if r.stripe_refund_id}
            for refund in stripe_refunds.get(str(charge.id) if charge else "", []):
                mine = local_refunds.get(refund.id)
                expected = {"succeeded": "succeeded", "pending": "pending"}.get(
                    refund.status, "failed")
                if mine is None:
                    problems.append(f"Stripe refund {refund.id} unknown locally")
                elif (mine.amount, mine.status) != (refund.amount, expected):
                    problems.append(f"refund {mine.public_id} {mine.amount} {mine.status} != "
                                    f"{refund.amount} {refund.status}")
            if problems:
                result.inconsistent += 1
                bad.append(f"{payment.public_id}: " + "; ".join(problems))
        for owner, count in intents_per_payment.items():
            if owner != "?" and count > 1:
                bad.append(f"{owner} has {count} PaymentIntents")
                result.duplicate_effects += 1
        stripe_ids = {i.id for i in intents}
        for payment in all_payments:
            if payment.stripe_payment_intent_id and payment.stripe_payment_intent_id not in \
                    stripe_ids:
                bad.append(f"{payment.public_id} names an intent Stripe does not have")
            if payment.public_id not in intents_per_payment and payment.status == "succeeded":
                bad.append(f"{payment.public_id} succeeded without an intent")

            live = sum(r.amount for r in refunds_of[payment.id] if r.status != "failed")
            if live > payment.amount or payment.amount_refunded > payment.amount:
                result.over_refunds += 1
                bad.append(f"{payment.public_id}: refunds {live} > captured {payment.amount}")
            stuck = [r.public_id for r in refunds_of[payment.id] if r.status == "pending"]
            if stuck:
                bad.append(f"{payment.public_id}: refunds still pending after drain: {stuck}")

            if payment.status != "succeeded":
                continue
            result.succeeded += 1
            receipts = receipts_of[payment.id]
            if len(receipts) != 1:
                bad.append(f"{payment.public_id}: {len(receipts)} receipts")
                if len(receipts) > 1:
                    result.duplicate_effects += 1
                continue
            mails = mails_of[receipts[0]]
            sent = [m for m in mails if m.status == "sent"]
            delivered = [m for m in sent if sink_ids[m.message_id.strip().strip("<>")] > 0]
            if len(mails) != 1 or len(sent) != 1 or len(delivered) != 1:
                bad.append(f"{payment.public_id}: receipt emails rows={len(mails)} "
                           f"sent={len(sent)} in the SMTP sink={len(delivered)}")
                if len(delivered) > 1:
                    result.duplicate_effects += 1
                continue
            copies = sink_ids[delivered[0].message_id.strip().strip("<>")]
            result.same_message_repeats += copies - 1
            result.receipts_emailed += 1
        db.session.remove()
    return result


# --- the matrix --------------------------------------------------------------------------------

@dataclass
class Row:
    fault: str
    operations: int
    violations: int
    notes: str = ""
    check: Check | None = None


def _every(seconds: float, times: int, action: Callable[[], Any]) -> None:
    for _ in range(times):
        time.sleep(seconds)
        action()


def phase(stack: Stack, load: Load, name: str, seconds: float, inject: Callable[[], str],
          seen: set[str]) -> Row:
    """Load + one fault, then the runbook; the row counts violations first seen here (the
    check covers every payment so far, so an earlier phase's violation shows up again)."""
    print(f"-- {name} ...", flush=True)
    began = time.monotonic()
    since = datetime.now(UTC) - timedelta(seconds=5)
    load.start()
    try:
        notes = inject()
        while time.monotonic() - began < seconds:
            time.sleep(0.25)
    finally:
        stats = load.stop()
    stack.clear_faults()
    stack.register_webhook()
    if stack.redis.proc is None or stack.redis.proc.poll() is not None:
        stack.redis.start()
    stack.worker.ensure_running()
    quiet_webhooks(stack)
    # The operator's runbook after an incident: reconcile from its start, sweep, drain.
    changed, swept = reconcile_and_sweep(stack, since)
    if not drain(stack):
        notes += "; the worker did not drain in time"
    check = check_invariants(stack)
    fresh = [line for line in check.violations if line not in seen]
    seen.update(check.violations)
    if len(fresh) < len(check.violations):
        notes += f"; {len(check.violations) - len(fresh)} violation(s) carried over"
    operations = sum(stats.operations.values())
    outcome_notes = ", ".join(f"{k} ×{v}" for k, v in sorted(stats.outcomes.items())
                              if not k.endswith((" 201", ":201", ":202")))
    print(f"   {operations} operations ({dict(stats.operations)}); reconcile fixed "
          f"{changed}, sweeper queued {swept}; new violations {len(fresh)}; "
          f"{time.monotonic() - began:.0f} s", flush=True)
    if outcome_notes:
        print(f"   outcomes: {outcome_notes[:600]}", flush=True)
    for line in fresh[:15]:
        print(f"   ! {line}", flush=True)
    return Row(name, operations, len(fresh), notes, check)


def kill_worker_mid_job(stack: Stack, kills: int, gap: float) -> str:
    from rq.registry import StartedJobRegistry

    from payments_site.queues import QUEUE_NAMES, get_queue

    mid_job = 0
    with stack.app.app_context():
        for _ in range(kills):
            time.sleep(gap)
            deadline = time.monotonic() + 3
            while time.monotonic() < deadline:  # wait for a job to be running, then kill
                if any(StartedJobRegistry(queue=get_queue(n)).count for n in QUEUE_NAMES):
                    mid_job += 1
                    break
                time.sleep(0.02)
            stack.worker.kill()
            time.sleep(0.5)
            stack.worker.ensure_running()
    return f"{kills} SIGKILLs ({mid_job} with a job running)"


def sabotaged(stack: Stack, seen: set[str]) -> Row:
    """Break the books on purpose (the checker must notice): a refunded total Stripe does not
    agree with, a lost receipt email, and a PaymentIntent no payment knows."""
    from payments_site.extensions import db
    from payments_site.models import OutboundEmail, Payment

    with stack.app.app_context():
        # A payment whose books are complete (its receipt emailed), so each break below is
        # exactly the one the checker must report, not one it already had.
        payment = db.session.query(Payment).filter(
            Payment.status == "succeeded",
            Payment.id.in_(db.session.query(OutboundEmail.payment_id).filter(
                OutboundEmail.status == "sent"))).order_by(Payment.id).first()
        assert payment is not None, "no succeeded payment with a sent receipt to sabotage"
        # (An over-refund itself is refused by a CHECK constraint; a drift is not.)
        payment.amount_refunded += 1 if payment.amount_refunded < payment.amount else -1
        db.session.query(OutboundEmail).filter(
            OutboundEmail.payment_id == payment.id).delete()
        db.session.commit()
        db.session.remove()
    stack.sdk.v1.payment_intents.create({"amount": 700, "currency": "usd"})
    check = check_invariants(stack)
    fresh = [line for line in check.violations if line not in seen]
    for line in fresh[:15]:
        print(f"   ! {line}", flush=True)
    return Row("sabotage (must be caught)", 0, len(fresh), "books broken on purpose", check)


def run(seconds: float, threads: int, customers: int, only: str = "",
        sabotage: bool = False) -> int:
    began = time.monotonic()
    workdir = Path(tempfile.mkdtemp(prefix="fault-matrix-"))
    print(f"fault matrix: starting the stack (artefacts in {workdir.name})", flush=True)
    stack = Stack(workdir)
    rows: list[Row] = []
    figures: dict[str, str] = {}
    try:
        shoppers, admin_token, products = bootstrap(stack, customers)
        load = Load(stack, shoppers, admin_token, products, threads)

        pairs, most = double_submits(stack, load, 12)
        figures["PaymentIntents per double-submit"] = f"{most} (max over {pairs} concurrent pairs)"

        def none() -> str:
            return "steady load, no fault"

        def stripe_5xx() -> str:
            def inject() -> None:
                # More failures in a row than the gateway retries: some requests exhaust them.
                stack.fault(method="POST", path_prefix="/v1/payment_intents", status=500,
                            times=6)
                stack.fault(method="POST", path_prefix="/v1/refunds", status=503, times=4)
                stack.fault(method="POST", path_prefix="/v1/payment_intents", status=502,
                            times=3)
            threading.Thread(target=_every, args=(2.0, 4, inject), daemon=True).start()
            return "500/502 on payment_intents, 503 on refunds, 4 bursts"

        def stripe_429() -> str:
            def inject() -> None:
                for prefix in ("/v1/payment_intents", "/v1/refunds", "/v1/customers"):
                    stack.fault(method="POST", path_prefix=prefix, status=429, times=5)
            threading.Thread(target=_every, args=(2.0, 4, inject), daemon=True).start()
            return "429 on payment_intents, refunds, customers, 4 bursts"

        def timeouts() -> str:
            def inject() -> None:
                stack.fault(method="POST", path_prefix="/v1/payment_intents", status=500,
                            delay_s=STRIPE_TIMEOUT + 1.5, times=4)
                stack.fault(method="POST", path_prefix="/v1/refunds", status=500,
                            delay_s=STRIPE_TIMEOUT + 1.5, times=3)
            threading.Thread(target=_every, args=(2.0, 3, inject), daemon=True).start()
            return f"delays of {STRIPE_TIMEOUT + 1.5:.1f} s (client timeout {STRIPE_TIMEOUT} s)"

        def dropped() -> str:
            def inject() -> None:
                stack.fault(method="POST", path_prefix="/v1/payment_intents", status=0,
                            times=4)
                # The nastiest: Stripe acted, then the connection dropped before the answer.
                stack.fault(method="POST", path_prefix="/v1/payment_intents", status=0,
                            after=True, times=3)
                stack.fault(method="POST", path_prefix="/v1/refunds", status=0, after=True,
                            times=3)
            def outage() -> None:
                # Once, a few seconds in which Stripe acts but no answer gets back: more lost
                # answers in a row than the gateway's retries (some customers walk away).
                time.sleep(4.0)
                stack.fault(method="POST", path_prefix="/v1/payment_intents", status=0,
                            after=True, times=9)
            threading.Thread(target=_every, args=(2.0, 4, inject), daemon=True).start()
            threading.Thread(target=outage, daemon=True).start()
            return "connections dropped before and after Stripe acted"

        def redelivery() -> str:
            stack.register_webhook(duplicate=5, shuffle=True)
            return "every event delivered 5×, shuffled"

        def redis_down() -> str:
            def outage() -> None:
                time.sleep(2.0)
                stack.redis.stop()
                time.sleep(5.0)
                stack.redis.start()
            threading.Thread(target=outage, daemon=True).start()
            return "Redis stopped for 5 s, restarted on the same port"

        def worker_killed() -> str:
            result: list[str] = []
            thread = threading.Thread(
                target=lambda: result.append(kill_worker_mid_job(stack, 4, 2.0)), daemon=True)
            thread.start()
            thread.join(timeout=seconds + 10)
            return result[0] if result else "kills did not finish"

        def postgres_dropped() -> str:
            counts: list[int] = []
            threading.Thread(target=_every, args=(2.5, 4, lambda: counts.append(
                stack.terminate_db_connections())), daemon=True).start()
            return "pg_terminate_backend on every connection, 4 times"

        redelivery_row = None
        seen: set[str] = set()
        faults: list[tuple[str, Callable[[], str]]] = [
            ("none (baseline)", none), ("Stripe 5xx", stripe_5xx), ("Stripe 429", stripe_429),
            ("Stripe timeouts", timeouts), ("dropped connections", dropped),
            ("webhooks 5× duplicated + shuffled", redelivery),
            ("Redis stopped/restarted", redis_down),
            ("worker SIGKILLed mid-job", worker_killed),
            ("PostgreSQL connections dropped", postgres_dropped)]
        for name, inject in faults:
            if only and only.lower() not in name.lower():
                continue
            before = len(stack.timed.samples)
            row = phase(stack, load, name, seconds, inject, seen)
            rows.append(row)
            if name.startswith("webhooks"):
                redelivery_row = (row, len(stack.timed.samples) - before)

        if sabotage:
            rows.append(sabotaged(stack, seen))
        final = rows[-1].check or Check()
        samples = [d for d, _ in stack.timed.samples]
        acks = [s for _, s in stack.timed.samples]
        if samples:
            ordered = sorted(samples)
            p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
            figures["webhook ack p50 / p99"] = (
                f"{statistics.median(samples) * 1000:.1f} ms / {p99 * 1000:.1f} ms over "
                f"{len(samples)} deliveries ({sum(1 for s in acks if s >= 500)} answered 5xx)")
        if redelivery_row is not None:
            row, deliveries = redelivery_row
            check = row.check or Check()
            figures["duplicate effects under 5× shuffled redelivery"] = (
                f"{check.duplicate_effects} duplicate effects, {row.violations} new mismatches "
                f"with Stripe ({deliveries} deliveries; {check.payments} payments in the "
                "database at that point)")
        figures["over-refunds"] = str(final.over_refunds)
        figures["inconsistent payments after reconciliation"] = str(final.inconsistent)
        if final.succeeded:
            figures["receipts emailed"] = (
                f"{final.receipts_emailed}/{final.succeeded} succeeded payments = "
                f"{100 * final.receipts_emailed / final.succeeded:.1f}% (same Message-ID "
                f"re-sent after a kill: {final.same_message_repeats})")
        figures["worker"] = (f"{stack.worker.kills} SIGKILLs, {stack.worker.restarts} restarts")
    finally:
        stack.close()

    width = max(len(r.fault) for r in rows) if rows else 10
    print("\nFault matrix (after each fault: reconcile, sweeper, worker drained)")
    print(f"{'fault':<{width}}  {'operations':>10}  {'violations':>10}  notes")
    for row in rows:
        print(f"{row.fault:<{width}}  {row.operations:>10}  {row.violations:>10}  {row.notes}")
    print("\nFigures to report")
    for key, value in figures.items():
        print(f"- {key}: {value}")
    total = sum(r.violations for r in rows)
    print(f"\n{total} distinct violation(s); {time.monotonic() - began:.0f} s in all")
    return 1 if total else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=8.0, help="load per fault")
    parser.add_argument("--threads", type=int, default=3, help="client threads")
    parser.add_argument("--customers", type=int, default=6)
    parser.add_argument("--only", default="", help="run only the faults whose name has this")
    parser.add_argument("--sabotage", action="store_true",
                        help="corrupt the books at the end: the run must then fail")
    args = parser.parse_args(argv)
    return run(args.seconds, args.threads, args.customers, args.only, args.sabotage)


if __name__ == "__main__":
    sys.exit(main())
