"""What happens once money has moved: the seam between payments/refunds and receipts.

Called (inside the worker or a request) when a payment first reaches `succeeded` or a refund
first reaches `succeeded`, however that was learned (webhook, return page, reconcile). Both
only enqueue jobs whose ids make them idempotent; the receipt service guarantees one receipt.
"""

from __future__ import annotations

from payments_site.models import Payment, Refund
from payments_site.queues import enqueue


def payment_succeeded(payment: Payment) -> None:
    from payments_site.tasks.receipts import issue_payment_receipt

    enqueue("receipts", issue_payment_receipt, payment.id,
            job_id=f"receipt-payment-{payment.id}")


def refund_succeeded(refund: Refund) -> None:
    from payments_site.tasks.receipts import issue_refund_note

    enqueue("receipts", issue_refund_note, refund.id, job_id=f"receipt-refund-{refund.id}")
