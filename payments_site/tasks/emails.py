"""Email jobs: deliver one stored outbound email; a sent one is never sent again."""

from __future__ import annotations

from payments_site.services import emails


def send_email(email_id: int) -> str:
    return emails.deliver(email_id)
