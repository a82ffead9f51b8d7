"""The measurements behind each row of the table; each one adds rows to the report.

Every comparison runs the app and its floor in the same run, in alternating rounds (app,
floor, app, floor, …) and reports medians over the rounds, so machine drift hits both alike.
"""

from __future__ import annotations

import json
import math
import random
import secrets
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests

from bench.appside import AppSide, Customer
from bench.load import LoadResult, median, percentile, run_load, run_sequential
from bench.report import LoadStep, Report, Row, fmt_ms, fmt_ratio
from bench.stack import WEBHOOK_SECRET, Stack


@dataclass
class Sizes:
    rounds: int = 5
    checkout_per_round: int = 40
    webhook_seconds: float = 4.0
    webhook_concurrency: int = 8
    webhook_max_per_round: int = 4000
    history_total_rows: int = 1_000_000
    history_large: int = 10_000
    history_small: int = 10
    history_per_round: int = 20
    receipt_downloads_per_round: int = 30
    worker_webhook_jobs: int = 200
    load_steps: tuple[int, ...] = (1, 2, 4, 8, 16, 32)
    load_seconds: float = 6.0
    load_max_requests: int = 5000
    # The spike (bench/spike.py): customers paying at once, step by step.
    spike_steps: tuple[int, ...] = (1, 8, 32, 64, 128, 256)
    spike_seconds: float = 12.0  # at 64 customers, the spike rows
    knee_seconds: float = 6.0    # at the other steps, the knee plot

    def describe(self) -> list[str]:
        return [
            f"{self.rounds} alternating rounds per comparison",
            f"checkout {self.checkout_per_round} sequential requests per round and side",
            f"webhooks {self.webhook_concurrency} concurrent senders for "
            f"{self.webhook_seconds:.0f} s per round (at most {self.webhook_max_per_round})",
            f"history {self.history_small} vs {self.history_large:,} payments per customer, "
            f"{self.history_total_rows:,} rows in payments",
            f"{self.receipt_downloads_per_round} receipt downloads per round and side",
            f"{self.worker_webhook_jobs} webhook jobs for the worker",
            f"mixed load at concurrency {', '.join(map(str, self.load_steps))} for "
            f"{self.load_seconds:.0f} s each",
            f"spike at {', '.join(map(str, self.spike_steps))} customers for "
            f"{self.knee_seconds:.0f} s each ({self.spike_seconds:.0f} s at 64)",
        ]


@dataclass
class Bench:
    stack: Stack
    side: AppSide
    report: Report
    sizes: Sizes
    app_url: str
    floor_url: str
    floor_files: Path
    products: list[int] = field(default_factory=list)
    customers: list[Customer] = field(default_factory=list)
    intents: list[str] = field(default_factory=list)  # PaymentIntents the checkouts created

    def has_route(self, rule: str, method: str = "GET") -> bool:
        return any(r.rule == rule and method in (r.methods or ())
                   for r in self.side.app.url_map.iter_rules())


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def server_timing(response: requests.Response) -> dict[str, float]:
    """{'stripe': ms, 'app': ms, 'calls': n} from a Server-Timing header (empty if absent)."""
    out: dict[str, float] = {}
    for part in response.headers.get("Server-Timing", "").split(","):
        bits = [b.strip() for b in part.split(";")]
        if not bits or not bits[0]:
            continue
        for bit in bits[1:]:
            if bit.startswith("dur="):
                out[bits[0]] = float(bit[4:])
            elif bit.startswith("desc=") and bits[0] == "stripe":
                out["calls"] = float(bit[5:].strip('"').split()[0])
    return out


def cart(seq: int, products: list[int]) -> list[dict[str, int]]:
    """A different cart for every sequence number (so no checkout is a double submit)."""
    return [{"product_id": products[0], "quantity": seq % 99 + 1},
            {"product_id": products[1], "quantity": (seq // 99) % 99 + 1}]


# --- 1. checkout ---------------------------------------------------------------------------------

def checkout(b: Bench) -> None:
    key = "1"
    if not b.has_route("/api/payments/process", "POST"):
        b.report.unavailable(key, "Checkout own time", "POST /api/payments/process "
                             "not built yet", "≤ 2.5×")
        return
    customer = b.customers[0]
    session = requests.Session()
    base = random.randrange(10**6)
    sdk = b.side.sdk

    def app_call(seq: int, saved: bool = True) -> tuple[bool, Any]:
        body: dict[str, Any] = {"items": cart(base + seq, b.products)}
        if saved:
            body["payment_method_id"] = customer.payment_method_id
        response = session.post(
            f"{b.app_url}/api/payments/process", json=body,
            headers={**auth(customer.token), "Idempotency-Key": secrets.token_hex(16)},
            timeout=30)
        answer = response.json() if response.content else {}
        status = answer.get("payment", {}).get("status")
        ok = response.status_code == 201 and (status == "succeeded" if saved
                                              else bool(answer.get("client_secret")))
        if ok and saved:
            b.intents.append(answer["payment"]["stripe_payment_intent_id"])
        return ok, server_timing(response)

    def floor_call(seq: int) -> tuple[bool, Any]:
        # What any integration must do: create the intent, confirm it with the saved card
        # (with the card details expanded, as the app shows them), both idempotent.
        tag = secrets.token_hex(8)
        intent = sdk.v1.payment_intents.create(
            {"amount": 1999 * (seq % 99 + 1), "currency": "usd",
             "customer": customer.stripe_customer_id,
             "automatic_payment_methods": {"enabled": True, "allow_redirects": "never"},
             "description": "bench floor", "metadata": {"payment_id": tag}},
            {"idempotency_key": f"floor-create-{tag}"})
        confirmed = sdk.v1.payment_intents.confirm(
            intent.id, {"payment_method": customer.payment_method_id,
                        "expand": ["latest_charge", "payment_method"]},
            {"idempotency_key": f"floor-confirm-{tag}"})
        return confirmed.status == "succeeded", None

    view_session = requests.Session()

    def view_call(seq: int, saved: bool = True) -> tuple[bool, Any]:
        # The same Stripe calls from a bare Flask view under the same gunicorn settings.
        response = view_session.post(
            f"{b.floor_url}/checkout",
            json={"amount": 1999 * (seq % 99 + 1), "customer": customer.stripe_customer_id,
                  "payment_method": customer.payment_method_id if saved else None},
            timeout=30)
        answer = response.json()
        return response.status_code == 201 and (answer["status"] == "succeeded" if saved
                                                 else bool(answer["client_secret"])), None

    def sql_view_call(seq: int, saved: bool = True) -> tuple[bool, Any]:
        # The same Stripe calls between the app's money-rule SQL, on the bare driver.
        response = view_session.post(
            f"{b.floor_url}/checkout-with-sql",
            json={"amount": 1999 * (seq % 99 + 1), "customer": customer.stripe_customer_id,
                  "user_id": customer.user_id, "products": b.products,
                  "payment_method": customer.payment_method_id if saved else None},
            timeout=30)
        answer = response.json() if response.status_code == 201 else {}
        return response.status_code == 201 and (answer["status"] == "succeeded" if saved
                                                 else bool(answer["client_secret"])), None

    # Warm every path (connections, caches) before measuring.
    with_sql = b.stack.backend == "postgresql"
    for saved in (True, False):
        run_sequential(lambda s, saved=saved: app_call(s, saved), 3)
        run_sequential(lambda s, saved=saved: view_call(s, saved), 3)
        if with_sql:
            run_sequential(lambda s, saved=saved: sql_view_call(s, saved), 3)
    run_sequential(floor_call, 3)
    figures: dict[bool, dict[str, list[float]]] = {
        saved: {"app": [], "view": [], "ratio": [], "sql": [], "sql_ratio": [],
                "sql_over_view": []} for saved in (True, False)}
    own: list[float] = []
    server_app: list[float] = []
    stripe_calls: list[float] = []
    errors = 0
    offset = 1000
    for _ in range(b.sizes.rounds):
        for saved in (True, False):
            app = run_sequential(lambda s, o=offset, saved=saved: app_call(o + s, saved),
                                 b.sizes.checkout_per_round)
            offset += b.sizes.checkout_per_round
            view = run_sequential(lambda s, saved=saved: view_call(s, saved),
                                  b.sizes.checkout_per_round)
            errors += app.errors + view.errors
            figures[saved]["app"].append(app.p(50))
            figures[saved]["view"].append(view.p(50))
            figures[saved]["ratio"].append(app.p(50) / view.p(50))
            if with_sql:
                sql = run_sequential(lambda s, saved=saved: sql_view_call(s, saved),
                                     b.sizes.checkout_per_round)
                errors += sql.errors
                figures[saved]["sql"].append(sql.p(50))
                figures[saved]["sql_ratio"].append(app.p(50) / sql.p(50))
                figures[saved]["sql_over_view"].append(sql.p(50) / view.p(50))
            if saved:
                for latency, timing in zip(app.latencies, app.extras, strict=True):
                    if timing and "stripe" in timing:
                        own.append(latency * 1000 - timing["stripe"])
                        server_app.append(timing["app"])
                        stripe_calls.append(timing.get("calls", math.nan))
    for saved, label, calls in ((True, "saved card", "create + confirm"),
                                (False, "new card", "create")):
        ratio = median(figures[saved]["ratio"])
        b.report.add(Row(key, f"Checkout own time: p50, {label} (POST /api/payments/process "
                         f"vs a bare Flask view in bench/ making the same Stripe calls, {calls}, "
                         "same SDK settings and server config)",
                         fmt_ms(median(figures[saved]["app"])),
                         fmt_ms(median(figures[saved]["view"])), fmt_ratio(ratio), "≤ 2.5×",
                         ratio <= 2.5, note=f"{errors} failed" if errors else ""))
    for saved, label in ((True, "saved card"), (False, "new card")):
        if not with_sql:
            b.report.unavailable(key, f"Checkout, {label}: vs the same Stripe calls and SQL "
                                 "on the bare driver", "PostgreSQL only")
            continue
        f = figures[saved]
        b.report.add(Row(key, f"Checkout p50, {label}: vs a bare view making the same Stripe "
                         "calls between the same money-rule SQL statements and commits on the "
                         "bare driver (/checkout-with-sql: no ORM, login, limiter or "
                         "validation)", fmt_ms(median(f["app"])), fmt_ms(median(f["sql"])),
                         fmt_ratio(median(f["sql_ratio"])), "", None,
                         note=f"that view alone is {median(f['sql_over_view']):.2f}× the bare "
                              "view without SQL"))
    if own:
        calls = median(stripe_calls)
        b.report.add(Row(key, "Checkout, saved card: the app's own time (total − Stripe time, "
                         "from Server-Timing), p50 / p99", f"{percentile(own, 50):.1f} / "
                         f"{percentile(own, 99):.1f} ms",
                         f"{calls:.0f} Stripe calls/request (view: 2)", "", "", None,
                         note=f"server-side p50/p99 {percentile(server_app, 50):.1f}/"
                              f"{percentile(server_app, 99):.1f} ms"))
    _checkout_with_stripe_latency(b, app_call, floor_call, offset)
    status, statements, commits = b.side.count_sql(
        "POST", "/api/payments/process", customer.token,
        json={"items": cart(base + 999_999, b.products),
              "payment_method_id": customer.payment_method_id},
        headers={"Idempotency-Key": secrets.token_hex(16)})
    b.report.add(Row(key, "Checkout: SQL statements / commits per request (in-process)",
                     f"{statements} / {commits}", "", "", note="" if status == 201 else
                     f"status {status}"))


def _checkout_with_stripe_latency(b: Bench, app_call: Any, floor_call: Any, offset: int) -> None:
    """The saved-card checkout again in the Stripe latency mode (every /v1 call held at the
    emulator, both sides alike): the ratio that carries over to production."""
    from bench.spike import JITTER_MS, LATENCY_MS, stripe_latency

    with stripe_latency(b.stack):
        per_round = max(3, b.sizes.checkout_per_round // 4)
        ratios, app_p50, floor_p50 = [], [], []
        for _ in range(b.sizes.rounds):
            app = run_sequential(lambda s, o=offset: app_call(o + s), per_round)
            offset += per_round
            floor = run_sequential(floor_call, per_round)
            app_p50.append(app.p(50))
            floor_p50.append(floor.p(50))
            ratios.append(app.p(50) / floor.p(50))
    ratio = median(ratios)
    b.report.add(Row("1", f"Checkout p50, saved card, with Stripe latency ({LATENCY_MS:.0f} ± "
                     f"{JITTER_MS:.0f} ms added to every Stripe call on both sides) vs the SDK's "
                     "create + confirm", fmt_ms(median(app_p50)), fmt_ms(median(floor_p50)),
                     fmt_ratio(ratio), "≤ 1.3×", ratio <= 1.3))


# --- 2. webhook ingest ---------------------------------------------------------------------------

def _sign(payload: bytes) -> str:
    import hashlib
    import hmac

    timestamp = int(time.time())
    digest = hmac.new(WEBHOOK_SECRET.encode(), f"{timestamp}.".encode() + payload,
                      hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={digest}"


def event_body(event_id: str, intent_id: str) -> bytes:
    return json.dumps({
        "id": event_id, "object": "event", "type": "payment_intent.succeeded",
        "api_version": "2024-06-20", "created": int(time.time()), "livemode": False,
        "data": {"object": {"id": intent_id, "object": "payment_intent",
                            "status": "succeeded"}}}).encode()


def webhook_ingest(b: Bench) -> None:
    key = "2"
    if not b.has_route("/api/webhooks/stripe", "POST"):
        b.report.unavailable(key, "Webhook ingest", "POST /api/webhooks/stripe not built yet",
                             "≥ 0.6×")
        return
    prefix = f"evt_bench_ingest_{secrets.token_hex(3)}_"

    def sender(url: str) -> Any:
        def send(session: requests.Session, seq: int) -> tuple[bool, Any]:
            body = event_body(f"{prefix}{seq}", f"pi_bench_{seq}")
            response = session.post(url, data=body, timeout=30, headers={
                "Stripe-Signature": _sign(body), "Content-Type": "application/json"})
            return response.status_code == 200, None
        return send

    app_url, floor_url = f"{b.app_url}/api/webhooks/stripe", f"{b.floor_url}/webhook"
    kwargs = {"concurrency": b.sizes.webhook_concurrency, "duration": b.sizes.webhook_seconds,
              "max_requests": b.sizes.webhook_max_per_round}
    run_load(sender(app_url), concurrency=4, duration=1.0, max_requests=200)
    run_load(sender(floor_url), concurrency=4, duration=1.0, max_requests=200)
    apps: list[LoadResult] = []
    floors: list[LoadResult] = []
    app_cpu = floor_cpu = 0.0
    for _ in range(max(3, b.sizes.rounds - 2)):
        before = b.stack.cpu_seconds("app")
        apps.append(run_load(sender(app_url), **kwargs))
        app_cpu += b.stack.cpu_seconds("app") - before
        before = b.stack.cpu_seconds("floor")
        floors.append(run_load(sender(floor_url), **kwargs))
        floor_cpu += b.stack.cpu_seconds("floor") - before
    app_cpu_ms = app_cpu * 1000 / max(sum(a.count + a.errors for a in apps), 1)
    floor_cpu_ms = floor_cpu * 1000 / max(sum(f.count + f.errors for f in floors), 1)
    ratios = [a.throughput / f.throughput for a, f in zip(apps, floors, strict=True)]
    errors = sum(a.errors for a in apps)
    ratio = median(ratios)
    b.report.add(Row(key, "Webhook ingest: acknowledged events/s (signed, "
                     f"{b.sizes.webhook_concurrency} concurrent senders)",
                     f"{median([a.throughput for a in apps]):.0f}/s",
                     f"{median([f.throughput for f in floors]):.0f}/s", fmt_ratio(ratio),
                     "≥ 0.6×", ratio >= 0.6, note=f"{errors} non-200" if errors else ""))
    app_p99, floor_p99 = median([a.p(99) for a in apps]), median([f.p(99) for f in floors])
    b.report.add(Row(key, "Webhook ingest: acknowledgement latency p99 (p50 app "
                     f"{median([a.p(50) for a in apps]):.1f} ms)", fmt_ms(app_p99),
                     fmt_ms(floor_p99), fmt_ratio(app_p99 / floor_p99)))
    b.report.add(Row(key, "Webhook ingest: web-process CPU per event (gunicorn workers; "
                     "PostgreSQL and Redis not included)", f"{app_cpu_ms:.2f} ms",
                     f"{floor_cpu_ms:.2f} ms", fmt_ratio(app_cpu_ms / floor_cpu_ms)))
    # These events name no real payment: take them out of the worker's way.
    _retire_ingest_events(b, prefix)


def _retire_ingest_events(b: Bench, prefix: str) -> None:
    from sqlalchemy import update

    from payments_site.models import WebhookEvent, utcnow

    b.side.empty_queue("webhooks")
    with b.side.context() as db:
        db.session.execute(update(WebhookEvent)
                           .where(WebhookEvent.stripe_event_id.like(prefix + "%"))
                           .values(status="processed", processed_at=utcnow()))
        db.session.commit()


# --- 3. history at scale -------------------------------------------------------------------------

def history(b: Bench) -> None:
    key = "3"
    api_ok = b.has_route("/api/payments/history")
    page_ok = b.has_route("/account/payments")
    if not api_ok and not page_ok:
        b.report.unavailable(key, "History 10 vs 10,000 payments", "history routes not "
                             "built yet", "≤ 1.5×, same queries")
        return
    sizes = b.sizes
    small = b.side.create_customer("history-small", with_card=False)
    large = b.side.create_customer("history-large", with_card=False)
    started = time.perf_counter()
    b.side.bulk_payments([small.user_id, large.user_id],
                         [sizes.history_small, sizes.history_large], b.products[2],
                         with_items=True)
    filler = max(sizes.history_total_rows - _payments_count(b), 0)
    if filler:
        users = b.side.bulk_users(200)
        per_user = [filler // len(users)] * len(users)
        per_user[0] += filler - sum(per_user)
        b.side.bulk_payments(users, per_user, b.products[2], with_items=False)
    total = _payments_count(b)
    b.report.sizes.append(f"payments table {total:,} rows (bulk-loaded in "
                          f"{time.perf_counter() - started:.0f} s)")

    targets = []
    if api_ok:
        targets.append(("API GET /api/payments/history", "/api/payments/history"))
    if page_ok:
        targets.append(("page GET /account/payments", "/account/payments"))
    for label, path in targets:
        session = requests.Session()

        def get(customer: Customer, _s: int, path: str = path,
                session: requests.Session = session) -> tuple[bool, Any]:
            response = session.get(f"{b.app_url}{path}", headers=auth(customer.token),
                                   timeout=30)
            return response.status_code == 200, None

        run_sequential(lambda s: get(small, s), 3)
        run_sequential(lambda s: get(large, s), 3)
        ratios, smalls, larges = [], [], []
        for _ in range(sizes.rounds):
            big = run_sequential(lambda s: get(large, s), sizes.history_per_round)
            little = run_sequential(lambda s: get(small, s), sizes.history_per_round)
            larges.append(big.p(50))
            smalls.append(little.p(50))
            ratios.append(big.p(50) / little.p(50))
        q_small = b.side.count_queries(path, small.token)
        q_large = b.side.count_queries(path, large.token)
        ratio = median(ratios)
        same = q_small[1] == q_large[1]
        b.report.add(Row(key, f"History {label} p50: {sizes.history_large:,} vs "
                         f"{sizes.history_small} payments", fmt_ms(median(larges)),
                         fmt_ms(median(smalls)), fmt_ratio(ratio), "≤ 1.5×", ratio <= 1.5))
        b.report.add(Row(key, f"History {label}: SQL queries per request",
                         f"{q_large[1]} ({sizes.history_large:,} payments)",
                         f"{q_small[1]} ({sizes.history_small} payments)",
                         "", "same, small", same and q_large[1] <= 10,
                         note="" if q_small[0] == q_large[0] == 200 else
                         f"status {q_small[0]}/{q_large[0]}"))


def _payments_count(b: Bench) -> int:
    from sqlalchemy import func, select

    from payments_site.models import Payment

    with b.side.context() as db:
        return int(db.session.scalar(select(func.count()).select_from(Payment)) or 0)


# --- 4. receipts ---------------------------------------------------------------------------------

def receipts(b: Bench) -> None:
    key = "4"
    try:
        from payments_site.services import receipts as receipt_service
    except ImportError:
        b.report.unavailable(key, "Receipts", "receipt service not built yet")
        return
    # Any checkouts above queued their receipt jobs; add succeeded payments if there were none.
    queued = b.side.queue_counts().get("receipts", 0)
    if queued < 20:
        _queue_receipts_for_bulk_payments(b, 40 - queued)
        queued = b.side.queue_counts().get("receipts", 0)
    since = time.time()
    wall = b.stack.run_worker_burst("receipts")
    done, span = b.side.finished_job_span("receipts", since)
    rate = done / span if span > 0 else math.nan
    b.report.add(Row(key, "Receipts issued per second, one worker (render + store + queue "
                     "email)", f"{rate:.1f}/s", "", "", note=f"{done} jobs; worker wall time "
                     f"{wall:.1f} s incl. start-up"))
    render_ms = _render_time(b, receipt_service)
    if render_ms is not None:
        b.report.add(Row(key, "Receipt PDF render time (median of 10, in-process)",
                         fmt_ms(render_ms)))
    _receipt_download(b)


def _queue_receipts_for_bulk_payments(b: Bench, count: int) -> None:
    from sqlalchemy import select

    from payments_site.models import Payment
    from payments_site.services.fulfilment import payment_succeeded

    owner = b.customers[0]
    b.side.bulk_payments([owner.user_id], [count], b.products[2], with_items=True)
    with b.side.context() as db:
        for payment in db.session.scalars(select(Payment).where(
                Payment.user_id == owner.user_id, Payment.cart_hash == "bench")):
            payment_succeeded(payment)


def _render_time(b: Bench, receipt_service: Any) -> float | None:
    from sqlalchemy import select

    from payments_site.models import Payment

    render = getattr(receipt_service, "render_pdf", None)
    context_of = getattr(receipt_service, "_document_context", None)
    if render is None or context_of is None:
        return None
    with b.side.context() as db, b.side.app.test_request_context():
        payment = db.session.scalar(select(Payment).where(Payment.status == "succeeded",
                                                          Payment.user_id ==
                                                          b.customers[0].user_id).limit(1))
        if payment is None:
            return None
        context = context_of(payment, None)
        times = []
        for i in range(10):
            started = time.perf_counter()
            render(receipt_service.PDF_TEMPLATE["receipt"], number=f"2099-{i:06d}",
                   issued_on="1 January 2099", **context)
            times.append((time.perf_counter() - started) * 1000)
        return median(times)


def receipt_numbers(b: Bench, user_id: int) -> list[tuple[str, int]]:
    from sqlalchemy import select

    from payments_site.models import Payment, Receipt

    with b.side.context() as db:
        rows = db.session.execute(select(Receipt.number, Receipt.size)
                                  .join(Payment, Receipt.payment_id == Payment.id)
                                  .where(Payment.user_id == user_id)).all()
    return [(str(n), int(s)) for n, s in rows]


def _receipt_download(b: Bench) -> None:
    key = "4"
    if not b.has_route("/receipts/<number>.pdf"):
        b.report.unavailable(key, "Receipt download vs static file", "download route not "
                             "built yet")
        return
    numbers = receipt_numbers(b, b.customers[0].user_id)
    if not numbers:
        b.report.unavailable(key, "Receipt download vs static file", "no receipts issued")
        return
    number, size = numbers[0]
    static = b.floor_files / f"static-{size}.pdf"
    static.write_bytes(secrets.token_bytes(size))
    token = b.customers[0].token
    session = requests.Session()

    def app_get(_s: int) -> tuple[bool, Any]:
        response = session.get(f"{b.app_url}/receipts/{number}.pdf", headers=auth(token),
                               timeout=30)
        return response.status_code == 200 and len(response.content) == size, None

    def floor_get(_s: int) -> tuple[bool, Any]:
        response = session.get(f"{b.floor_url}/files/{static.name}", timeout=30)
        return response.status_code == 200 and len(response.content) == size, None

    run_sequential(app_get, 3)
    run_sequential(floor_get, 3)
    apps, floors, ratios = [], [], []
    for _ in range(b.sizes.rounds):
        a = run_sequential(app_get, b.sizes.receipt_downloads_per_round)
        f = run_sequential(floor_get, b.sizes.receipt_downloads_per_round)
        apps.append(a.p(50))
        floors.append(f.p(50))
        ratios.append(a.p(50) / f.p(50))
    b.report.add(Row(key, f"Receipt download p50 vs a static file of the same size "
                     f"({size / 1024:.0f} KiB)", fmt_ms(median(apps)), fmt_ms(median(floors)),
                     fmt_ratio(median(ratios))))


# --- 5. worker throughput ------------------------------------------------------------------------

def worker_queues(b: Bench) -> None:
    key = "5"
    # emails: the receipt jobs above queued one email each.
    queued = b.side.queue_counts().get("emails", 0)
    if queued == 0:
        b.report.unavailable(key, "Worker: emails jobs/s", "no email jobs (receipts or "
                             "email service not built yet)")
    else:
        mails_before = b.stack.mail_count
        since = time.time()
        wall = b.stack.run_worker_burst("emails")
        done, span = b.side.finished_job_span("emails", since)
        b.report.add(Row(key, "Worker: `emails` jobs per second, one worker (SMTP to a local "
                         "sink)", f"{done / span:.1f}/s" if span else "n/a", "", "",
                         note=f"{done} jobs, {b.stack.mail_count - mails_before} messages "
                              f"received; wall {wall:.1f} s incl. start-up"))
    if not b.has_route("/api/webhooks/stripe", "POST"):
        b.report.unavailable(key, "Worker: webhooks jobs/s", "webhook route not built yet")
        return
    if not b.intents:
        b.report.unavailable(key, "Worker: webhooks jobs/s", "no PaymentIntents to name "
                             "(checkout not measured)")
        return
    prefix = f"evt_bench_worker_{secrets.token_hex(3)}_"
    url = f"{b.app_url}/api/webhooks/stripe"

    def send(session: requests.Session, seq: int) -> tuple[bool, Any]:
        body = event_body(f"{prefix}{seq}", b.intents[seq % len(b.intents)])
        response = session.post(url, data=body, timeout=30, headers={
            "Stripe-Signature": _sign(body), "Content-Type": "application/json"})
        return response.status_code == 200, None

    sent = run_load(send, concurrency=4, duration=60, max_requests=b.sizes.worker_webhook_jobs)
    since = time.time()
    wall = b.stack.run_worker_burst("webhooks,receipts,emails")
    done, span = b.side.finished_job_span("webhooks", since)
    b.report.add(Row(key, "Worker: `webhooks` jobs per second, one worker "
                     "(payment_intent.succeeded: re-fetch from Stripe, apply)",
                     f"{done / span:.1f}/s" if span else "n/a", "", "",
                     note=f"{done} of {sent.count} events; wall {wall:.1f} s incl. start-up"))


# --- 6. mixed load -------------------------------------------------------------------------------

def mixed_load(b: Bench, *, urls: list[str] | None = None, label: str = "1 node",
               steps: tuple[int, ...] | None = None, record: bool = True,
               extra_weight: dict[str, int] | None = None) -> list[LoadStep]:
    """Browse, checkout, history, receipt download; round-robin over `urls`."""
    key = "6"
    urls = urls or [b.app_url]
    can_checkout = b.has_route("/api/payments/process", "POST")
    can_history = b.has_route("/api/payments/history")
    downloads = receipt_numbers(b, b.customers[0].user_id) \
        if b.has_route("/receipts/<number>.pdf") else []
    mix: list[str] = ["browse"] * 4
    mix += ["history"] * 3 if can_history else []
    mix += ["checkout"] * 2 if can_checkout else []
    mix += ["receipt"] * 1 if downloads else []
    buyers = b.customers[1:] or b.customers
    base = random.randrange(10**6) + 100_000

    failures: Counter[str] = Counter()  # why requests failed, by kind

    def request(session: requests.Session, seq: int) -> tuple[bool, Any]:
        kind = mix[seq % len(mix)]
        try:
            ok, extra, status = attempt(session, seq, kind)
        except requests.RequestException as error:
            failures[f"{kind}: {type(error).__name__}"] += 1
            raise
        if not ok:
            failures[f"{kind}: HTTP {status}"] += 1
        return ok, extra

    def attempt(session: requests.Session, seq: int, kind: str) -> tuple[bool, Any, int]:
        url = urls[(seq + seq // len(mix)) % len(urls)]  # round-robin, every kind to each
        buyer = buyers[seq % len(buyers)]
        if kind == "browse":
            response = session.get(f"{url}/", timeout=30)
        elif kind == "history":
            response = session.get(f"{url}/api/payments/history", headers=auth(buyer.token),
                                   timeout=30)
        elif kind == "checkout":
            response = session.post(f"{url}/api/payments/process", timeout=30, json={
                "items": cart(base + seq, b.products),
                "payment_method_id": buyer.payment_method_id},
                headers={**auth(buyer.token), "Idempotency-Key": secrets.token_hex(16)})
            return response.status_code == 201, kind, response.status_code
        else:
            number, _ = downloads[seq % len(downloads)]
            response = session.get(f"{url}/receipts/{number}.pdf",
                                   headers=auth(b.customers[0].token), timeout=30)
        return response.status_code == 200, kind, response.status_code

    results: list[LoadStep] = []
    by_kind: dict[int, str] = {}
    for concurrency in steps or b.sizes.load_steps:
        result = run_load(request, concurrency=concurrency, duration=b.sizes.load_seconds,
                          max_requests=b.sizes.load_max_requests, warmup=1)
        results.append(LoadStep(concurrency, result.throughput, result.p(50), result.p(99),
                                result.errors))
        if failures:
            b.report.notes.append(f"{label}, {concurrency} clients, failed requests: " +
                                  ", ".join(f"{k} ×{n}" for k, n in sorted(failures.items())))
            failures.clear()
        kinds: dict[str, list[float]] = {}
        for latency, kind in zip(result.latencies, result.extras, strict=True):
            kinds.setdefault(str(kind), []).append(latency * 1000)
        by_kind[concurrency] = ", ".join(f"{k} {percentile(v, 99):.0f}"
                                         for k, v in sorted(kinds.items()))
    if record:
        b.report.load_steps = results
        good = [s for s in results
                if s.p99_ms < 200 and s.errors <= 0.01 * s.throughput * b.sizes.load_seconds]
        best = max(good, key=lambda s: s.throughput) if good else None
        kinds = ", ".join(sorted(set(mix)))
        for step in results:
            b.report.notes.append(f"mixed load at {step.concurrency} clients, p99 ms by kind: "
                                  f"{by_kind[step.concurrency]}")
        b.report.add(Row(key, f"Mixed load ({kinds}), {label}: highest requests/s with p99 "
                         "< 200 ms", f"{best.throughput:.0f}/s at {best.concurrency} clients"
                         if best else "none under 200 ms", "", "",
                         "reported", None,
                         note=f"p99 {best.p99_ms:.0f} ms" if best else ""))
    return results


# --- 7. admin overview at scale ------------------------------------------------------------------

def admin_overview(b: Bench) -> None:
    """GET /admin/ with 1,000,000 payment rows, against the history page's own budget."""
    from bench.appside import add_spread_payments
    from payments_site.extensions import db
    from payments_site.security import issue_token
    from payments_site.services import overview
    from payments_site.services.accounts import create_user

    key = "7"
    if not b.has_route("/admin/") or not b.has_route("/account/payments"):
        b.report.unavailable(key, "Admin overview at 1,000,000 payments", "not built yet",
                             "≤ 1.5× the history page")
        return
    sizes = b.sizes
    missing = max(sizes.history_total_rows - _payments_count(b), 0)
    loaded = add_spread_payments(b.side, missing) if missing else 0.0
    total = _payments_count(b)
    b.report.sizes.append(f"overview: payments table {total:,} rows ({missing:,} added over "
                          f"365 days by INSERT … SELECT generate_series in {loaded:.1f} s)")
    with b.side.context():
        started = time.perf_counter()
        days = overview.roll_up()
        first_roll_up = time.perf_counter() - started
        started = time.perf_counter()
        again = overview.roll_up()
        next_roll_up = time.perf_counter() - started
        admin = create_user(f"overview-admin-{secrets.token_hex(4)}@bench.example",
                            "bench-password-123", name="Bench admin")
        admin.role = "admin"
        db.session.commit()
        admin_token, _ = issue_token(admin)
    small = b.side.create_customer("overview-history", with_card=False)
    b.side.bulk_payments([small.user_id], [sizes.history_small], b.products[2],
                         with_items=True)
    session = requests.Session()

    def get(path: str, token: str) -> tuple[bool, Any]:
        response = session.get(f"{b.app_url}{path}", headers=auth(token), timeout=30)
        return response.status_code == 200, None

    for _ in range(3):
        get("/admin/", admin_token)
        get("/account/payments", small.token)
    pages, budgets, ratios = [], [], []
    for _ in range(sizes.rounds):
        page = run_sequential(lambda _s: get("/admin/", admin_token), sizes.history_per_round)
        budget = run_sequential(lambda _s: get("/account/payments", small.token),
                                sizes.history_per_round)
        pages.append(page.p(50))
        budgets.append(budget.p(50))
        ratios.append(page.p(50) / budget.p(50))
    ratio = median(ratios)
    b.report.add(Row(key, f"Admin overview GET /admin/ p50 at {total:,} payments vs the "
                     f"history page (GET /account/payments, {sizes.history_small} payments)",
                     fmt_ms(median(pages)), fmt_ms(median(budgets)), fmt_ratio(ratio),
                     "≤ 1.5×", ratio <= 1.5))
    status, statements = b.side.count_queries("/admin/", admin_token)
    b.report.add(Row(key, "Admin overview: SQL statements per request", f"{statements}", "",
                     "", "small, whatever the table size", status == 200 and statements <= 15,
                     note="" if status == 200 else f"status {status}"))
    b.report.add(Row(key, f"Worker roll-up of the daily totals: first run ({days} days), "
                     f"then the next sweep ({again} day(s))",
                     f"{first_roll_up * 1000:.0f} ms / {next_roll_up * 1000:.0f} ms", "", "",
                     "–", None))
