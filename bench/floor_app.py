"""The floor: a bare Flask app that does only the unavoidable part of each request.

`POST /webhook` verifies the Stripe signature (the same SDK call, the same secrets) and
acknowledges; `GET /files/<name>` serves a static file from `BENCH_FLOOR_FILES`;
`POST /checkout` makes checkout's Stripe calls with the app's parameters (create; then, with
a saved card, confirm) and answers with the intent's status and client secret: no
database, no login, no idempotency, no limiter.
It runs under the same gunicorn settings as the app, so a ratio against it measures what
the app adds.
Serve with `gunicorn bench.floor_app:app`.
"""

from __future__ import annotations

import os
import secrets

import stripe
from flask import Flask, abort, jsonify, request, send_from_directory

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


@app.get("/files/<path:name>")
def files(name: str):  # type: ignore[no-untyped-def]
    if not FILES:
        abort(404)
    return send_from_directory(FILES, name)
