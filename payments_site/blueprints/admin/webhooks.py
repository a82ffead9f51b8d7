"""Admin page of the webhook inbox: recent events, errors, replay."""

from __future__ import annotations

from flask import flash, redirect, render_template, url_for
from flask_login import current_user
from werkzeug.wrappers import Response

from payments_site.blueprints import parsing
from payments_site.blueprints.admin.blueprint import bp
from payments_site.models.webhook_event import WEBHOOK_STATUSES
from payments_site.services import webhooks

PAGE_SIZE = 50


@bp.get("/webhooks")
def webhook_events() -> str:
    """Recent events, newest first, optionally of one status; `before` pages back."""
    asked = parsing.query(parsing.WebhookEventsQuery)
    events = webhooks.recent_events(status=asked.status, before_id=asked.before,
                                    limit=PAGE_SIZE + 1)
    older = events[PAGE_SIZE - 1].id if len(events) > PAGE_SIZE else None
    return render_template("admin/webhooks.html", events=events[:PAGE_SIZE],
                           status=asked.status, statuses=WEBHOOK_STATUSES, older=older,
                           before=asked.before, max_attempts=webhooks.max_attempts())


@bp.post("/webhooks/<event_id>/replay")
def replay_webhook(event_id: str) -> Response:
    """Re-process one event now (audit-logged) and say how it went."""
    event = webhooks.replay_event(event_id, actor=current_user)
    if event.status in ("processed", "ignored"):
        flash(f"Event {event.stripe_event_id} replayed: {event.status}.", "success")
    elif event.status == "processing":
        flash(f"Event {event.stripe_event_id} is being processed by a worker right now.",
              "warning")
    else:
        flash(f"Event {event.stripe_event_id} failed again: {event.last_error}", "error")
    back_to = parsing.form(parsing.WebhookReplayForm).status
    return redirect(url_for("admin.webhook_events", status=back_to))
