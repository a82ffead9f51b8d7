"""The admin's view of payments: search with keyset paging, and the emails that gave up."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

from sqlalchemy import Select, or_, select
from sqlalchemy.orm import contains_eager

from payments_site.errors import InvalidRequest
from payments_site.extensions import db
from payments_site.models import PAYMENT_STATUSES, OutboundEmail, Payment, User
from payments_site.services import emails, paging

DEFAULT_PAGE_SIZE = 25
MAX_PAGE_SIZE = 100
# Beyond the payment statuses, the list can show only disputed or only refunded payments.
EXTRA_FILTERS = ("disputed", "refunded")
BAD_PAGE_LINK = "The page link is invalid."


@dataclass(frozen=True)
class PaymentFilters:
    query: str = ""
    status: str = ""
    date_from: date | None = None
    date_to: date | None = None
    limit: int = DEFAULT_PAGE_SIZE

    def as_args(self) -> dict[str, str]:
        """The filters as query-string arguments (for the paging links)."""
        args = {"q": self.query, "status": self.status,
                "from": self.date_from.isoformat() if self.date_from else "",
                "to": self.date_to.isoformat() if self.date_to else ""}
        if self.limit != DEFAULT_PAGE_SIZE:
            args["limit"] = str(self.limit)
        return {k: v for k, v in args.items() if v}


@dataclass
class PaymentPage:
    payments: list[Payment]
    older_cursor: str | None  # pass as `after` to see the next (older) page
    newer_cursor: str | None  # pass as `before` to see the previous (newer) page


def parse_filters(args: dict[str, str]) -> PaymentFilters:
    """Filters from the query string; 400 with the field's name when one is malformed."""
    status = (args.get("status") or "").strip()
    if status and status not in PAYMENT_STATUSES and status not in EXTRA_FILTERS:
        raise InvalidRequest("Unknown status filter.", param="status")
    limit_text = (args.get("limit") or "").strip()
    limit = DEFAULT_PAGE_SIZE
    if limit_text:
        if not limit_text.isdigit() or not 1 <= int(limit_text) <= MAX_PAGE_SIZE:
            raise InvalidRequest(f"limit must be 1 to {MAX_PAGE_SIZE}.", param="limit")
        limit = int(limit_text)
    date_from, date_to = _date(args, "from"), _date(args, "to")
    if date_from and date_to and date_from > date_to:
        raise InvalidRequest("The 'from' date is after the 'to' date.", param="from")
    return PaymentFilters(query=(args.get("q") or "").strip()[:254], status=status,
                          date_from=date_from, date_to=date_to, limit=limit)


def _date(args: dict[str, str], name: str) -> date | None:
    text = (args.get(name) or "").strip()
    if not text:
        return None
    try:
        return date.fromisoformat(text)
    except ValueError as error:
        raise InvalidRequest(f"'{name}' must be a date such as 2025-01-31.",
                             param=name) from error


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
