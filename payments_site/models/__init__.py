"""The data model; importing this package registers every table on the metadata."""

from payments_site.models.audit import AuditLog
from payments_site.models.base import (
    EARLIEST_MOMENT,
    ID_MAX,
    LATEST_MOMENT,
    Base,
    public_id,
    utcnow,
)
from payments_site.models.daily_total import DailyTotal
from payments_site.models.email import OutboundEmail
from payments_site.models.idempotency import IdempotencyKey
from payments_site.models.payment import (
    PAYMENT_STATUSES,
    TERMINAL_STATUSES,
    Payment,
    PaymentItem,
    PaymentMethod,
    PaymentStatus,
)
from payments_site.models.product import Product
from payments_site.models.receipt import Receipt, ReceiptSequence
from payments_site.models.refund import (
    REFUND_REASONS,
    REFUND_STATUSES,
    Refund,
    RefundReason,
    RefundStatus,
)
from payments_site.models.user import ROLES, User
from payments_site.models.webhook_event import WebhookEvent

__all__ = [
    "EARLIEST_MOMENT", "ID_MAX", "LATEST_MOMENT", "PAYMENT_STATUSES", "REFUND_REASONS",
    "REFUND_STATUSES", "ROLES", "TERMINAL_STATUSES",
    "AuditLog", "Base", "DailyTotal", "IdempotencyKey", "OutboundEmail", "Payment",
    "PaymentItem",
    "PaymentMethod", "PaymentStatus", "Product", "Receipt", "ReceiptSequence", "Refund",
    "RefundReason", "RefundStatus", "User", "WebhookEvent", "public_id", "utcnow",
]
