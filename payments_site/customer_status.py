"""What a customer reads about a payment: one plain word for its state, and its badge style.

Customer pages and emails use these words only; Stripe's own statuses (requires_action,
succeeded…) stay on the admin pages and in the JSON API, where they are the contract.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from payments_site.money import format_money

# Stripe's dispute states that no longer hold the money back from the merchant: the bank's
# inquiry closed without a chargeback, or the merchant won.
SETTLED_DISPUTES = frozenset({"won", "warning_closed"})


class PaymentState(Protocol):
    """The parts of a payment its customer-facing state depends on."""

    status: str
    amount: int
    amount_refunded: int
    currency: str
    stripe_dispute_id: str | None
    dispute_status: str | None


@dataclass(frozen=True)
class CustomerStatus:
    key: str  # stable machine word: paid, partially_refunded… (data attributes, CSS)
    label: str  # what the customer reads: "Partially refunded · $5.00"

    @property
    def badge(self) -> str:
        """The badge's CSS class."""
        return f"badge badge-{self.key.replace('_', '-')}"


WORDS = {
    "paid": "Paid",
    "processing": "Processing",
    "not_completed": "Not completed",
    "failed": "Failed",
    "refunded": "Refunded",
    "partially_refunded": "Partially refunded",
    "canceled": "Canceled",
    "disputed": "Disputed",
}

# Our payment status -> the customer's word. An attempt that was started but not finished
# (no card sent yet, or the bank's 3-D Secure check never completed) is "not completed".
_BY_STATUS = {
    "succeeded": "paid",
    "processing": "processing",
    "requires_action": "not_completed",
    "requires_payment_method": "not_completed",
    "failed": "failed",
    "canceled": "canceled",
}


def customer_status(payment: PaymentState, locale: str = "en_US") -> CustomerStatus:
    """The one word for a payment's state (a dispute first, then refunds, then its status)."""
    if payment.stripe_dispute_id and payment.dispute_status not in SETTLED_DISPUTES:
        key = "disputed"
    elif payment.status == "succeeded" and payment.amount_refunded >= payment.amount > 0:
        key = "refunded"
    elif payment.status == "succeeded" and payment.amount_refunded > 0:
        refunded = format_money(payment.amount_refunded, payment.currency, locale)
        return CustomerStatus("partially_refunded",
                              f"{WORDS['partially_refunded']} · {refunded}")
    else:
        key = _BY_STATUS.get(payment.status, "processing")
    return CustomerStatus(key, WORDS[key])


# A refund's own state, as the customer reads it next to its amount.
REFUND_WORDS = {"pending": "Pending", "succeeded": "Refunded", "failed": "Failed"}


def refund_status_label(status: str) -> str:
    return REFUND_WORDS.get(status, "Pending")


@dataclass(frozen=True)
class HistoryFilter:
    value: str  # the query value (?status=)
    label: str
    statuses: tuple[str, ...]  # the payment statuses it shows


# The history page's status filter, in the customer's words. The query values are the API's
# statuses, except `not_completed`, which stands for both unfinished ones.
HISTORY_FILTERS = (
    HistoryFilter("succeeded", WORDS["paid"], ("succeeded",)),
    HistoryFilter("processing", WORDS["processing"], ("processing",)),
    HistoryFilter("not_completed", WORDS["not_completed"],
                  ("requires_action", "requires_payment_method")),
    HistoryFilter("failed", WORDS["failed"], ("failed",)),
    HistoryFilter("canceled", WORDS["canceled"], ("canceled",)),
)
