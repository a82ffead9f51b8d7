"""The admin's view of payments: search with keyset paging, and the emails that gave up."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

from sqlalchemy import Select, or_, select
from sqlalchemy.orm import contains_eager

from payments_site.extensions import db
from payments_site.models import OutboundEmail, Payment, User
from payments_site.services import emails, paging

DEFAULT_PAGE_SIZE = 25
MAX_PAGE_SIZE = 100
# Beyond the payment statuses, the list can show only disputed or only refunded payments.
EXTRA_FILTERS = ("disputed", "refunded")
BAD_PAGE_LINK = "The page link is invalid."


@dataclass(frozen=True)
class PaymentFilters:
    """Which payments to list: text (customer email, pay_…, pi_…, ch_…), a status or one of
    EXTRA_FILTERS, a range of UTC days, and the page size."""

    query: str = ""
    status: str = ""
    date_from: date | None = None
    date_to: date | None = None
    limit: int = DEFAULT_PAGE_SIZE


@dataclass
class PaymentPage:
    payments: list[Payment]
    older_cursor: str | None  # pass as `after` to see the next (older) page
    newer_cursor: str | None  # pass as `before` to see the previous (newer) page


def search_payments(filters: PaymentFilters, *, after: str | None = None,
                    before: str | None = None) -> PaymentPage:
    """One page of payments, newest first; customers joined and items batch-loaded (no N+1)."""
    stmt = _filtered(filters)
    newest_first = True
    if after:
        stmt = stmt.where(paging.older_than(paging.decode_cursor(
            after, param="after", message=BAD_PAGE_LINK)))
    elif before:
        stmt = stmt.where(paging.newer_than(paging.decode_cursor(
            before, param="before", message=BAD_PAGE_LINK)))
        newest_first = False
    order = (Payment.created_at.desc(), Payment.id.desc()) if newest_first \
        else (Payment.created_at.asc(), Payment.id.asc())
    rows = list(db.session.scalars(stmt.order_by(*order).limit(filters.limit + 1)).unique())
    has_more = len(rows) > filters.limit
    rows = rows[:filters.limit]
    if not newest_first:
        rows.reverse()
    if not rows:
        return PaymentPage([], None, None)
    # Going older: more exist past the last row; newer ones exist if we came from a cursor.
    more_older = has_more if newest_first else True
    more_newer = (has_more if not newest_first else bool(after))
    return PaymentPage(rows, paging.encode_cursor(rows[-1]) if more_older else None,
                       paging.encode_cursor(rows[0]) if more_newer else None)


def _filtered(filters: PaymentFilters) -> Select[Payment]:
    stmt = select(Payment).join(Payment.user).options(contains_eager(Payment.user))
    if filters.query:
        text = filters.query
        like = "%" + text.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") \
            + "%"
        stmt = stmt.where(or_(Payment.public_id == text,
                              Payment.stripe_payment_intent_id == text,
                              Payment.stripe_charge_id == text,
                              User.email.ilike(like, escape="\\")))
    if filters.status == "disputed":
        stmt = stmt.where(Payment.stripe_dispute_id.is_not(None))
    elif filters.status == "refunded":
        stmt = stmt.where(Payment.amount_refunded > 0)
    elif filters.status:
        stmt = stmt.where(Payment.status == filters.status)
    if filters.date_from:
        stmt = stmt.where(Payment.created_at >= datetime.combine(filters.date_from, time(),
                                                                 tzinfo=UTC))
    if filters.date_to:
        end = datetime.combine(filters.date_to, time(), tzinfo=UTC) + timedelta(days=1)
        stmt = stmt.where(Payment.created_at < end)
    return stmt


# --- Emails that gave up -------------------------------------------------------------------

@dataclass(frozen=True)
class FailedEmail:
    email: OutboundEmail
    payment_public_id: str | None  # the payment it is about, for the link; None if none


def failed_emails(limit: int = 100) -> list[FailedEmail]:
    """Failed emails, newest first, with their payments' public ids (one query for those)."""
    rows = emails.failed_emails(limit)
    payment_ids = {email.payment_id for email in rows if email.payment_id}
    public_ids = dict(db.session.execute(
        select(Payment.id, Payment.public_id).where(Payment.id.in_(payment_ids)))
        .tuples().all()) if payment_ids else {}
    return [FailedEmail(email, public_ids.get(email.payment_id) if email.payment_id else None)
            for email in rows]
