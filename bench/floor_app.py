"""The floor: a bare Flask app that does only the unavoidable part of each request.

`POST /webhook` verifies the Stripe signature (the same SDK call, the same secrets) and
acknowledges; `GET /files/<name>` serves a static file from `BENCH_FLOOR_FILES`;
`POST /checkout` makes checkout's Stripe calls with the app's parameters (create; then, with
a saved card, confirm) and answers with the intent's status and client secret: no
database, no login, no idempotency, no limiter.
`POST /checkout-with-sql` (PostgreSQL only) makes the same Stripe calls between the SQL
statements the app's checkout runs for its money rules, sent with the bare driver (psycopg,
no SQLAlchemy) on the app's own tables: the Bearer user read, the Idempotency-Key claim, the
catalog read, the customer lock, the same-attempt look-up, the payment and its items, the
intent recorded (with a saved card: the card read, and the confirm claimed and its outcome
recorded) and the stored answer, with the app's four (saved card: five) commits. What the
app adds beyond it is the framework: login, limiter, validation, the ORM.
It runs under the same gunicorn settings as the app, so a ratio against it measures what
the app adds.
Serve with `gunicorn bench.floor_app:app`.
"""

from __future__ import annotations

import json
import os
import secrets
import threading
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import stripe
from flask import Flask, abort, jsonify, request, send_from_directory
from psycopg.rows import dict_row

app = Flask(__name__)
SECRETS = [s.strip() for s in os.environ.get("STRIPE_WEBHOOK_SECRET", "").split(",")
           if s.strip()]
FILES = os.environ.get("BENCH_FLOOR_FILES", "")
STRIPE = stripe.StripeClient(
    os.environ.get("STRIPE_SECRET_KEY", ""),
    base_addresses={"api": os.environ.get("STRIPE_API_BASE", "")}, max_network_retries=0,
    http_client=stripe.RequestsClient(timeout=10))


@app.get("/healthz")
def healthz():  # type: ignore[no-untyped-def]
    return jsonify(status="ok")


@app.post("/webhook")
def webhook():  # type: ignore[no-untyped-def]
    payload = request.get_data()
    header = request.headers.get("Stripe-Signature", "")
    for secret in SECRETS:
        try:
            stripe.Webhook.construct_event(payload, header, secret, tolerance=300)
            return jsonify(received=True)
        except (stripe.SignatureVerificationError, ValueError):
            continue
    abort(400)


@app.post("/checkout")
def checkout():  # type: ignore[no-untyped-def]
    body = request.get_json()
    tag = secrets.token_hex(8)
    intent = STRIPE.v1.payment_intents.create(
        {"amount": int(body["amount"]), "currency": "usd", "customer": body["customer"],
         "automatic_payment_methods": {"enabled": True, "allow_redirects": "never"},
         "description": "bench floor", "metadata": {"payment_id": tag}},
        {"idempotency_key": f"floor-view-create-{tag}"})
    if not body.get("payment_method"):  # a new card: the browser confirms it
        return jsonify(id=intent.id, status=intent.status,
                       client_secret=intent.client_secret), 201
    confirmed = STRIPE.v1.payment_intents.confirm(
        intent.id, {"payment_method": body["payment_method"],
                    "expand": ["latest_charge", "payment_method"]},
        {"idempotency_key": f"floor-view-confirm-{tag}"})
    return jsonify(id=confirmed.id, status=confirmed.status,
                   client_secret=confirmed.client_secret), 201


_DATABASE = os.environ.get("DATABASE_URL", "").replace("postgresql+psycopg://", "postgresql://")
_local = threading.local()  # one connection pair per thread (or greenlet, under gevent)


def _connections() -> tuple[psycopg.Connection[dict[str, Any]], psycopg.Connection[dict[str, Any]]]:
    """(autocommit, transactional): one-statement writes commit on their own, as the app's."""
    if not hasattr(_local, "pair"):
        _local.pair = (psycopg.connect(_DATABASE, autocommit=True, row_factory=dict_row),
                       psycopg.connect(_DATABASE, row_factory=dict_row))
    return _local.pair


@app.post("/checkout-with-sql")
def checkout_with_sql():  # type: ignore[no-untyped-def]
    if not _DATABASE.startswith("postgresql://"):
        abort(501)
    body = request.get_json()
    user_id, products = int(body["user_id"]), [int(p) for p in body["products"]]
    pm = body.get("payment_method")
    auto, tx = _connections()
    now = datetime.now(UTC)
    tag = secrets.token_hex(8)
    auto.execute("SELECT * FROM users WHERE id = %s", (user_id,)).fetchone()
    claim = auto.execute(
        "INSERT INTO idempotency_keys (user_id, key, request_hash, status, created_at, "
        "expires_at) VALUES (%s, %s, %s, 'in_progress', %s, %s) RETURNING id",
        (user_id, f"floor-{tag}", "0" * 64, now, now + timedelta(days=1))).fetchone()["id"]
    catalog = tx.execute("SELECT * FROM products WHERE id = ANY(%s)", (products,)).fetchall()
    method_id = None
    if pm:
        method = tx.execute("SELECT * FROM payment_methods WHERE user_id = %s AND "
                            "stripe_payment_method_id = %s", (user_id, pm)).fetchone()
        if method is None:  # as the app answers it: a 404, kept under the key
            tx.rollback()
            return _store(auto, claim, {"error": "No such payment method."}, 404)
        method_id = method["id"]
    tx.execute("SELECT id FROM users WHERE id = %s FOR NO KEY UPDATE", (user_id,))
    # The Idempotency-Key names the attempt (as the app's does): look it up, then insert.
    digest, attempt = secrets.token_hex(32), secrets.token_hex(32)
    tx.execute("SELECT id FROM payments WHERE user_id = %s AND cart_hash = %s AND "
               "checkout_attempt = %s", (user_id, digest, attempt)).fetchone()
    amount = int(body["amount"])
    payment_id = tx.execute(
        "INSERT INTO payments (public_id, user_id, status, amount, currency, amount_refunded, "
        "refund_reserved, description, cart_hash, checkout_attempt, cancel_requested, "
        "payment_method_id, save_payment_method, needs_reconcile, confirm_attempts, "
        "create_attempts, created_at, updated_at) VALUES (%s, %s, 'requires_payment_method', "
        "%s, 'usd', 0, 0, 'bench floor', %s, %s, false, %s, false, true, 0, 0, %s, %s) "
        "RETURNING *", (f"pay_{tag}", user_id, amount, digest, attempt, method_id, now, now)
    ).fetchone()["id"]
    with tx.cursor() as cursor:
        cursor.executemany(
            "INSERT INTO payment_items (payment_id, product_id, name, quantity, unit_amount) "
            "VALUES (%s, %s, %s, 1, %s) RETURNING *",
            [(payment_id, row["id"], row["name"], row["unit_amount"]) for row in catalog],
            returning=True)
    tx.commit()
    intent = STRIPE.v1.payment_intents.create(
        {"amount": amount, "currency": "usd", "customer": body["customer"],
         "automatic_payment_methods": {"enabled": True, "allow_redirects": "never"},
         "description": "bench floor", "metadata": {"payment_id": tag}},
        {"idempotency_key": f"floor-sql-create-{tag}"})
    record = ("UPDATE payments SET stripe_payment_intent_id = %s, needs_reconcile = false, "
              "updated_at = %s")
    if not pm:
        auto.execute(f"{record} WHERE id = %s AND stripe_payment_intent_id IS NULL",
                     (intent.id, now, payment_id))
        answer = {"id": intent.id, "status": intent.status,
                  "client_secret": intent.client_secret}
    else:
        auto.execute(f"{record}, confirm_attempts = 1, status = 'processing' WHERE id = %s "
                     "AND stripe_payment_intent_id IS NULL AND confirm_attempts = 0 AND "
                     "status IN ('requires_payment_method', 'failed')",
                     (intent.id, now, payment_id))
        intent = STRIPE.v1.payment_intents.confirm(
            intent.id, {"payment_method": pm, "expand": ["latest_charge", "payment_method"]},
            {"idempotency_key": f"floor-sql-confirm-{tag}"})
        auto.execute("UPDATE payments SET status = %s, stripe_charge_id = %s, card_brand = %s, "
                     "card_last4 = %s, succeeded_at = %s, updated_at = %s WHERE id = %s AND "
                     "confirm_attempts = 1", ("succeeded", intent.latest_charge.id, "visa",
                                              "4242", now, now, payment_id))
        answer = {"id": intent.id, "status": intent.status,
                  "client_secret": intent.client_secret}
    return _store(auto, claim, answer, 201)


def _store(auto: psycopg.Connection[dict[str, Any]], claim: int, answer: dict[str, Any],
           status: int) -> tuple[Any, int]:
    auto.execute("UPDATE idempotency_keys SET status = 'done', response_status = %s, "
                 "response_body = %s WHERE id = %s", (status, json.dumps(answer), claim))
    return jsonify(answer), status


@app.get("/files/<path:name>")
def files(name: str):  # type: ignore[no-untyped-def]
    if not FILES:
        abort(404)
    return send_from_directory(FILES, name)
