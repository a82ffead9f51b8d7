"""Masks card numbers, CVCs, secrets and tokens in every log record before anything writes it,
keeps each record's message on one line (control characters escaped), so a request path or any
other value a client sent can never forge a log line, and stamps each record with the request,
user and payment it is about (payments_site.tracing); LOG_FORMAT=json writes one JSON object
per line."""

from __future__ import annotations

import json
import logging
import re
import traceback
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from payments_site import tracing

# 13–19 digits, optionally grouped by spaces or dashes; secrets and bearer tokens.
_PATTERNS = [
    # Bounded by anything but a letter or digit, so "pm_4242…" or "card_4242…" is caught too.
    (re.compile(r"(?<![A-Za-z0-9])(?:\d[ -]?){12,18}\d(?![A-Za-z0-9])"), "[card]"),
    (re.compile(r"\b(sk|rk)_(test|live)_[A-Za-z0-9]+"), r"\1_\2_[redacted]"),
    (re.compile(r"\bwhsec_[A-Za-z0-9]+"), "whsec_[redacted]"),
    (re.compile(r"(?i)\bbearer\s+[A-Za-z0-9._~+/=-]+"), "Bearer [redacted]"),
    # A JWT anywhere (a token pasted into a URL or a message), not only after "Bearer".
    (re.compile(r"\beyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]+"), "[token]"),
    (re.compile(r"\b(pi|seti)_([A-Za-z0-9]+)_secret_[A-Za-z0-9]+"), r"\1_\2_secret_[redacted]"),
    # cvc=123, "cvc": "123", card[cvc]=123, cvv 1234 (form, JSON and log spellings).
    (re.compile(r"(?i)(cvc|cvv|cvc2|cvv2)(\W{1,6})\d{3,4}\b"), r"\1\2[redacted]"),
]


# A card number written with other separators, as a URL or a form encodes it (`%20`, `+`,
# `%2D`) or as people write it (dots, underscores, slashes): a run of digit groups is masked
# when some groups in a row hold 13-19 digits that pass the Luhn check (the check keeps
# timestamps such as `1733550000.123456` readable). It may start right after an encoded byte
# (`=%204242…`), never inside one (the `20` of `%20`).
_SEPARATOR = r"(?:[\s.+_/\\-]|%(?:20|09|2[BbDdEeFf]|5[CcFf]))"
_SEPARATED_DIGITS = re.compile(
    r"(?:(?<![A-Za-z0-9%])|(?<=%[0-9A-Fa-f]{2}))"
    rf"[0-9](?:{_SEPARATOR}{{0,3}}[0-9]){{12,}}(?![A-Za-z0-9])")
# Whatever could break a line or a terminal: C0 and C1 controls (tab kept), DEL, and the
# Unicode line and paragraph separators; written as Python escapes (`\n`, `\x1b`).
_CONTROLS = {code: (chr(code).encode("unicode_escape").decode("ascii"))
             for code in [*range(0x00, 0x09), *range(0x0A, 0x20), *range(0x7F, 0xA0),
                          0x2028, 0x2029]}


def _luhn_valid(digits: str) -> bool:
    total = 0
    for index, char in enumerate(reversed(digits)):
        value = int(char) * (2 if index % 2 else 1)
        total += value - 9 if value > 9 else value
    return total % 10 == 0


def _mask_separated(match: re.Match[str]) -> str:
    spaced = re.sub(r"%[0-9A-Fa-f]{2}", " ", match.group(0))
    groups = [g for g in re.split(r"[^0-9]+", spaced) if g]
    for first in range(len(groups)):
        for last in range(first, len(groups)):
            digits = "".join(groups[first:last + 1])
            if len(digits) > 19:
                break
            if len(digits) >= 13 and _luhn_valid(digits):
                return "[card]"
    return match.group(0)


def escape_controls(text: str) -> str:
    """`text` on one line: CR, LF and every other control character written as an escape."""
    return text.translate(_CONTROLS)


def redact(text: str) -> str:
    for pattern, replacement in _PATTERNS:
        text = pattern.sub(replacement, text)
    return _SEPARATED_DIGITS.sub(_mask_separated, text)


def redact_record(record: logging.LogRecord) -> logging.LogRecord:
    """Replace the record's message (and formatted traceback) with a redacted copy; the
    message on one line (a traceback keeps its own lines)."""
    try:
        message = record.getMessage()
    except Exception:  # noqa: BLE001 (a bad format string must not lose the record)
        message = str(record.msg)
    cleaned = escape_controls(redact(message))
    if cleaned != message or record.args:
        record.msg, record.args = cleaned, None
    if record.exc_info and record.exc_info[0] is not None and not record.exc_text:
        record.exc_text = redact("".join(traceback.format_exception(*record.exc_info)).rstrip())
    if record.stack_info:
        record.stack_info = redact(record.stack_info)
    return record


class RedactingFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        redact_record(record)
        return True


LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
# What every record carries of its trace (None where not known).
TRACE_FIELDS = ("request_id", "user_id", "payment_id")


class PlainFormatter(logging.Formatter):
    """The dev default: one line of text, ending with the request id when there is one."""

    def __init__(self) -> None:
        super().__init__(LOG_FORMAT)

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        request_id = getattr(record, "request_id", None)
        return f"{text} [request_id={request_id}]" if request_id else text


class JsonFormatter(logging.Formatter):
    """LOG_FORMAT=json: one JSON object per line, for a log pipeline to index by field."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(
                timespec="milliseconds").replace("+00:00", "Z"),
            "level": record.levelname, "logger": record.name, "message": record.getMessage(),
        }
        for field in TRACE_FIELDS:
            value = getattr(record, field, None)
            if value is not None:
                entry[field] = value
        if record.exc_info and not record.exc_text:
            record.exc_text = redact(self.formatException(record.exc_info))
        if record.exc_text:
            entry["exception"] = record.exc_text
        return json.dumps(entry, ensure_ascii=False)


def formatter_for(log_format: str) -> logging.Formatter:
    """The formatter LOG_FORMAT names: `json`, or plain text (anything else)."""
    return JsonFormatter() if log_format.strip().lower() == "json" else PlainFormatter()


def configure_logging(level: str, log_format: str = "text") -> None:
    """Records go to stderr at `level` (as JSON lines when `log_format` is `json`), every
    one of them redacted and stamped with its trace; calling it again (a second app in one
    process) changes nothing.

    A process whose logging is configured already (a deployment's own config, gunicorn's,
    pytest's) keeps its handlers and level; only the redaction is added to them.
    """
    root = logging.getLogger()
    if not root.handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(formatter_for(log_format))
        root.addHandler(handler)
        root.setLevel(level)
    install_redaction()
    logging.getLogger("alembic.runtime.plugins").setLevel(logging.WARNING)


def stamp_trace(record: logging.LogRecord) -> logging.LogRecord:
    """The record with the request id, user id and payment id of the work that logged it."""
    trace = tracing.current()
    record.request_id, record.user_id, record.payment_id = (
        trace.request_id, trace.user_id, trace.payment_id)
    return record


class _RedactingRecordFactory:
    """The log record factory in place before, with every record it makes redacted and
    stamped with its trace."""

    def __init__(self, previous: Callable[..., logging.LogRecord]) -> None:
        self.previous = previous

    def __call__(self, *args: Any, **kwargs: Any) -> logging.LogRecord:
        return stamp_trace(redact_record(self.previous(*args, **kwargs)))


def install_redaction() -> None:
    """Redact every record when it is created (so handlers added later — pytest's, gunicorn's,
    a deployment's logging config — never see the raw text), and filter the root's handlers.
    Idempotent: the record factory is wrapped once."""
    current = logging.getLogRecordFactory()
    if not isinstance(current, _RedactingRecordFactory):
        logging.setLogRecordFactory(_RedactingRecordFactory(current))
    for handler in logging.getLogger().handlers:
        if not any(isinstance(f, RedactingFilter) for f in handler.filters):
            handler.addFilter(RedactingFilter())
