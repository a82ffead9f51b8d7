"""Redis down at enqueue; a worker killed mid-job: nothing lost, nothing done twice."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import stripe
from flask import Flask
from flask.testing import FlaskClient
from rq.job import Job
from sqlalchemy import func, select

from payments_site.devtools.embedded_redis import EmbeddedRedis
from payments_site.devtools.stack import free_port
from payments_site.extensions import db
from payments_site.models import AuditLog, OutboundEmail, Payment, Receipt, WebhookEvent, utcnow
from payments_site.queues import get_queue, get_redis
from payments_site.services import sweeper
from tests.webhooks.conftest import add_fault, count, event_rows, post_event, raw, wait_until


@pytest.fixture
def own_redis(app: Flask, tmp_path: Path) -> Iterator[EmbeddedRedis]:
    """A Redis server of this test's own, which the test may stop and start."""
    server = EmbeddedRedis(tmp_path / "redis", port=free_port()).start()
    saved_client = app.extensions.pop("redis", None)
    app.config["REDIS_URL"] = server.url  # the app fixture restores the config afterwards
    yield server
    server.stop()
    app.extensions.pop("redis", None)
    if saved_client is not None:
        app.extensions["redis"] = saved_client


def test_redis_down_at_enqueue_then_back(client: FlaskClient, own_redis: EmbeddedRedis,
                                         make_payment: Any, stripe_events: Any,
                                         run_jobs: Any, mail_sink: Any) -> None:
    """RELIABILITY 25: Redis down at enqueue → the events are still committed and processed,
    once each, when Redis is back."""
    payments = [make_payment() for _ in range(3)]
    own_redis.stop()
    for payment in payments:
        event = stripe_events.one("payment_intent.succeeded", payment.stripe_payment_intent_id)
        started = time.monotonic()
        assert post_event(client, raw(event)).status_code == 200
        assert time.monotonic() - started < 5  # a dead Redis does not hang the webhook
    rows = event_rows()
    assert [(r.status, r.enqueued_at) for r in rows] == [("pending", None)] * 3
    assert sweeper.sweep_webhook_events(now=utcnow() + timedelta(minutes=1)) == 0  # still down

    own_redis.start()  # back, and empty: every job it held is gone
    # Fresh events wait for their own job a few seconds before the sweeper takes them.
    assert sweeper.sweep_webhook_events() == 0
    assert sweeper.sweep_webhook_events(now=utcnow() + timedelta(seconds=11)) == 3
    run_jobs()
    rows = event_rows()
    assert [(r.status, r.attempts) for r in rows] == [("processed", 1)] * 3
    assert all(r.enqueued_at is not None for r in rows)
    for payment in payments:
        db.session.refresh(payment)
        assert payment.status == "succeeded"
        assert count(Receipt, Receipt.payment_id == payment.id) == 1
    mail_sink.wait_for(3)
    assert count(OutboundEmail) == 3 and len(mail_sink.messages) == 3
    # A later sweep finds nothing to do.
    assert sweeper.sweep_webhook_events(now=utcnow() + timedelta(hours=1)) == 0


# --- a real `flask worker` process, killed mid-job ---------------------------------------------

def _worker_env(app: Flask, database_url: str, instance: Path) -> dict[str, str]:
    config = app.config
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FLASK_", "PYTEST_"))}
    env.update({
        "DATABASE_URL": database_url,
        "REDIS_URL": config["REDIS_URL"],
        "SECRET_KEY": config["SECRET_KEY"],
        "STRIPE_SECRET_KEY": config["STRIPE_SECRET_KEY"],
        "STRIPE_PUBLISHABLE_KEY": config["STRIPE_PUBLISHABLE_KEY"],
        "STRIPE_WEBHOOK_SECRET": ",".join(config["STRIPE_WEBHOOK_SECRET"]),
        "STRIPE_API_BASE": config["STRIPE_API_BASE"],
        "STRIPE_JS_URL": config["STRIPE_JS_URL"],
        "MAIL_SERVER": str(config["MAIL_SERVER"]),
        "MAIL_PORT": str(config["MAIL_PORT"]),
        "MAIL_DEFAULT_SENDER": config["MAIL_DEFAULT_SENDER"],
        "INSTANCE_PATH": str(instance),
        "SWEEP_INTERVAL": "1",
        # A claim outlives its job by far in production (10 min); here a dead worker's claim
        # expires after 3 s so the restarted worker's own sweeper takes it over.
        "WEBHOOK_PROCESSING_LEASE": "3",
        "APP_ENV": "development",
        # One job in flight at a time, so the kill lands on exactly one.
        "WORKER_PROCESSES": "1",
    })
    return env


class WorkerProcess:
    def __init__(self, env: dict[str, str], cwd: Path, log_path: Path) -> None:
        self.log = open(log_path, "ab")  # noqa: SIM115
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "flask", "--app", "payments_site", "worker"],
            env=env, cwd=cwd, stdout=self.log, stderr=subprocess.STDOUT,
            start_new_session=True)  # its own process group: RQ's scheduler is a child

    def kill(self) -> None:
        """SIGKILL the worker and its scheduler child, as when the machine dies."""
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=10)

    def stop(self) -> None:
        try:
            os.killpg(self.proc.pid, signal.SIGTERM)
            self.proc.wait(timeout=15)
        except ProcessLookupError:
            pass
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=5)
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)  # whatever is left of the group
        except ProcessLookupError:
            pass
        self.log.close()


def _statuses() -> dict[str, int]:
    db.session.expire_all()
    rows = db.session.execute(select(WebhookEvent.status, func.count())
                              .group_by(WebhookEvent.status)).tuples().all()
    return dict(rows)


def test_worker_killed_mid_job_every_effect_once(
        app: Flask, client: FlaskClient, database_url: str, tmp_path: Path, emulator: Any,
        make_payment: Any, make_user: Any, sc: stripe.StripeClient, mail_sink: Any) -> None:
    """RELIABILITY 26: 50 disputes; the worker is SIGKILLed while it holds one of them.
    After a restart (and the sweeper finding the dead claim) every payment is flagged once,
    audit-logged once and its alert emailed once (a repeat may only be the very same
    message)."""
    make_user("ops@example.com", role="admin")
    payments = [make_payment(card="4000000000000259", amount=1000 + i) for i in range(50)]
    events = sc.v1.events.list({"type": "charge.dispute.created", "limit": 100}).data
    assert len(events) == 50
    # Each re-fetch of a dispute takes a moment, so the kill lands inside a job.
    add_fault(emulator, method="GET", path_prefix="/v1/disputes", status=None, delay_s=0.15,
              times=1000)
    for event in events:
        assert post_event(client, raw(event.to_dict())).status_code == 200

    env = _worker_env(app, database_url, tmp_path)
    worker = WorkerProcess(env, tmp_path, tmp_path / "worker.log")
    try:
        wait_until(lambda: _statuses().get("processed", 0) >= 5, timeout=60,
                   message="the worker to get going")
        wait_until(lambda: _statuses().get("processing", 0) == 1, timeout=10,
                   message="a job in flight")
        worker.kill()
        at_kill = _statuses()
        assert at_kill.get("processing") == 1, at_kill
        assert at_kill.get("processed", 0) < 50
        stuck = db.session.scalar(select(WebhookEvent).where(
            WebhookEvent.status == "processing"))
        assert stuck is not None
        intent_id = json.loads(stuck.payload)["data"]["object"]["payment_intent"]
        in_flight = db.session.scalar(select(Payment).where(
            Payment.stripe_payment_intent_id == intent_id))
        assert in_flight is not None and in_flight.stripe_dispute_id is None  # nothing half-done

        worker = WorkerProcess(env, tmp_path, tmp_path / "worker.log")
        # Nothing but the restarted worker: its queue, then its sweeper for the dead claim.
        wait_until(lambda: _statuses() == {"processed": 50}, timeout=90,
                   message="all 50 events processed after the restart")
        wait_until(lambda: count(OutboundEmail, OutboundEmail.status == "sent") == 50,
                   timeout=60, message="50 alerts sent")
    finally:
        worker.stop()

    db.session.expire_all()
    for payment in payments:
        db.session.refresh(payment)
        assert payment.stripe_dispute_id is not None, payment.public_id
        assert count(AuditLog, AuditLog.action == "dispute.opened",
                     AuditLog.payment_id == payment.id) == 1
    assert count(OutboundEmail, OutboundEmail.kind == "dispute") == 50
    stuck_row = db.session.get_one(WebhookEvent, stuck.id)
    assert stuck_row.attempts == 2  # the killed attempt, then the one that finished
    message_ids = [m["Message-ID"] for m in mail_sink.messages]
    stored_ids = set(db.session.scalars(select(OutboundEmail.message_id)))
    assert set(message_ids) == stored_ids  # every alert arrived; no stranger message
    assert len(message_ids) <= 51  # at most the one in flight at the kill repeated as-is


def test_worker_processes_share_the_queue_and_apply_each_event_once(
        app: Flask, client: FlaskClient, database_url: str, tmp_path: Path, emulator: Any,
        make_payment: Any) -> None:
    """`flask worker --processes 3`: three processes take jobs from the same queues at once
    (each re-fetch waits on a slow Stripe), and every event is still applied once: each
    payment succeeded with one receipt, each event processed in one attempt."""
    payments = [make_payment(amount=1000 + i) for i in range(12)]
    add_fault(emulator, method="GET", path_prefix="/v1/payment_intents", status=None,
              delay_s=0.3, times=1000)
    for payment in payments:
        event = {"id": f"evt_multi_{payment.id}", "object": "event",
                 "type": "payment_intent.succeeded", "api_version": "2024-06-20",
                 "created": int(time.time()), "livemode": False,
                 "data": {"object": {"id": payment.stripe_payment_intent_id,
                                     "object": "payment_intent"}}}
        assert post_event(client, raw(event)).status_code == 200
    env = _worker_env(app, database_url, tmp_path)
    result = subprocess.run(
        [sys.executable, "-m", "flask", "--app", "payments_site", "worker", "--burst",
         "--processes", "3", "--queues", "webhooks,payments,receipts"],
        env=env, cwd=tmp_path, capture_output=True, text=True, timeout=180)
    assert result.returncode == 0, result.stderr[-2000:]

    assert _statuses() == {"processed": 12}
    assert all(row.attempts == 1 for row in event_rows())
    for payment in payments:
        db.session.refresh(payment)
        assert payment.status == "succeeded"
        assert count(Receipt, Receipt.payment_id == payment.id) == 1
    registry = get_queue("webhooks").finished_job_registry
    jobs = [j for j in Job.fetch_many(registry.get_job_ids(), connection=get_redis()) if j]
    assert len(jobs) == 12
    assert len({job.worker_name for job in jobs}) == 3  # the work was shared


@pytest.mark.parametrize("value", ["0", "-2", "many"])
def test_worker_processes_refuses_a_count_below_one(app: Flask, database_url: str,
                                                    tmp_path: Path, value: str) -> None:
    env = _worker_env(app, database_url, tmp_path)
    flag = subprocess.run([sys.executable, "-m", "flask", "--app", "payments_site", "worker",
                           "--burst", "--processes", value], env=env, cwd=tmp_path,
                          capture_output=True, text=True, timeout=60)
    assert flag.returncode == 2 and "--processes" in flag.stderr
    setting = subprocess.run([sys.executable, "-m", "flask", "--app", "payments_site",
                              "worker", "--burst"], env={**env, "WORKER_PROCESSES": value},
                             cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert setting.returncode != 0 and "WORKER_PROCESSES" in setting.stderr
