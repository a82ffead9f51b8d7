"""Configuration read from the environment (and `.env`), as documented in API.md."""

from __future__ import annotations

import math
import os
import secrets
import string
from collections import Counter
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from payments_site.private_files import private_directory, write_private


class ConfigError(RuntimeError):
    """The configuration cannot run the site (a production secret is missing)."""


def _bool(value: str | None, default: bool = False) -> bool:
    if value is None or value == "":
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def _int(name: str, default: int) -> int:
    value = os.environ.get(name)
    return int(value) if value not in (None, "") else default


def _seconds(name: str, default: float) -> float:
    """A duration in seconds, 0 or more (a clear ConfigError otherwise)."""
    value = os.environ.get(name)
    if value is None or value.strip() == "":
        return default
    try:
        seconds = float(value)
    except ValueError:
        raise ConfigError(f"{name} must be a number of seconds, not {value!r}") from None
    if not seconds >= 0:  # also refuses nan
        raise ConfigError(f"{name} cannot be negative")
    return seconds


def _worker_processes() -> int:
    value = os.environ.get("WORKER_PROCESSES", "").strip()
    try:
        count = int(value) if value else 16
    except ValueError:
        raise ConfigError(f"WORKER_PROCESSES must be a whole number, not {value!r}") from None
    if count < 1:
        raise ConfigError("WORKER_PROCESSES must be at least 1")
    return count


def _trusted_proxies() -> int:
    """How many proxies (load balancers) stand in front of the app and append X-Forwarded-*.

    0 (the default) trusts no forwarded header: the client address is the socket's peer, so a
    client cannot pick its own address (and its own rate-limit bucket) by sending the header.
    """
    value = os.environ.get("TRUSTED_PROXIES", "").strip()
    try:
        count = int(value) if value else 0
    except ValueError:
        raise ConfigError(f"TRUSTED_PROXIES must be a whole number, not {value!r}") from None
    if count < 0:
        raise ConfigError("TRUSTED_PROXIES cannot be negative")
    return count


def check_timezone(name: str, setting: str = "MERCHANT_TIMEZONE") -> ZoneInfo:
    """The IANA time zone called `name` (e.g. `America/New_York`); a ConfigError naming the
    setting otherwise, so a typo stops start-up instead of printing wrong times on receipts."""
    if not isinstance(name, str) or not name.strip():
        raise ConfigError(f"{setting} must be an IANA time zone name such as "
                          "'America/New_York' or 'UTC', not an empty value")
    try:
        return ZoneInfo(name.strip())
    except (ZoneInfoNotFoundError, ValueError):
        raise ConfigError(f"{setting}={name!r} is not a known IANA time zone name (such as "
                          "'America/New_York', 'Europe/Berlin' or 'UTC')") from None


def check_site_url(url: str, setting: str = "SITE_URL") -> str:
    """The site's public address as `scheme://host[:port][/path]`, without a trailing slash.

    Emails are written by the worker, outside any request, so their links are built on it.
    """
    text = url.strip() if isinstance(url, str) else ""
    parts = urlsplit(text)
    try:
        _ = parts.port  # raises ValueError when the port is not a number
        port_ok = True
    except ValueError:
        port_ok = False
    if (not port_ok or parts.scheme not in ("http", "https") or not parts.hostname
            or parts.query or parts.fragment or parts.username is not None):
        raise ConfigError(f"{setting} must be the site's public address, such as "
                          f"'https://shop.example.com', not {url!r}")
    return text.rstrip("/")


def check_merchant_name(name: str) -> str:
    """A merchant name for receipts and the emails' From and Subject headers: one line."""
    if not isinstance(name, str) or not name.strip() or any(
            ord(ch) < 32 or ord(ch) == 127 for ch in name):
        raise ConfigError("MERCHANT_NAME must be one line of text (it is the sender's name "
                          f"and part of every email's subject), not {name!r}")
    return name.strip()


def check_settings(config: Mapping[str, Any]) -> None:
    """Refuse to start with settings that would print wrong times, broken links or headers."""
    check_merchant_name(config["MERCHANT_NAME"])
    check_timezone(config["MERCHANT_TIMEZONE"])
    check_site_url(config["SITE_URL"])


MIN_SECRET_KEY_BYTES = 32
MIN_SECRET_KEY_BITS = 128
_KEY_ALPHABETS = [("0123456789abcdef", 16), ("0123456789ABCDEF", 16),
                  (string.digits, 10), (string.ascii_lowercase, 26),
                  (string.ascii_uppercase, 26)]


def secret_key_bits(key: str) -> float:
    """A rough estimate of a key's entropy in bits: its length times the bits per character
    of the alphabet it draws from (hex, digits, letters, symbols), but no more than its
    characters' own spread allows (`x` * 40 holds none; a repeated word little)."""
    if not key:
        return 0.0
    if any(set(key) <= set(chars) for chars, _ in _KEY_ALPHABETS[:2]):
        alphabet = 16
    else:
        alphabet = sum(size for chars, size in _KEY_ALPHABETS[2:] if set(key) & set(chars))
        alphabet += 33 if any(not ch.isascii() or not ch.isalnum() for ch in key) else 0
    counts = Counter(key)
    spread = max(0.0, -sum(n / len(key) * math.log2(n / len(key)) for n in counts.values()))
    return len(key) * min(math.log2(alphabet), spread * 1.25)


def production_problems(env: Mapping[str, str]) -> list[str]:
    """Everything that stops APP_ENV=production from starting, one sentence each (secrets are
    never quoted)."""
    problems = []
    missing = [name for name in ("SECRET_KEY", "STRIPE_SECRET_KEY", "STRIPE_PUBLISHABLE_KEY",
                                 "STRIPE_WEBHOOK_SECRET", "DATABASE_URL", "REDIS_URL",
                                 "SITE_URL") if not env.get(name, "").strip()]
    if missing:
        problems.append(f"required in production: {', '.join(missing)}"
                        + (" (SECRET_KEY is required when APP_ENV=production)"
                           if "SECRET_KEY" in missing else ""))
    key = env.get("SECRET_KEY", "")
    if key.strip():
        size, bits = len(key.encode()), secret_key_bits(key)
        if size < MIN_SECRET_KEY_BYTES or bits < MIN_SECRET_KEY_BITS:
            problems.append(
                f"SECRET_KEY is too weak ({size} bytes, about {bits:.0f} bits of entropy): it "
                f"signs sessions and API tokens, so use at least {MIN_SECRET_KEY_BYTES} random "
                f"bytes and {MIN_SECRET_KEY_BITS} bits, such as the output of "
                "`python -c 'import secrets; print(secrets.token_urlsafe(48))'`")
    raw_secrets = env.get("STRIPE_WEBHOOK_SECRET", "")
    if "STRIPE_WEBHOOK_SECRET" not in missing:
        entries = [s.strip() for s in raw_secrets.split(",") if s.strip()]
        malformed = [n for n, s in enumerate(entries, 1)
                     if not s.startswith("whsec_") or len(s) <= len("whsec_")]
        if not entries:
            problems.append("STRIPE_WEBHOOK_SECRET lists no secret (only commas and spaces): "
                            "give the endpoint's signing secret, whsec_…")
        elif malformed:
            which = ", ".join(str(n) for n in malformed)
            problems.append(f"STRIPE_WEBHOOK_SECRET entry {which} of {len(entries)} is not a "
                            "webhook signing secret (each starts with whsec_, comma separated)")
    return problems


def normalize_database_url(url: str) -> str:
    """Use the psycopg 3 driver for plain `postgresql://` / `postgres://` URLs."""
    if url.startswith("postgres://"):
        url = "postgresql://" + url[len("postgres://"):]
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url[len("postgresql://"):]
    return url


def _dev_secret_key(instance_path: Path) -> str:
    """A key generated once per checkout and kept in instance/, so sessions survive restarts."""
    path = instance_path / "secret_key"
    if path.exists():
        return path.read_text().strip()
    private_directory(instance_path)
    key = secrets.token_urlsafe(48)
    write_private(path, key.encode())
    return key


def engine_options(database_url: str) -> dict[str, Any]:
    """Connection pool settings; sized per process (a gunicorn worker, a `flask worker`).

    A request holds a connection only for its SQL (briefly two, for a one-statement write
    beside an open transaction); the overflow absorbs bursts.
    Keep workers x (DB_POOL_SIZE + DB_MAX_OVERFLOW) under PostgreSQL's max_connections.
    """
    # Pings are sent by `models.pool` (only to connections idle for DB_POOL_PING_IDLE
    # seconds), not by SQLAlchemy's pre_ping, which pings before every transaction.
    # LIFO: a busy process reuses its most recent connections, and the rest stay idle long
    # enough to be pinged (or closed by a server-side idle timeout) before they are used.
    # hide_parameters: a failed statement's error (and its log line) shows the SQL but never
    # the values bound to it (a password hash, an email, a card's fingerprint).
    options: dict[str, Any] = {"pool_pre_ping": False, "hide_parameters": True}
    if not database_url.startswith("sqlite"):
        options.update(pool_size=_int("DB_POOL_SIZE", 5), max_overflow=_int("DB_MAX_OVERFLOW", 5),
                       pool_timeout=_int("DB_POOL_TIMEOUT", 10), pool_use_lifo=True,
                       pool_recycle=_int("DB_POOL_RECYCLE", 1800))
    return options


def load_config(instance_path: Path) -> dict[str, Any]:
    """Build the app's config from the environment; production refuses to start without secrets."""
    env = os.environ.get("APP_ENV", "development").strip().lower()
    production = env == "production"

    if production:
        problems = production_problems(os.environ)
        if problems:
            raise ConfigError("APP_ENV=production cannot start:\n" +
                              "\n".join(f"  - {problem}" for problem in problems))
    secret_key = os.environ.get("SECRET_KEY") or _dev_secret_key(instance_path)

    database_url = os.environ.get("DATABASE_URL") or (
        f"sqlite:///{instance_path / 'payments_site.db'}")
    redis_url = os.environ.get("REDIS_URL") or f"unix://{instance_path / 'redis.sock'}"

    return {
        "APP_ENV": env,
        "PRODUCTION": production,
        "SECRET_KEY": secret_key,
        "SQLALCHEMY_DATABASE_URI": normalize_database_url(database_url),
        "SQLALCHEMY_ENGINE_OPTIONS": engine_options(database_url),
        # Ping a pooled connection before use (DB_POOL_PRE_PING) once it has been idle
        # this long; 0 pings before every transaction.
        "DB_POOL_PRE_PING": _bool(os.environ.get("DB_POOL_PRE_PING"), True),
        "DB_POOL_PING_IDLE": _seconds("DB_POOL_PING_IDLE", 2.0),
        "REDIS_URL": redis_url,
        "STRIPE_SECRET_KEY": os.environ.get("STRIPE_SECRET_KEY", ""),
        "STRIPE_PUBLISHABLE_KEY": os.environ.get("STRIPE_PUBLISHABLE_KEY", ""),
        "STRIPE_WEBHOOK_SECRET": [s.strip() for s in
                                  os.environ.get("STRIPE_WEBHOOK_SECRET", "").split(",")
                                  if s.strip()],
        "STRIPE_WEBHOOK_TOLERANCE": _int("STRIPE_WEBHOOK_TOLERANCE", 300),
        "STRIPE_API_BASE": os.environ.get("STRIPE_API_BASE", "https://api.stripe.com"),
        "STRIPE_JS_URL": os.environ.get("STRIPE_JS_URL", "https://js.stripe.com/v3/"),
        "STRIPE_TIMEOUT": float(os.environ.get("STRIPE_TIMEOUT", "10")),
        "STRIPE_MAX_RETRIES": _int("STRIPE_MAX_RETRIES", 3),
        "MAIL_SERVER": os.environ.get("MAIL_SERVER", "127.0.0.1"),
        "MAIL_PORT": _int("MAIL_PORT", 8025),
        "MAIL_USE_TLS": _bool(os.environ.get("MAIL_USE_TLS")),
        "MAIL_USERNAME": os.environ.get("MAIL_USERNAME") or None,
        "MAIL_PASSWORD": os.environ.get("MAIL_PASSWORD") or None,
        # The address emails come from; their name is always MERCHANT_NAME.
        "MAIL_DEFAULT_SENDER": os.environ.get("MAIL_DEFAULT_SENDER", "receipts@shop.example"),
        # Flask-Mail would otherwise stop sending whenever TESTING is on; the tests send to
        # a real SMTP sink.
        "MAIL_SUPPRESS_SEND": _bool(os.environ.get("MAIL_SUPPRESS_SEND")),
        "MAIL_TIMEOUT": float(os.environ.get("MAIL_TIMEOUT", "30")),
        "MAIL_MAX_ATTEMPTS": _int("MAIL_MAX_ATTEMPTS", 6),
        "MERCHANT_NAME": check_merchant_name(os.environ.get("MERCHANT_NAME", "Demo Shop Ltd.")),
        "MERCHANT_ADDRESS": os.environ.get("MERCHANT_ADDRESS",
                                           "1 Example Street, 10115 Berlin, Germany"),
        "MERCHANT_TAX_ID": os.environ.get("MERCHANT_TAX_ID", "DE000000000"),
        # Receipts and emails print times in this zone (pages use each reader's own).
        "MERCHANT_TIMEZONE": check_timezone(
            os.environ.get("MERCHANT_TIMEZONE", "").strip() or "UTC").key,
        # The public address links in emails point to (the worker has no request to ask).
        "SITE_URL": check_site_url(
            os.environ.get("SITE_URL", "").strip() or "http://127.0.0.1:5000"),
        "ADMIN_EMAILS": [s.strip() for s in os.environ.get("ADMIN_EMAILS", "").split(",")
                         if s.strip()],
        "API_TOKEN_TTL": _int("API_TOKEN_TTL", 3600),
        "IDEMPOTENCY_TTL": _int("IDEMPOTENCY_TTL", 24 * 3600),
        "LOGIN_LIMIT_PER_IP": os.environ.get("LOGIN_LIMIT_PER_IP", "20 per minute"),
        # Failed sign-ins: per account from one address, and per account from everywhere
        # (not counted against browsers and addresses that signed in to it before).
        "LOGIN_LIMIT_PER_ACCOUNT_IP": os.environ.get("LOGIN_LIMIT_PER_ACCOUNT_IP",
                                                     "5 per minute"),
        "LOGIN_LIMIT_PER_ACCOUNT": os.environ.get("LOGIN_LIMIT_PER_ACCOUNT", "20 per 5 minutes"),
        "PAYMENT_LIMIT": os.environ.get("PAYMENT_LIMIT", "30 per minute"),
        "REFUND_LIMIT": os.environ.get("REFUND_LIMIT", "30 per minute"),
        "RATELIMIT_ENABLED": _bool(os.environ.get("RATELIMIT_ENABLED"), True),
        # No X-RateLimit-* headers: they cost two more Redis round trips (GET and TTL of the
        # window) on every limited request; a refused one still says when to retry
        # (Retry-After, read from its window in errors.py).
        "RATELIMIT_HEADERS_ENABLED": False,
        "RATELIMIT_SWALLOW_ERRORS": True,
        "SESSION_COOKIE_HTTPONLY": True,
        "SESSION_COOKIE_SAMESITE": "Lax",
        "SESSION_COOKIE_SECURE": production,
        "REMEMBER_COOKIE_HTTPONLY": True,
        "REMEMBER_COOKIE_SAMESITE": "Lax",
        "REMEMBER_COOKIE_SECURE": production,
        "PREFERRED_URL_SCHEME": "https" if production else "http",
        "WTF_CSRF_CHECK_DEFAULT": False,
        # A session (and the CSRF token it holds) ends after this long without a request:
        # Flask refuses an older cookie, whatever the browser kept.
        "PERMANENT_SESSION_LIFETIME": _int("SESSION_LIFETIME", 14 * 24 * 3600),
        "WTF_CSRF_TIME_LIMIT": _int("SESSION_LIFETIME", 14 * 24 * 3600),
        "WTF_CSRF_SSL_STRICT": production,
        "RQ_QUEUES": ["webhooks", "payments", "receipts", "emails"],
        "SWEEP_INTERVAL": _int("SWEEP_INTERVAL", 30),
        # `flask worker` runs this many worker processes side by side (jobs mostly wait on
        # Stripe or SMTP): 16 apply a burst of 1,000 webhook events in under a minute at
        # 300 ms per Stripe call (README, "Sizing").
        "WORKER_PROCESSES": _worker_processes(),
        # A payment left unfinished (3-D Secure abandoned, the page closed after Pay) can be
        # tried again for this long; then the sweeper cancels it and its PaymentIntent.
        "UNFINISHED_PAYMENT_TTL": _seconds("UNFINISHED_PAYMENT_TTL", 24 * 3600),
        # Webhook events: attempts before an event stays failed, and how long a worker's claim
        # on one lasts before the sweeper presumes that worker dead (above the 300 s job timeout).
        "WEBHOOK_MAX_ATTEMPTS": _int("WEBHOOK_MAX_ATTEMPTS", 8),
        "WEBHOOK_PROCESSING_LEASE": _int("WEBHOOK_PROCESSING_LEASE", 600),
        "MAX_CONTENT_LENGTH": 1024 * 1024,
        "TRUSTED_PROXIES": _trusted_proxies(),
        "SERVER_TIMING": _bool(os.environ.get("SERVER_TIMING")),
        # GET /metrics answers only `Authorization: Bearer <this>`; unset, it is a 404.
        "METRICS_TOKEN": os.environ.get("METRICS_TOKEN", "").strip() or None,
        # Take a well-formed incoming X-Request-ID (set by the load balancer) instead of
        # making a new one; off, a client cannot choose the id its requests are logged under.
        "TRUST_REQUEST_ID": _bool(os.environ.get("TRUST_REQUEST_ID")),
        "LOG_FORMAT": os.environ.get("LOG_FORMAT", "text").strip().lower() or "text",
    }
