"""A logging filter that masks card numbers, secrets and tokens before anything is written."""

from __future__ import annotations

import logging
import re

# 13–19 digits, optionally grouped by spaces or dashes; secrets and bearer tokens.
_PATTERNS = [
    (re.compile(r"\b(?:\d[ -]?){12,18}\d\b"), "[card]"),
    (re.compile(r"\b(sk|rk)_(test|live)_[A-Za-z0-9]+"), r"\1_\2_[redacted]"),
    (re.compile(r"\bwhsec_[A-Za-z0-9]+"), "whsec_[redacted]"),
    (re.compile(r"(?i)\bbearer\s+[A-Za-z0-9._~+/=-]+"), "Bearer [redacted]"),
    (re.compile(r"\b(pi|seti)_([A-Za-z0-9]+)_secret_[A-Za-z0-9]+"), r"\1_\2_secret_[redacted]"),
    (re.compile(r"(?i)(cvc|cvv)(\W{1,3})\d{3,4}"), r"\1\2[redacted]"),
]


def redact(text: str) -> str:
    for pattern, replacement in _PATTERNS:
        text = pattern.sub(replacement, text)
    return text


class RedactingFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = redact(message)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        return True


def install_redaction() -> None:
    """Attach the filter to every handler of the root logger (and future ones via the root)."""
    root = logging.getLogger()
    for handler in root.handlers:
        if not any(isinstance(f, RedactingFilter) for f in handler.filters):
            handler.addFilter(RedactingFilter())
