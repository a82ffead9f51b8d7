"""Webhook jobs: process one stored Stripe event (safe to run twice: the event is claimed)."""

from __future__ import annotations


def process_webhook_event(event_row_id: int) -> str:
    from payments_site.services import webhooks

    return webhooks.process_event(event_row_id)

