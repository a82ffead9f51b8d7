"""Setting up benchmark data through the app's own services (and bulk rows for scale).

The harness builds the app in-process with the same environment as the gunicorn nodes, so
users, saved cards, tokens and queue jobs are created exactly as the app creates them.
"""

from __future__ import annotations

import os
import secrets
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import stripe
from flask import Flask

from bench.stack import STRIPE_SECRET_KEY, Stack

PASSWORD = "bench-password-not-secret"
TEST_CARD = "4242424242424242"  # Stripe's documented test card; only ever sent to the emulator


@dataclass
class Customer:
    user_id: int
    email: str
    token: str
    stripe_customer_id: str
    payment_method_id: str  # Stripe pm_… of the saved default card


def stripe_client(emulator_url: str) -> stripe.StripeClient:
    return stripe.StripeClient(STRIPE_SECRET_KEY, base_addresses={"api": emulator_url},
                               max_network_retries=0,
                               http_client=stripe.RequestsClient(timeout=10))


class AppSide:
    """The app, in this process, against the stack's database, Redis and emulator."""

    def __init__(self, stack: Stack) -> None:
        self.stack = stack
        os.environ.update(stack.env())
        from payments_site import create_app

        self.app: Flask = create_app()
        self.sdk = stripe_client(stack.emulator_url)

    @contextmanager
    def context(self) -> Iterator[Any]:
        from payments_site.extensions import db

        with self.app.app_context():
            try:
                yield db
            finally:
                db.session.remove()

    # --- the catalog and customers -----------------------------------------------------------

    def create_products(self) -> list[int]:
        from payments_site.services.catalog import create_product

        with self.context():
            specs = [("Espresso beans, 1 kg", 2450), ("Pour-over kettle", 5900),
                     ("Ceramic mug", 1999), ("Paper filters", 650), ("Tea tin", 1500)]
            return [create_product(name, amount, "usd").id for name, amount in specs]

    def create_customer(self, label: str, *, with_card: bool = True) -> Customer:
        """A user with a confirmed address (receipts are emailed to it), a Stripe customer
        and (by default) a saved default card."""
        from payments_site.security import issue_token
        from payments_site.services.accounts import create_user
        from payments_site.services.customers import ensure_stripe_customer

        email = f"{label}-{secrets.token_hex(4)}@bench.example"
        with self.context():
            user = create_user(email, PASSWORD, name=f"Bench {label}", verified=True)
            customer_id = ensure_stripe_customer(user)
            pm_id = ""
            if with_card:
                pm = self.sdk.v1.payment_methods.create({
                    "type": "card", "card": {"number": TEST_CARD, "exp_month": 12,
                                             "exp_year": datetime.now().year + 4,
                                             "cvc": "123"}})
                from payments_site.services.methods import save_payment_method

                pm_id = save_payment_method(user, pm.id, make_default=True) \
                    .stripe_payment_method_id
            token, _ = issue_token(user)
            return Customer(user.id, email, token, customer_id, pm_id)

    # --- queues --------------------------------------------------------------------------------

    def queue_counts(self) -> dict[str, int]:
        from payments_site.queues import QUEUE_NAMES, get_queue

        with self.context():
            return {name: get_queue(name).count for name in QUEUE_NAMES}

    def empty_queue(self, name: str) -> None:
        from payments_site.queues import get_queue

        with self.context():
            get_queue(name).empty()

    def finished_job_span(self, queue: str, since: float) -> tuple[int, float]:
        """(jobs finished on `queue` since `since` (epoch s), first start to last end in s)."""
        from rq.job import Job

        from payments_site.queues import get_queue, get_redis

        with self.context():
            registry = get_queue(queue).finished_job_registry
            jobs = [j for j in Job.fetch_many(registry.get_job_ids(), connection=get_redis())
                    if j is not None and j.started_at and j.ended_at]
        starts, ends = [], []
        for job in jobs:
            started = job.started_at.replace(tzinfo=UTC).timestamp()
            if started >= since:
                starts.append(started)
                ends.append(job.ended_at.replace(tzinfo=UTC).timestamp())
        if not starts:
            return 0, 0.0
        return len(starts), max(ends) - min(starts)

    # --- bulk rows -----------------------------------------------------------------------------

    def bulk_payments(self, user_ids: list[int], per_user: list[int], product_id: int, *,
                      with_items: bool, status: str = "succeeded",
                      chunk: int = 50_000) -> int:
        """Insert payments straight into the table (COPY on PostgreSQL); returns rows added.

        Rows look like finished card payments; history and receipts read them like any other.
        """
        from payments_site.extensions import db
        from payments_site.models import Payment, PaymentItem

        payment_cols = [c.name for c in Payment.__table__.columns if c.name != "id"]
        item_cols = [c.name for c in PaymentItem.__table__.columns if c.name != "id"]
        now = datetime.now(UTC)
        total = 0
        with self.context():
            engine = db.engine
            for user_id, count in zip(user_ids, per_user, strict=True):
                done = 0
                while done < count:
                    size = min(chunk, count - done)
                    rows = [self._payment_row(user_id, now - timedelta(minutes=done + i),
                                              status) for i in range(size)]
                    with engine.begin() as conn:
                        if conn.dialect.name == "postgresql":
                            _copy(conn, "payments", payment_cols,
                                  ([r.get(c) for c in payment_cols] for r in rows))
                        else:
                            conn.execute(Payment.__table__.insert(), rows)
                        if with_items:
                            ids = conn.execute(
                                Payment.__table__.select().with_only_columns(
                                    Payment.__table__.c.id)
                                .where(Payment.__table__.c.public_id.in_(
                                    [r["public_id"] for r in rows]))).scalars().all()
                            items = [{"payment_id": pid, "product_id": product_id,
                                      "name": "Ceramic mug", "quantity": 1,
                                      "unit_amount": 1999} for pid in ids]
                            if conn.dialect.name == "postgresql":
                                _copy(conn, "payment_items", item_cols,
                                      ([r.get(c) for c in item_cols] for r in items))
                            else:
                                conn.execute(PaymentItem.__table__.insert(), items)
                    done += size
                    total += size
            with engine.begin() as conn:
                if conn.dialect.name == "postgresql":
                    conn.exec_driver_sql("ANALYZE payments")
                    conn.exec_driver_sql("ANALYZE payment_items")
        return total

    @staticmethod
    def _payment_row(user_id: int, created: datetime, status: str) -> dict[str, Any]:
        return {
            "public_id": "pay_" + secrets.token_hex(12), "user_id": user_id, "status": status,
            "amount": 1999, "currency": "usd", "amount_refunded": 0, "refund_reserved": 0,
            "description": "1 × Ceramic mug", "cart_hash": "bench", "card_brand": "visa",
            "card_last4": "4242", "save_payment_method": False, "needs_reconcile": False,
            "confirm_attempts": 1, "create_attempts": 0, "cancel_requested": False,
            "created_at": created, "updated_at": created,
            "succeeded_at": created if status == "succeeded" else None,
        }

    def bulk_users(self, count: int) -> list[int]:
        """Filler customers (no Stripe customer, an unusable password hash)."""
        from payments_site.extensions import db
        from payments_site.models import User

        tag = secrets.token_hex(4)
        rows = [{"email": f"filler-{tag}-{i}@bench.example", "name": "", "role": "customer",
                 "locale": "en_US", "password_hash": "!", "created_at": datetime.now(UTC)}
                for i in range(count)]
        with self.context():
            with db.engine.begin() as conn:
                conn.execute(User.__table__.insert(), rows)
                ids = conn.execute(User.__table__.select().with_only_columns(User.__table__.c.id)
                                   .where(User.__table__.c.email.like(f"filler-{tag}-%"))
                                   ).scalars().all()
        return list(ids)

    # --- counting SQL --------------------------------------------------------------------------

    def count_queries(self, path: str, token: str) -> tuple[int, int]:
        """(status, SQL statements run) for one GET through the in-process test client."""
        status, statements, _ = self.count_sql("GET", path, token, warm=True)
        return status, statements

    def count_sql(self, method: str, path: str, token: str, *, warm: bool = False,
                  **kwargs: Any) -> tuple[int, int, int]:
        """(status, SQL statements, commits) for one request through the test client."""
        from sqlalchemy import event

        from payments_site.extensions import db

        headers = {"Authorization": f"Bearer {token}", **kwargs.pop("headers", {})}
        with self.context():
            engine = db.engine
            counter = {"statements": 0, "commits": 0}

            def on_execute(*_args: Any) -> None:
                counter["statements"] += 1

            def on_commit(*_args: Any) -> None:
                counter["commits"] += 1

            client = self.app.test_client()
            if warm:
                client.open(path, method=method, headers=headers, **kwargs)
            event.listen(engine, "before_cursor_execute", on_execute)
            event.listen(engine, "commit", on_commit)
            try:
                response = client.open(path, method=method, headers=headers, **kwargs)
            finally:
                event.remove(engine, "before_cursor_execute", on_execute)
                event.remove(engine, "commit", on_commit)
            return response.status_code, counter["statements"], counter["commits"]

    def commit_latency_ms(self, count: int = 50) -> float | None:
        """Median time of a one-row INSERT + COMMIT (the disk flush every commit waits for)."""
        from payments_site.extensions import db

        with self.context():
            if db.engine.dialect.name != "postgresql":
                return None
            times = []
            with db.engine.connect() as conn:
                conn.exec_driver_sql("CREATE TABLE bench_commit_probe (x int)")
                conn.commit()
                for _ in range(count):
                    started = time.perf_counter()
                    conn.exec_driver_sql("INSERT INTO bench_commit_probe VALUES (1)")
                    conn.commit()
                    times.append((time.perf_counter() - started) * 1000)
                conn.exec_driver_sql("DROP TABLE bench_commit_probe")
                conn.commit()
            return sorted(times)[len(times) // 2]


def _copy(conn: Any, table: str, columns: list[str], rows: Any) -> None:
    """COPY rows into `table` through the SQLAlchemy connection's psycopg connection."""
    raw = conn.connection.driver_connection
    cols = ", ".join(columns)
    with raw.cursor() as cur, cur.copy(f"COPY {table} ({cols}) FROM STDIN") as copy:
        for row in rows:
            copy.write_row(row)


def timed(fn: Any, *args: Any, **kwargs: Any) -> tuple[Any, float]:
    started = time.perf_counter()
    value = fn(*args, **kwargs)
    return value, time.perf_counter() - started



def spread_payments_sql(days: int) -> str:
    """One set-based INSERT … SELECT over generate_series (PostgreSQL): :count payments by
    :user_id spread evenly over the last `days` days, most succeeded, some failed or canceled,
    in three currencies. A million rows take seconds instead of minutes of COPY."""
    return f"""
        INSERT INTO payments (public_id, user_id, status, amount, currency, amount_refunded,
            refund_reserved, description, cart_hash, card_brand, card_last4,
            save_payment_method, needs_reconcile, confirm_attempts, create_attempts,
            cancel_requested, created_at, updated_at, succeeded_at)
        SELECT 'pay_sp' || md5(:tag || n::text), :user_id,
            CASE WHEN n % 20 = 0 THEN 'failed' WHEN n % 33 = 0 THEN 'canceled'
                 ELSE 'succeeded' END,
            500 + (n % 97) * 100,
            CASE WHEN n % 10 = 0 THEN 'eur' WHEN n % 25 = 0 THEN 'jpy' ELSE 'usd' END,
            0, 0, '1 × Ceramic mug', 'bench', 'visa', '4242', false, false, 1, 0, false,
            now() - (n * interval '{days} days') / :count,
            now() - (n * interval '{days} days') / :count,
            CASE WHEN n % 20 <> 0 AND n % 33 <> 0
                 THEN now() - (n * interval '{days} days') / :count END
        FROM generate_series(1, :count) AS n
    """


def add_spread_payments(side: AppSide, count: int, days: int = 365) -> float:
    """Add `count` payments spread over `days` days (set-based on PostgreSQL, rows in batches
    on SQLite); returns the seconds it took."""
    from sqlalchemy import text

    from payments_site.extensions import db
    from payments_site.models import Payment

    started = time.perf_counter()
    user_id = side.bulk_users(1)[0]
    with side.context():
        with db.engine.begin() as conn:
            if conn.dialect.name == "postgresql":
                conn.execute(text(spread_payments_sql(days)),
                             {"count": count, "user_id": user_id, "tag": secrets.token_hex(4)})
                conn.exec_driver_sql("ANALYZE payments")
            else:
                now = datetime.now(UTC)
                rows = [AppSide._payment_row(user_id, now - timedelta(days=days) * n / count,
                                             "succeeded" if n % 20 else "failed")
                        for n in range(1, count + 1)]
                for start in range(0, len(rows), 20_000):
                    conn.execute(Payment.__table__.insert(), rows[start:start + 20_000])
    return time.perf_counter() - started
