"""Admin page of the webhook inbox: recent events, errors, replay."""

from __future__ import annotations

from flask import Blueprint, flash, redirect, render_template, request, url_for
from flask_login import current_user, login_required

from payments_site.models.webhook_event import WEBHOOK_STATUSES
from payments_site.security import require_admin
from payments_site.services import webhooks

bp = Blueprint("admin_webhooks", __name__, url_prefix="/admin/webhooks")

PAGE_SIZE = 50


@bp.before_request
@login_required
def admins_only() -> None:
    """Anonymous visitors go to the login page (login_required); customers get 403."""
    require_admin()


@bp.get("")
def index():
    """Recent events, newest first, optionally of one status; `before` pages back."""
    status = request.args.get("status") or None
    if status not in WEBHOOK_STATUSES:
        status = None
    before_id = request.args.get("before", type=int)
    events = webhooks.recent_events(status=status, before_id=before_id, limit=PAGE_SIZE + 1)
    older = events[PAGE_SIZE - 1].id if len(events) > PAGE_SIZE else None
    return render_template("admin/webhooks.html", events=events[:PAGE_SIZE], status=status,
                           statuses=WEBHOOK_STATUSES, older=older, before=before_id,
                           max_attempts=webhooks.max_attempts())


@bp.post("/<event_id>/replay")
def replay(event_id: str):
    """Re-process one event now (audit-logged) and say how it went."""
    event = webhooks.replay_event(event_id, actor=current_user)
    if event.status in ("processed", "ignored"):
        flash(f"Event {event.stripe_event_id} replayed: {event.status}.", "success")
    elif event.status == "processing":
        flash(f"Event {event.stripe_event_id} is being processed by a worker right now.",
              "warning")
    else:
        flash(f"Event {event.stripe_event_id} failed again: {event.last_error}", "error")
    return redirect(url_for("admin_webhooks.index", status=request.form.get("status") or None))
