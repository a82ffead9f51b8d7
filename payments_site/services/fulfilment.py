"""What happens once money has moved: the seam between payments/refunds and receipts.

Called (inside the worker or a request) when a payment first reaches `succeeded` or a refund
first reaches `succeeded`, however that was learned (webhook, return page, reconcile). Both
only queue jobs whose ids make them idempotent; the receipt service guarantees one receipt.
"""

from __future__ import annotations

from payments_site import jobs
from payments_site.models import Payment, Refund


def payment_succeeded(payment: Payment) -> None:
    jobs.issue_payment_receipt(payment.id)


def refund_succeeded(refund: Refund) -> None:
    jobs.issue_refund_note(refund.id)
