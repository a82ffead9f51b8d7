"""The floor: a bare Flask app that does only the unavoidable part of each request.

`POST /webhook` verifies the Stripe signature (the same SDK call, the same secrets) and
acknowledges; `GET /files/<name>` serves a static file from `BENCH_FLOOR_FILES`. It runs under
the same gunicorn settings as the app, so a ratio against it measures what the app adds.
Serve with `gunicorn bench.floor_app:app`.
"""

from __future__ import annotations

import os

import stripe
from flask import Flask, abort, jsonify, request, send_from_directory

app = Flask(__name__)
SECRETS = [s.strip() for s in os.environ.get("STRIPE_WEBHOOK_SECRET", "").split(",")
           if s.strip()]
FILES = os.environ.get("BENCH_FLOOR_FILES", "")


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


@app.get("/files/<path:name>")
def files(name: str):  # type: ignore[no-untyped-def]
    if not FILES:
        abort(404)
    return send_from_directory(FILES, name)
