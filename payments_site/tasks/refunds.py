"""Refund jobs (queue "payments"): send a pending refund to Stripe; retried while Stripe is down."""

from __future__ import annotations


def submit_refund(refund_id: int) -> None:
    from payments_site.services import refunds

    refunds.submit_refund(refund_id)
