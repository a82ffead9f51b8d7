"""The admin webhook page: list, filter, replay (admins only, CSRF, audit-logged)."""

from __future__ import annotations

import json
from typing import Any

from flask.testing import FlaskClient
from markupsafe import escape
from sqlalchemy import select

from payments_site.extensions import db
from payments_site.models import AuditLog
from tests.helpers import event_payload
from tests.webhooks.conftest import add_fault, event_rows, post_event, raw


def _store_events(client: FlaskClient, make_payment: Any, stripe_events: Any) -> Any:
    payment = make_payment()
    post_event(client, raw(stripe_events.one("payment_intent.succeeded",
                                             payment.stripe_payment_intent_id)))
    post_event(client, event_payload("customer.created", {"id": "cus_1"}, "evt_ignored_one"))
    return payment


def test_anonymous_is_sent_to_login(client: FlaskClient) -> None:
    response = client.get("/admin/webhooks")
    assert response.status_code == 302
    assert "/auth/login" in response.headers["Location"]


def test_customer_is_forbidden(login_as: Any, customer: Any) -> None:
    session = login_as(customer)
    assert session.get("/admin/webhooks").status_code == 403
    assert session.client.post("/admin/webhooks/evt_x/replay",
                               data={"csrf_token": session.csrf_token}).status_code == 403


def test_admin_sees_events_and_filters_by_status(
        client: FlaskClient, login_as: Any, admin: Any, make_payment: Any,
        stripe_events: Any, run_jobs: Any) -> None:
    _store_events(client, make_payment, stripe_events)
    session = login_as(admin)
    page = session.get("/admin/webhooks")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert "payment_intent.succeeded" in html and "customer.created" in html
    assert "evt_ignored_one" in html and "pending" in html
    assert page.headers["Cache-Control"].startswith("no-store")

    only_ignored = session.get("/admin/webhooks?status=ignored").get_data(as_text=True)
    assert "evt_ignored_one" in only_ignored and "payment_intent.succeeded" not in only_ignored
    run_jobs()
    processed = session.get("/admin/webhooks?status=processed").get_data(as_text=True)
    assert "payment_intent.succeeded" in processed and "evt_ignored_one" not in processed


def test_replay_needs_csrf_and_is_audit_logged(
        client: FlaskClient, login_as: Any, admin: Any, make_payment: Any,
        stripe_events: Any, run_jobs: Any) -> None:
    _store_events(client, make_payment, stripe_events)
    run_jobs()
    session = login_as(admin)
    row = next(r for r in event_rows() if r.type == "payment_intent.succeeded")

    forged = session.client.post(f"/admin/webhooks/{row.stripe_event_id}/replay")
    assert forged.status_code == 403
    assert event_rows()[0].attempts == 1

    response = session.client.post(f"/admin/webhooks/{row.stripe_event_id}/replay",
                                   data={"csrf_token": session.csrf_token},
                                   follow_redirects=True)
    assert response.status_code == 200
    assert "replayed: processed" in response.get_data(as_text=True)
    replayed = next(r for r in event_rows() if r.id == row.id)
    assert (replayed.status, replayed.attempts) == ("processed", 2)
    [entry] = db.session.scalars(select(AuditLog).where(AuditLog.action == "webhook.replayed"))
    assert entry.actor_id == admin.id
    assert json.loads(entry.details)["stripe_event_id"] == row.stripe_event_id

    missing = session.client.post("/admin/webhooks/evt_nope/replay",
                                  data={"csrf_token": session.csrf_token})
    assert missing.status_code == 404


def test_a_replay_shows_on_the_payments_timeline_with_the_admin(
        client: FlaskClient, login_as: Any, admin: Any, make_payment: Any,
        stripe_events: Any, run_jobs: Any) -> None:
    payment = _store_events(client, make_payment, stripe_events)
    run_jobs()
    session = login_as(admin)
    row = next(r for r in event_rows() if r.type == "payment_intent.succeeded")

    def timeline() -> str:
        html = session.get(f"/admin/payments/{payment.public_id}").get_data(as_text=True)
        return html[html.index('id="timeline"'):]

    assert "Stripe event replayed" not in timeline()
    session.client.post(f"/admin/webhooks/{row.stripe_event_id}/replay",
                        data={"csrf_token": session.csrf_token})
    page = timeline()
    entry = page[page.index("Stripe event replayed"):]
    entry = entry[:entry.index("</li>")]
    assert row.stripe_event_id in entry and "outcome: processed" in entry
    assert "by admin@example.com" in entry
    # Another payment's timeline, with events of its own, does not show it.
    other = make_payment()
    post_event(client, raw(stripe_events.one("payment_intent.succeeded",
                                             other.stripe_payment_intent_id)))
    html = session.get(f"/admin/payments/{other.public_id}").get_data(as_text=True)
    assert "Stripe event replayed" not in html


def test_the_page_shows_why_an_event_failed(
        app: Any, client: FlaskClient, emulator: Any, login_as: Any, admin: Any,
        make_payment: Any, stripe_events: Any, run_jobs: Any) -> None:
    payment = make_payment()
    # Stripe answers 500 to every attempt of the job's re-fetch.
    add_fault(emulator, method="GET", path_prefix="/v1/payment_intents", status=500,
              times=int(app.config["STRIPE_MAX_RETRIES"]) + 1)
    post_event(client, raw(stripe_events.one("payment_intent.succeeded",
                                             payment.stripe_payment_intent_id)))
    run_jobs(include_scheduled=False)
    [row] = event_rows()
    assert row.status == "failed" and row.last_error

    html = login_as(admin).get("/admin/webhooks?status=failed").get_data(as_text=True)
    cells = html[html.index(row.stripe_event_id):]
    cells = cells[:cells.index("</tr>")]
    assert f'<td class="small">{escape(row.last_error)}</td>' in cells
    assert "ProviderError" in cells and "next try" in cells
