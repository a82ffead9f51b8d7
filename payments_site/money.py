"""Money: integer minor units + ISO currency; exponents, validation and Babel formatting."""

from __future__ import annotations

import functools
from decimal import Decimal

from babel import Locale
from babel.numbers import format_currency

# ISO 4217 exponents that differ from 2, as Stripe treats them
# (https://docs.stripe.com/currencies#zero-decimal, #three-decimal).
ZERO_DECIMAL = frozenset({
    "bif", "clp", "djf", "gnf", "jpy", "kmf", "krw", "mga", "pyg", "rwf", "ugx", "vnd",
    "vuv", "xaf", "xof", "xpf",
})
THREE_DECIMAL = frozenset({"bhd", "jod", "kwd", "omr", "tnd"})
# Amounts Stripe accepts only in steps of more than one minor unit: in the three-decimal
# currencies the last digit must be 0, so 1.230 KWD (1230) is chargeable and 1.235 is not.
# Charges and refunds alike (https://docs.stripe.com/currencies#three-decimal).
AMOUNT_STEP = {"bhd": 10, "jod": 10, "kwd": 10, "omr": 10, "tnd": 10}

# Currencies the site accepts, with Stripe's minimum charge in minor units
# (https://docs.stripe.com/currencies#minimum-and-maximum-charge-amounts).
MINIMUM_CHARGE = {
    "usd": 50, "eur": 50, "gbp": 30, "chf": 50, "cad": 50, "aud": 50, "nzd": 50, "sek": 300,
    "nok": 300, "dkk": 250, "pln": 200, "czk": 1500, "huf": 17500, "inr": 50, "sgd": 50,
    "hkd": 400, "jpy": 50, "krw": 700, "bhd": 200, "kwd": 200, "jod": 400, "omr": 200,
}
SUPPORTED_CURRENCIES = frozenset(MINIMUM_CHARGE)
# Stripe's maximum amount for a single charge: 8 digits of minor units.
MAXIMUM_CHARGE = 99_999_999


class InvalidCurrency(ValueError):
    pass


class InvalidAmount(ValueError):
    pass


def normalize_currency(code: str) -> str:
    """Lower-case ISO code as Stripe uses it; raise InvalidCurrency for unsupported ones."""
    if not isinstance(code, str):
        raise InvalidCurrency("currency must be a 3-letter ISO code")
    normalized = code.strip().lower()
    if normalized not in SUPPORTED_CURRENCIES:
        raise InvalidCurrency(f"unsupported currency: {code!r}")
    return normalized


def exponent(currency: str) -> int:
    currency = currency.lower()
    if currency in ZERO_DECIMAL:
        return 0
    if currency in THREE_DECIMAL:
        return 3
    return 2


def to_decimal(amount: int, currency: str) -> Decimal:
    """Minor units to a Decimal of major units: 1999 usd → 19.99, 500 jpy → 500."""
    return Decimal(amount).scaleb(-exponent(currency))


def minimum_charge(currency: str) -> int:
    return MINIMUM_CHARGE.get(currency.lower(), 50)


def amount_step(currency: str) -> int:
    """The minor units every amount in this currency is a multiple of (10 for KWD, else 1)."""
    return AMOUNT_STEP.get(currency.lower(), 1)


def require_amount_step(amount: int, currency: str) -> None:
    """Raise InvalidAmount when Stripe would refuse `amount` for this currency's step."""
    step = amount_step(currency)
    if amount % step:
        raise InvalidAmount(
            f"{currency.upper()} amounts must be a multiple of {step} minor units "
            f"({to_major_string(step, currency)} {currency.upper()}): "
            f"{to_major_string(amount, currency)} is not.")


@functools.lru_cache(maxsize=8192)
def format_money(amount: int, currency: str, locale: str = "en_US") -> str:
    """Format for people: $19.99, ¥500, 1.234,56 € (de_DE); CLDR knows each currency's digits.

    Kept per (amount, currency, locale): Babel takes a third of a millisecond per call, and
    a page of daily totals (the admin overview) formats hundreds of mostly repeated amounts.
    """
    return format_currency(to_decimal(amount, currency), currency.upper(),
                           locale=_locale(locale))


@functools.lru_cache(maxsize=64)
def _locale(name: str) -> Locale:
    return Locale.parse(name)


# --- Major-unit text for forms (refund amounts) ----------------------------------------------

def to_major_string(amount: int, currency: str) -> str:
    """Minor units as plain major-unit text for a form field: 1999 usd → "19.99", 500 jpy → "500",
    1230 bhd → "1.230" (no grouping, no symbol, so it parses back exactly)."""
    return f"{to_decimal(amount, currency):.{exponent(currency)}f}"


def parse_major_amount(text: str, currency: str) -> int:
    """Major-unit text typed by a person → exact minor units, with Decimal (never float).

    Accepts "19.99", "19.9", "19", "1,019.99"; refuses more decimals than the currency has
    ("500.5" jpy, "1.2345" bhd), signs, exponents ("1e3"), NaN and empty text.
    """
    cleaned = (text or "").strip().replace(",", "").replace(" ", "")
    integer, dot, fraction = cleaned.partition(".")
    if not integer.isascii() or not integer.isdigit() or \
            (dot and (not fraction.isascii() or not fraction.isdigit())):
        raise InvalidAmount("Enter an amount such as 12.50.")
    digits = exponent(currency)
    if len(fraction.rstrip("0")) > digits:
        raise InvalidAmount(f"{currency.upper()} amounts have at most {digits} decimal places."
                            if digits else f"{currency.upper()} amounts have no decimal places.")
    return int(Decimal(cleaned).scaleb(digits))
