"""Webhook jobs: process one stored Stripe event (safe to run twice: the event is claimed)."""

from __future__ import annotations

from payments_site.services import webhooks


def process_webhook_event(event_row_id: int) -> str:
    return webhooks.process_event(event_row_id)
