"""Outbound email: queue a message once (by dedupe key), send it with Flask-Mail, record it.

The guarantee: at-least-once delivery with at most one distinct message per row. The row is
written (with its Message-ID, Date, sender and bodies) before anything is sent, and every
attempt builds the message from the row alone, so a worker killed after the SMTP server
accepted a message but before `sent_at` was recorded can only repeat the very same bytes.
"""

from __future__ import annotations

import hashlib
import logging
import smtplib
import uuid
from datetime import datetime, timedelta
from email.message import Message as MimeMessage
from email.utils import formatdate, parseaddr
from typing import Any

from flask import current_app
from flask_mail import Attachment, BadHeaderError, Connection, Message
from redis.exceptions import LockError
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import undefer

from payments_site import jobs, metrics
from payments_site.db import discard, unit_of_work, update_committed, update_rows
from payments_site.errors import NotFound
from payments_site.extensions import db
from payments_site.models import OutboundEmail, Payment, Receipt, User, utcnow
from payments_site.queues import get_redis
from payments_site.services import audit

log = logging.getLogger(__name__)

# A sender holds this lock while it talks to SMTP, so two copies of one job never send
# concurrently; it expires on its own if the worker dies.
SEND_LEASE_SECONDS = 300


class EmailNotSent(RuntimeError):
    """The SMTP server did not take the message; the job fails so RQ retries it later."""


class EmailBusy(RuntimeError):
    """Another worker is sending this message right now; the job retries later."""


# --- queueing ---------------------------------------------------------------------------------

def new_message_id() -> str:
    """A unique Message-ID of hex characters: unlike make_msgid's long decimal runs, it can
    never look like a card number to a data-loss scanner."""
    return f"<{uuid.uuid4().hex}@{_message_id_domain()}>"


def new_email(*, dedupe_key: str, kind: str, to: str, subject: str, text_body: str,
              html_body: str | None = None, payment_id: int | None = None,
              receipt_id: int | None = None) -> OutboundEmail:
    """A pending email row, not yet added to the session.

    For a caller that must record the email in the same transaction as the change it is
    about (a receipt): it adds the row, commits, then calls `queue_delivery`.
    """
    return OutboundEmail(
        message_id=new_message_id(), dedupe_key=dedupe_key,
        kind=kind, to_address=to, subject=subject, body_text=text_body,
        body_html=html_body, sender=merchant_sender(),
        payment_id=payment_id, receipt_id=receipt_id, status="pending",
        # Whole seconds: the Date header is built from it on every attempt.
        created_at=utcnow().replace(microsecond=0))


def merchant_sender() -> str:
    """`"<MERCHANT_NAME>" <address>`: every email is from the merchant's name, the one its
    subject and documents name, at the address of MAIL_DEFAULT_SENDER (whatever display name
    that setting carries)."""
    config = current_app.config
    _, address = parseaddr(str(config.get("MAIL_DEFAULT_SENDER") or ""))
    if not address:
        return str(config.get("MAIL_DEFAULT_SENDER") or "")
    # One line, quoted: a name with commas, quotes or a line break cannot change the header.
    name = " ".join(str(config["MERCHANT_NAME"]).split())
    return '"{}" <{}>'.format(name.replace("\\", "\\\\").replace('"', '\\"'), address)


def send_later(*, dedupe_key: str, kind: str, to: str, subject: str, text_body: str,
               html_body: str | None = None, payment_id: int | None = None,
               receipt_id: int | None = None) -> OutboundEmail:
    """Record an email once per `dedupe_key` (commits) and queue its delivery.

    Calling it again with the same key returns the existing row and changes nothing about
    the message (a pending one is queued again, which is harmless). For receipt emails
    (`receipt_id`), the stored PDF is attached when it is sent.
    """
    email = _by_dedupe_key(dedupe_key)
    if email is None:
        try:
            with unit_of_work():
                email = new_email(dedupe_key=dedupe_key, kind=kind, to=to, subject=subject,
                                  text_body=text_body, html_body=html_body,
                                  payment_id=payment_id, receipt_id=receipt_id)
                db.session.add(email)
        except IntegrityError:
            # Another worker recorded the same email first: use its row.
            email = _by_dedupe_key(dedupe_key)
            if email is None:
                raise
    if email.status == "pending":
        queue_delivery(email)
    return email


def queue_delivery(email: OutboundEmail) -> bool:
    """Enqueue the delivery job; False when Redis is down (the sweeper re-queues it)."""
    return jobs.send_email(email.id)


def requeue_pending_emails(older_than: timedelta = timedelta(minutes=5),
                           limit: int = 500) -> int:
    """Queue again pending emails whose job is gone (Redis was down, or RQ gave up on it).

    Run by the sweeper. Emails whose job RQ still holds (queued, running, or a retry waiting
    out its backoff) are left alone; a message already sent is never sent again.
    """
    cutoff = utcnow() - older_than
    emails = db.session.scalars(
        select(OutboundEmail).where(OutboundEmail.status == "pending",
                                    OutboundEmail.created_at < cutoff)
        .order_by(OutboundEmail.id).limit(limit)).all()
    queued = 0
    for email in emails:
        if jobs.waiting(jobs.email_job_id(email.id)):
            continue
        if not queue_delivery(email):
            break  # Redis is down: the next sweep tries again
        queued += 1
    return queued


def failed_emails(limit: int = 100) -> list[OutboundEmail]:
    """Emails that gave up (for the admin list), newest first."""
    return list(db.session.scalars(
        select(OutboundEmail).where(OutboundEmail.status == "failed")
        .order_by(OutboundEmail.created_at.desc(), OutboundEmail.id.desc()).limit(limit)))


def retry_failed_email(email_id: int, *, actor: User | None = None) -> bool:
    """Put a failed email back in the queue with a fresh set of attempts (admin action).

    The move is audit-logged (who, which email, its payment) in the same transaction.
    NotFound for an unknown id; False when the email is not failed (retried already).
    If Redis is down the email stays pending and the sweeper queues it.
    """
    email = db.session.get(OutboundEmail, email_id)
    if email is None:
        raise NotFound("No such email.")
    attempts, last_error = email.attempts, email.last_error
    with unit_of_work():
        retried = update_rows(OutboundEmail, OutboundEmail.id == email_id,
                              OutboundEmail.status == "failed", status="pending", attempts=0)
        if retried:
            payment = db.session.get(Payment, email.payment_id) if email.payment_id else None
            audit.record("email.retried", actor=actor, payment=payment, email_id=email_id,
                         to=email.to_address, subject=email.subject, kind=email.kind,
                         previous_attempts=attempts, last_error=last_error)
    if not retried:
        return False
    db.session.refresh(email)
    queue_delivery(email)
    return True


# --- delivery ---------------------------------------------------------------------------------

def deliver(email_id: int) -> str:
    """Send one stored email unless it was already sent; returns the row's status after.

    Raises EmailNotSent (transient SMTP failure, recorded on the row) or EmailBusy so RQ
    retries the job with backoff.
    """
    lock = get_redis().lock(f"payments_site:email-send:{email_id}",
                            timeout=SEND_LEASE_SECONDS, blocking=False)
    if not lock.acquire(blocking=False):
        raise EmailBusy(f"email {email_id} is being sent by another worker")
    try:
        return _deliver_locked(email_id)
    finally:
        try:
            lock.release()
        except LockError:
            pass  # the lease ran out; nothing of ours left to release


def _deliver_locked(email_id: int) -> str:
    email = db.session.get(OutboundEmail, email_id, populate_existing=True)
    if email is None:
        log.warning("outbound email %s does not exist", email_id)
        return "missing"
    if email.status != "pending":
        return email.status

    # Count the attempt before talking to SMTP, so even a killed worker leaves a trace.
    update_committed(OutboundEmail, OutboundEmail.id == email_id,
                     OutboundEmail.status == "pending", attempts=OutboundEmail.attempts + 1)

    message = build_message(email)
    accepted = False
    try:
        with _SmtpConnection(current_app.extensions["mail"]) as connection:
            connection.send(message)
            accepted = True
    except (smtplib.SMTPException, OSError, BadHeaderError) as error:
        if not accepted:
            return _record_failure(email_id, error)
        # Only QUIT failed: the server already took the message.
        log.info("email %s accepted; closing the SMTP session failed: %s", email_id,
                 error.__class__.__name__)
    _record_sent(email_id)
    metrics.email_attempt("sent")
    log.info("sent email %s (%s) %s", email_id, email.kind, email.message_id)
    return "sent"


def _record_sent(email_id: int) -> None:
    now = utcnow()
    with unit_of_work():
        update_rows(OutboundEmail, OutboundEmail.id == email_id,
                    OutboundEmail.status == "pending", status="sent", sent_at=now,
                    last_error=None)
        receipt_id = db.session.scalar(select(OutboundEmail.receipt_id)
                                       .where(OutboundEmail.id == email_id))
        if receipt_id is not None:
            update_rows(Receipt, Receipt.id == receipt_id, Receipt.emailed_at.is_(None),
                        emailed_at=now)


def _record_failure(email_id: int, error: Exception) -> str:
    discard()
    email = db.session.get(OutboundEmail, email_id, populate_existing=True)
    assert email is not None
    permanent = _is_permanent(error)
    gave_up = permanent or email.attempts >= int(current_app.config["MAIL_MAX_ATTEMPTS"])
    status = "failed" if gave_up else "pending"
    update_committed(OutboundEmail, OutboundEmail.id == email_id,
                     OutboundEmail.status == "pending", status=status,
                     last_error=_describe(error))
    metrics.email_attempt("failed" if gave_up else "retrying")
    log.warning("email %s not sent (attempt %s, %s): %s", email_id, email.attempts, status,
                error.__class__.__name__)
    if gave_up:
        return status
    raise EmailNotSent(_describe(error)) from error


def _is_permanent(error: Exception) -> bool:
    """A 5xx answer (recipient or sender refused) or a malformed header will not change on a
    retry."""
    if isinstance(error, BadHeaderError):
        return True
    if isinstance(error, smtplib.SMTPRecipientsRefused):
        return all(code >= 500 for code, _ in error.recipients.values())
    if isinstance(error, smtplib.SMTPResponseException):
        return 500 <= error.smtp_code < 600
    return False


def _describe(error: Exception) -> str:
    return f"{error.__class__.__name__}: {error}"[:1000]


# --- building the message ---------------------------------------------------------------------

def build_message(email: OutboundEmail) -> Message:
    """The Flask-Mail message for a row; the same row always gives the same bytes."""
    attachments: list[Attachment] = []
    if email.receipt_id is not None:
        receipt = db.session.scalar(select(Receipt).options(undefer(Receipt.pdf))
                                    .where(Receipt.id == email.receipt_id))
        if receipt is not None:
            attachments.append(Attachment(filename=receipt.filename,
                                          content_type="application/pdf", data=receipt.pdf))
    return _StoredMessage(
        subject=email.subject, recipients=[email.to_address], body=email.body_text,
        html=email.body_html, sender=email.sender or None, attachments=attachments,
        date=_timestamp(email.created_at), message_id=email.message_id)


def _timestamp(value: datetime) -> float:
    return float(int(value.timestamp()))


class _StoredMessage(Message):
    """A Flask-Mail message whose every byte depends only on what the row stores.

    Flask-Mail would pick a fresh Message-ID, the worker's local time zone for the Date header
    and random MIME boundaries; here all three come from the row.
    """

    def __init__(self, *, message_id: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.msgId = message_id
        self._boundary_seed = hashlib.sha256(message_id.encode()).hexdigest()[:32]

    def _message(self) -> Any:
        msg = super()._message()
        del msg["Date"]
        msg["Date"] = formatdate(self.date, usegmt=True)
        part: MimeMessage
        for index, part in enumerate(msg.walk()):
            if part.is_multipart():
                part.set_boundary(f"===={self._boundary_seed}.{index}====")
        return msg


class _SmtpConnection(Connection):
    """Flask-Mail's connection, configured from the current config and with a socket timeout,
    so a silent server cannot hang a job."""

    def configure_host(self) -> smtplib.SMTP | smtplib.SMTP_SSL:
        config = current_app.config
        server = str(config.get("MAIL_SERVER") or self.mail.server)
        port = int(config.get("MAIL_PORT") or self.mail.port)
        timeout = float(config.get("MAIL_TIMEOUT", 30))
        host: smtplib.SMTP | smtplib.SMTP_SSL
        if config.get("MAIL_USE_SSL", self.mail.use_ssl):
            host = smtplib.SMTP_SSL(server, port, timeout=timeout)
        else:
            host = smtplib.SMTP(server, port, timeout=timeout)
        if config.get("MAIL_USE_TLS", self.mail.use_tls):
            host.starttls()
        username = config.get("MAIL_USERNAME", self.mail.username)
        password = config.get("MAIL_PASSWORD", self.mail.password)
        if username and password:
            host.login(username, password)
        return host


def _by_dedupe_key(dedupe_key: str) -> OutboundEmail | None:
    return db.session.scalar(select(OutboundEmail)
                             .where(OutboundEmail.dedupe_key == dedupe_key))


def _message_id_domain() -> str:
    _, address = parseaddr(str(current_app.config.get("MAIL_DEFAULT_SENDER") or ""))
    domain = address.rpartition("@")[2]
    return domain or "localhost"
