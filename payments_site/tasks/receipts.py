"""Receipt jobs: issue the receipt / refund note PDF once, then email it."""

from __future__ import annotations

from payments_site.services import receipts


def issue_payment_receipt(payment_id: int) -> None:
    receipts.issue_payment_receipt(payment_id)


def issue_refund_note(refund_id: int) -> None:
    receipts.issue_refund_note(refund_id)
