"""Migration 0002 cleans up the payments older builds made when the checkout page opened.

Built from the real migrations on a fresh database of each backend in use: migrated to 0001,
filled with the rows an older build left, then upgraded.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime

import psycopg
import pytest
from flask import Flask
from flask_migrate import upgrade
from sqlalchemy import text

from payments_site import create_app
from payments_site.config import engine_options
from payments_site.extensions import db
from tests.harness.services import postgres_admin_url

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


@pytest.fixture(params=["sqlite", "postgresql"])
def old_database(request: pytest.FixtureRequest, app: Flask, database_url: str,
                 tmp_path) -> Iterator[Flask]:
    """A new database at revision 0001 (app context pushed)."""
    if request.param == "sqlite":
        url, drop = f"sqlite:///{tmp_path / 'old.db'}", None
    else:
        if not database_url.startswith("postgresql"):
            pytest.skip("PostgreSQL is not in use for this run")
        name = f"payments_site_mig_{uuid.uuid4().hex[:10]}"
        admin = postgres_admin_url()
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        url, drop = re.sub(r"/[^/]*$", f"/{name}", admin), name
    config = {k: v for k, v in app.config.items() if k.isupper() and k != "SERVER_NAME"}
    from payments_site.config import normalize_database_url

    old_app = create_app({**config, "SQLALCHEMY_DATABASE_URI": normalize_database_url(url),
                          "SQLALCHEMY_ENGINE_OPTIONS": engine_options(url)})
    with old_app.app_context():
        upgrade(revision="0001_initial")
        yield old_app
        db.session.remove()
        db.engine.dispose()
    if drop:
        with psycopg.connect(postgres_admin_url(), autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{drop}" WITH (FORCE)')


def _insert(conn, public_id, **values):
    row = {"public_id": public_id, "user_id": 1, "status": "requires_payment_method",
           "amount": 1999, "currency": "usd", "amount_refunded": 0, "refund_reserved": 0,
           "description": "1 × Ceramic mug", "cart_hash": public_id, "save_payment_method": False,
           "needs_reconcile": False, "confirm_attempts": 0, "created_at": NOW,
           "updated_at": NOW, "stripe_payment_intent_id": None, "card_last4": None,
           "failure_code": None, **values}
    columns = ", ".join(row)
    conn.execute(text(f"INSERT INTO payments ({columns}) VALUES "
                      f"({', '.join(':' + k for k in row)})"), row)


def test_phantom_payments_are_canceled_or_flagged_and_real_attempts_kept(old_database):
    with db.engine.begin() as conn:
        conn.execute(text("INSERT INTO users (id, email, name, password_hash, role, locale, "
                          "created_at) VALUES (1, 'c@example.com', 'C', 'x', 'customer', "
                          "'en_US', :now)"), {"now": NOW})
        _insert(conn, "pay_no_intent")
        _insert(conn, "pay_no_intent_maybe_lost", needs_reconcile=True)
        _insert(conn, "pay_intent_never_tried", stripe_payment_intent_id="pi_never")
        _insert(conn, "pay_declined", stripe_payment_intent_id="pi_declined", status="failed",
                failure_code="card_declined", card_last4="0002")
        _insert(conn, "pay_3ds_abandoned", stripe_payment_intent_id="pi_3ds",
                status="requires_action", card_last4="3155")
        _insert(conn, "pay_saved_card_tried", stripe_payment_intent_id="pi_saved",
                confirm_attempts=1)
        _insert(conn, "pay_paid", stripe_payment_intent_id="pi_paid", status="succeeded",
                card_last4="4242")
    upgrade()
    with db.engine.connect() as conn:
        rows = {r.public_id: (r.status, bool(r.cancel_requested), r.checkout_attempt)
                for r in conn.execute(text("SELECT public_id, status, cancel_requested, "
                                           "checkout_attempt FROM payments"))}
    assert rows == {
        "pay_no_intent": ("canceled", False, None),
        "pay_no_intent_maybe_lost": ("requires_payment_method", False, None),
        "pay_intent_never_tried": ("requires_payment_method", True, None),
        "pay_declined": ("failed", False, None),
        "pay_3ds_abandoned": ("requires_action", False, None),
        "pay_saved_card_tried": ("requires_payment_method", False, None),
        "pay_paid": ("succeeded", False, None),
    }
