"""Refund jobs (queue "payments"): send a pending refund to Stripe; retried while Stripe is down."""

from __future__ import annotations

from payments_site.services import refunds


def submit_refund(refund_id: int) -> None:
    refunds.submit_refund(refund_id)
