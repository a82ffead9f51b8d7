"""Receipt jobs: issue the receipt / refund note PDF once, then email it."""

from __future__ import annotations


def issue_payment_receipt(payment_id: int) -> None:
    from payments_site.services import receipts

    receipts.issue_payment_receipt(payment_id)


def issue_refund_note(refund_id: int) -> None:
    from payments_site.services import receipts

    receipts.issue_refund_note(refund_id)
