# SPDX-License-Identifier: GPL-3.0-or-later
# Copyright (C) 2026 the payments_site authors; extends localstripe (C) 2017 Adrien Vergé.
#
# This program is free software: you can redistribute it and/or modify it under the terms of
# the GNU General Public License as published by the Free Software Foundation, either version 3
# of the License, or (at your option) any later version. This program is distributed in the hope
# that it will be useful, but WITHOUT ANY WARRANTY; without even the implied warranty of
# MERCHANTABILITY or FITNESS FOR A PARTICULAR PURPOSE. See the LICENSE file in this folder.
"""Stripe objects the app relies on, as subclasses of localstripe's, with Stripe's behaviour."""

from __future__ import annotations

import asyncio
import contextvars
import copy
import random
import string
import time
from collections.abc import Callable
from typing import Any

from . import cards, sepa, webhooks
from . import localstripe_seam as seam
from .errors import StripeError, invalid_param, missing_param, no_such, unknown_param
from .localstripe_seam import (
    BaseCharge,
    BaseEvent,
    BasePaymentIntent,
    BasePaymentMethod,
    BaseRefund,
    BaseSetupIntent,
    Customer,
    List,
    StripeObject,
    store,
)

# Webhook events carry the API version of the SDK the app pins (stripe-python 16.1.0).
API_VERSION = "2026-10-28.endive"
REFUND_SETTLE_S = 1.0  # how long a pending (…7726) or failing (…5126) refund takes to settle
# Per-request context (request id, idempotency key) copied into the events it causes.
current_request: contextvars.ContextVar[dict[str, Any] | None] = contextvars.ContextVar(
    "current_request", default=None)
# Called after state changes that happen outside a request (refunds settling), to persist.
on_background_change: list[Callable[[], None]] = []

MIN_AMOUNTS = {"usd": 50, "eur": 50, "gbp": 30, "cad": 50, "aud": 50, "chf": 50, "jpy": 50}
ZERO_DECIMAL = {"jpy", "krw", "vnd", "clp", "pyg", "xof", "xaf", "ugx", "rwf", "mga", "kmf",
                "gnf", "djf", "bif", "vuv", "xpf"}
PM_TYPES = ("card", "sepa_debit")
NOISE_PARAMS = ("key", "payment_user_agent", "referrer", "time_on_page", "guid", "muid", "sid",
                "_stripe_version", "_stripe_account")


# The presentment currencies Stripe accepts (https://docs.stripe.com/currencies).
CURRENCIES = frozenset("""
usd aed afn all amd ang aoa ars aud awg azn bam bbd bdt bgn bhd bif bmd bnd bob brl bsd bwp byn
bzd cad cdf chf clp cny cop crc cve czk djf dkk dop dzd egp etb eur fjd fkp gbp gel gip gmd gnf
gtq gyd hkd hnl htg huf idr ils inr isk jmd jod jpy kes kgs khr kmf krw kwd kyd kzt lak lbp lkr
lrd lsl mad mdl mga mkd mmk mnt mop mur mvr mwk mxn myr mzn nad ngn nio nok npr nzd omr pab pen
pgk php pkr pln pyg qar ron rsd rub rwf sar sbd scr sek sgd shp sle sos srd std szl thb tjs tnd
top try ttd twd tzs uah ugx uyu uzs vnd vuv wst xaf xcd xof xpf yer zar zmw
""".split())


def check_currency(value: Any, param: str = "currency") -> str:
    currency = str(value).lower()
    if currency not in CURRENCIES:
        raise invalid_param(param, f"Invalid currency: {currency}. Stripe currently supports "
                                   f"these currencies: {', '.join(sorted(CURRENCIES))}")
    return currency


def new_id(prefix: str, n: int = 24) -> str:
    return prefix + "".join(random.choices(string.ascii_letters + string.digits, k=n))


def now() -> int:
    return int(time.time())


def reject_unknown(kwargs: dict[str, Any], prefix: str = "") -> None:
    if kwargs:
        name = sorted(kwargs)[0]
        raise unknown_param(f"{prefix}[{name}]" if prefix else name)


def as_int(value: Any, param: str, minimum: int | None = None) -> int:
    try:
        if isinstance(value, bool):
            raise ValueError
        result = int(value) if not isinstance(value, float) or value.is_integer() else None
        if result is None:
            raise ValueError
    except (TypeError, ValueError):
        raise invalid_param(param, f"Invalid integer: {value}", "parameter_invalid_integer") \
            from None
    if minimum is not None and result < minimum:
        raise invalid_param(param, f"This value must be greater than or equal to {minimum}.",
                            "parameter_invalid_integer")
    return result


def as_bool(value: Any, param: str) -> bool | None:
    if value is None or isinstance(value, bool):
        return value
    if str(value).lower() in ("true", "false"):
        return str(value).lower() == "true"
    raise invalid_param(param, f"Invalid boolean: {value}")


def as_str(value: Any, param: str) -> str | None:
    if value is None or isinstance(value, str):
        return value
    raise invalid_param(param, f"Invalid string: {value!r}")


def as_enum(value: Any, param: str, allowed: tuple[str, ...]) -> str | None:
    if value is None:
        return None
    if value not in allowed:
        raise invalid_param(param, f"Invalid {param}: must be one of {', '.join(allowed)}")
    return str(value)


def as_dict(value: Any, param: str) -> dict[str, Any]:
    if value is None or value == "":
        return {}
    if not isinstance(value, dict):
        raise invalid_param(param, f"Invalid object: {param}")
    return value


def metadata_update(current: dict[str, str] | None, new: Any) -> dict[str, str]:
    """Stripe's metadata rules: merged on update, an empty value deletes the key."""
    result = dict(current or {})
    if new == "":
        return {}
    for key, value in as_dict(new, "metadata").items():
        if len(str(key)) > 40:
            raise invalid_param(f"metadata[{key}]",
                                "Metadata keys can have up to 40 characters.")
        if value in ("", None):
            result.pop(key, None)
        else:
            if len(str(value)) > 500:
                raise invalid_param(f"metadata[{key}]",
                                    "Metadata values can have up to 500 characters.")
            result[str(key)] = str(value)
    if len(result) > 50:
        raise invalid_param("metadata", "You can have up to 50 metadata keys.")
    return result


def format_amount(amount: int, currency: str) -> str:
    symbol = {"usd": "$", "eur": "€", "gbp": "£", "jpy": "¥"}.get(currency, "")
    value = str(amount) if currency in ZERO_DECIMAL else f"{amount / 100:.2f}"
    return f"{symbol}{value}" if symbol else f"{value} {currency.upper()}"


def call_later(delay_s: float, callback: Callable[[], None]) -> None:
    """Run `callback` on the server's loop after the current request has answered."""
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        return  # objects built outside the server (e.g. on load)
    # A fresh context: what happens later is automatic, not part of the request that
    # scheduled it (its events carry `request: {id: null, idempotency_key: null}`).
    loop.call_later(delay_s, contextvars.Context().run, callback)


def remember(obj: StripeObject) -> None:
    """Keep the object as it is now, so its next `*.updated` event names what changed."""
    obj._event_snapshot = copy.deepcopy(obj._export())


def emit(event_type: str, obj: StripeObject) -> Event:
    event = Event(event_type, obj)
    webhooks.publish(event._export())
    return event


# The path parameter Stripe names in a 404 for an unknown id (`/v1/payment_intents/{intent}`).
ID_PARAMS = {"payment_intent": "intent", "setup_intent": "intent",
             "payment_method": "payment_method", "charge": "charge", "refund": "refund",
             "dispute": "dispute", "customer": "customer", "event": "id"}

def lookup(cls: type[StripeObject], object_id: Any, param: str | None = None) -> Any:
    obj = store.get(f"{cls.object}:{object_id}") if isinstance(object_id, str) else None
    if obj is None:
        name = str(cls.object)
        raise no_such(name, str(object_id), param or ID_PARAMS.get(name, "id"))
    return obj


def list_objects(object_name: str, url: str, keep: Callable[[Any], bool], limit: Any = None,
                 starting_after: Any = None, ending_before: Any = None,
                 created: Any = None) -> List:
    """A Stripe list, newest first (the store keeps insertion order)."""
    limit_n = 10 if limit is None else as_int(limit, "limit", 1)
    if limit_n > 100:
        raise invalid_param("limit", "This value must be less than or equal to 100.")
    prefix = object_name + ":"
    items = [v for k, v in store.items() if k.startswith(prefix) and keep(v)]
    items.reverse()
    if created is not None:
        items = [v for v in items if _created_ok(v.created, created)]
    for cursor, param in ((starting_after, "starting_after"), (ending_before, "ending_before")):
        if cursor is not None and not any(getattr(v, "id", None) == cursor for v in items):
            if store.get(prefix + str(cursor)) is None:
                raise no_such(object_name, str(cursor), param)
    if ending_before is not None:
        idx = next((i for i, v in enumerate(items) if v.id == ending_before), 0)
        items = items[max(0, idx - limit_n):idx]
    li = StripeList(url, limit=limit_n, starting_after=starting_after)
    li._list = items
    return li


class StripeList(List):
    """A list as Stripe returns it: object, data, has_more, url (no total_count since
    2020-08-27)."""

    def _export(self, expand: Any = None) -> dict[str, Any]:
        data = [item._export(expand=_nested_expand(expand, "data"))
                for item in self._list[self._page_start():self._page_start() + self._limit]]
        return {"object": "list", "data": data, "has_more": self.has_more, "url": self.url}

    def _page_start(self) -> int:
        self._compute_starting_pos()
        return int(self._starting_pos or 0)


def _nested_expand(expand: Any, prefix: str) -> list[str] | None:
    """`data.latest_charge` on a list expands `latest_charge` on each item."""
    if not expand:
        return None
    return [e[len(prefix) + 1:] for e in expand if e.startswith(prefix + ".")] or None


def _created_ok(value: int, created: Any) -> bool:
    if not isinstance(created, dict):
        return value == as_int(created, "created")
    ops = {"gt": int.__gt__, "gte": int.__ge__, "lt": int.__lt__, "lte": int.__le__}
    for op, bound in created.items():
        if op not in ops:
            raise unknown_param(f"created[{op}]")
        if not ops[op](value, as_int(bound, f"created[{op}]")):
            return False
    return True


def check_client_secret(obj: Any, client_secret: Any, kind: str) -> None:
    """Publishable-key calls (Stripe.js) only work with the intent's own client secret."""
    if client_secret != obj.client_secret:
        name = "PaymentIntent" if kind == "payment_intent" else "SetupIntent"
        raise StripeError(
            400, f"The client_secret provided does not match the client_secret associated "
                 f"with the {name}.", param="client_secret",
            code=f"{kind}_invalid_parameter")


# What Stripe.js sends as client_context when it confirms an intent for Elements created
# without one (the "deferred intent" flow): the options the page gave stripe.elements().
CLIENT_CONTEXT_KEYS = ("mode", "currency", "setup_future_usage", "capture_method",
                       "payment_method_types", "payment_method_configuration")


def check_client_context(obj: Any, client_context: Any, kind: str) -> None:
    """Refuse a deferred-intent confirmation whose Elements options disagree with the intent.

    Stripe answers 400 when the PaymentIntent's setup_future_usage differs from the
    setupFutureUsage the Payment Element was created with (the element shows the customer
    whether the card will be saved). Amount and currency are not compared: Stripe.js does
    not send the amount, and Stripe documents no currency check.
    """
    context = as_dict(client_context, "client_context")
    unknown = {k: v for k, v in context.items() if k not in CLIENT_CONTEXT_KEYS}
    reject_unknown(unknown, "client_context")
    as_enum(context.get("mode"), "client_context[mode]", ("payment", "setup", "subscription"))
    if kind != "payment_intent" or not context:
        return
    expected = as_enum(context.get("setup_future_usage") or None,
                       "client_context[setup_future_usage]", ("on_session", "off_session"))
    provided = obj.setup_future_usage
    if provided != expected:
        raise StripeError(
            400, f"The provided setup_future_usage ({provided or 'null'}) does not match the "
                 f"expected setup_future_usage ({expected or 'null'}).",
            param="setup_future_usage", payment_intent=obj._export())


# --------------------------------------------------------------------------- events

_MISSING = object()


class Event(BaseEvent):
    """An Event whose data.object is a snapshot, with Stripe's current envelope fields."""

    def __init__(self, type: str, data: StripeObject) -> None:  # noqa: A002 (Stripe's name)
        StripeObject.__init__(self, id=new_id("evt_"))
        self.type = type
        # A deep copy: later changes to the object must not rewrite history.
        snapshot = copy.deepcopy(data._export())
        self.data: dict[str, Any] = {"object": snapshot}
        if type.endswith(".updated"):
            # Stripe names each changed field with its value before the change.
            before = getattr(data, "_event_snapshot", None) or {}
            self.data["previous_attributes"] = {
                k: v for k, v in before.items() if snapshot.get(k, _MISSING) != v}
        self.api_version = API_VERSION
        # Events caused by an API request name it; automatic ones (disputes, settling
        # debits and refunds) carry nulls.
        ctx = current_request.get() or {}
        self.request = {"id": ctx.get("id"), "idempotency_key": ctx.get("idempotency_key")}
        self.pending_webhooks = sum(1 for e in webhooks.endpoints.values() if e.wants(type))

    @classmethod
    def _api_list_all(cls, url: str, type: Any = None, types: Any = None,  # noqa: A002
                      created: Any = None, limit: Any = None, starting_after: Any = None,
                      ending_before: Any = None, **kwargs: Any) -> List:
        reject_unknown(kwargs)
        wanted = set(types) if isinstance(types, list) else None
        return list_objects(
            "event", url,
            lambda e: (type is None or e.type == type) and (wanted is None or e.type in wanted),
            limit, starting_after, ending_before, created)


# --------------------------------------------------------------------------- payment methods


class PaymentMethod(BasePaymentMethod):
    """A card or SEPA Direct Debit PaymentMethod.

    Cards keep brand/last4/exp/fingerprint and a behaviour name only; SEPA debits keep the
    country, bank code, last4, a keyed fingerprint and the test IBAN's outcome, never the IBAN.
    """

    def __init__(self, type: Any = None, card: Any = None, billing_details: Any = None,  # noqa: A002
                 metadata: Any = None, allow_redisplay: Any = None, sepa_debit: Any = None,
                 **kwargs: Any) -> None:
        reject_unknown(kwargs)
        if type is None:
            raise missing_param("type")
        if type not in ("card", "sepa_debit"):
            raise invalid_param("type", f"Invalid type: the emulator supports card and "
                                        f"sepa_debit, not {type!r}.")
        if type == "card" and sepa_debit is not None:
            raise invalid_param("sepa_debit", "You cannot pass sepa_debit for a PaymentMethod "
                                              "of type card.")
        if type == "sepa_debit" and card is not None:
            raise invalid_param("card", "You cannot pass card for a PaymentMethod of type "
                                        "sepa_debit.")
        details = self._check_card(card) if type == "card" else None
        iban = self._check_sepa(sepa_debit) if type == "sepa_debit" else None
        billing = as_dict(billing_details, "billing_details")
        reject_unknown({k: v for k, v in billing.items()
                        if k not in ("address", "email", "name", "phone")}, "billing_details")
        address = as_dict(billing.get("address"), "billing_details[address]")
        allow_redisplay = as_enum(allow_redisplay, "allow_redisplay",
                                  ("always", "limited", "unspecified"))
        StripeObject.__init__(self, id=new_id("pm_"))
        self.type = str(type)
        self.allow_redisplay = allow_redisplay or "unspecified"
        self.billing_details = {
            # Stripe stores blank form fields as null.
            "address": {k: address.get(k) or None for k in ("city", "country", "line1",
                                                            "line2", "postal_code", "state")},
            "email": billing.get("email") or None, "name": billing.get("name") or None,
            "phone": billing.get("phone") or None, "tax_id": None}
        self._behaviour = "ok"
        self._sepa_outcome: str | None = None
        if details is not None:
            self.card = {
                "brand": details.brand, "display_brand": details.brand,
                "checks": {"address_line1_check": None,
                           "address_postal_code_check": "pass" if address.get("postal_code")
                           else None,
                           "cvc_check": "pass" if card.get("cvc") not in (None, "") else None},
                "country": "US", "exp_month": details.exp_month, "exp_year": details.exp_year,
                "fingerprint": details.fingerprint, "funding": details.funding,
                "generated_from": None, "last4": details.last4,
                "networks": {"available": [details.brand], "preferred": None},
                "regulated_status": "unregulated",
                "three_d_secure_usage": {"supported": True}, "wallet": None}
            self._behaviour = details.behaviour
        if iban is not None:
            self.sepa_debit = {
                "bank_code": iban.bank_code, "branch_code": iban.branch_code,
                "country": iban.country, "fingerprint": iban.fingerprint,
                "generated_from": {"charge": None, "setup_attempt": None},
                "last4": iban.last4}
            self._sepa_outcome = iban.outcome
        self.customer: str | None = None
        self.customer_account = None
        self.metadata = metadata_update({}, metadata)
        self._setup_done = False  # set up for future use (SetupIntent or setup_future_usage)

    @staticmethod
    def _check_card(card: Any) -> cards.CardDetails:
        card = as_dict(card, "card")
        if not card:
            raise missing_param("card")
        extra = {k: v for k, v in card.items() if k not in ("number", "exp_month", "exp_year",
                                                             "cvc")}
        reject_unknown(extra, "card")
        for field in ("exp_month", "exp_year"):
            if card.get(field) in (None, ""):
                raise missing_param(f"card[{field}]")
        t = time.gmtime()
        return cards.check_card(card.get("number"), card.get("exp_month"),
                                card.get("exp_year"), card.get("cvc"), t.tm_year, t.tm_mon)

    @staticmethod
    def _check_sepa(sepa_debit: Any) -> sepa.IbanDetails:
        data = as_dict(sepa_debit, "sepa_debit")
        if not data:
            raise missing_param("sepa_debit")
        reject_unknown({k: v for k, v in data.items() if k != "iban"}, "sepa_debit")
        return sepa.check_iban(data.get("iban"))

    @property
    def _card_behaviour(self) -> cards.Behaviour:
        return cards.BEHAVIOURS[self._behaviour]

    # localstripe's own invoice/subscription code asks these questions of a PaymentMethod.
    def _requires_authentication(self) -> bool:
        return self._card_behaviour.three_ds != "none"

    def _attaching_is_declined(self) -> bool:
        b = self._card_behaviour
        return b.decline is not None and b.decline_at_setup

    def _charging_is_declined(self) -> bool:
        return self._card_behaviour.decline is not None

    def _authentication(self, off_session: bool) -> str:
        """'none', 'challenge' (requires_action) or 'fail' (authentication_required)."""
        mode = self._card_behaviour.three_ds
        if mode == "none":
            return "none"
        if mode == "always":
            return "fail" if off_session else "challenge"
        if mode == "setup_once" and self._setup_done:
            return "none"
        if mode == "on_session_only":
            return "none" if off_session else "challenge"
        if off_session:
            return "none" if self._setup_done else "fail"
        return "challenge"

    @classmethod
    def _get(cls, pm_id: Any, param: str = "payment_method") -> PaymentMethod:
        """Retrieve, turning Stripe's test ids (`pm_card_*`, `pm_success_de`…) into fresh
        PaymentMethods."""
        if isinstance(pm_id, str) and pm_id in sepa.TEST_PAYMENT_METHODS:
            return cls(type="sepa_debit",
                       sepa_debit={"iban": sepa.TEST_PAYMENT_METHODS[pm_id]})
        if isinstance(pm_id, str) and pm_id in cards.TEST_PAYMENT_METHODS:
            number = cards.TEST_PAYMENT_METHODS[pm_id]
            return cls(type="card", card={"number": number, "exp_month": 12,
                                          "exp_year": time.gmtime().tm_year + 3,
                                          "cvc": "1234" if len(number) == 15 else "123"})
        obj = lookup(cls, pm_id, param)
        if not isinstance(obj, PaymentMethod):
            raise no_such("payment_method", str(pm_id), param)
        return obj

    @classmethod
    def _api_retrieve(cls, id: str) -> PaymentMethod:  # noqa: A002
        return cls._get(id)

    @classmethod
    def _api_update(cls, id: str, **data: Any) -> PaymentMethod:  # noqa: A002
        obj = cls._get(id)
        remember(obj)
        metadata = data.pop("metadata", None)
        billing = data.pop("billing_details", None)
        card = as_dict(data.pop("card", None), "card")
        allow_redisplay = data.pop("allow_redisplay", None)
        reject_unknown(data)
        reject_unknown({k: v for k, v in card.items() if k not in ("exp_month", "exp_year")},
                       "card")
        if card and obj.type != "card":
            raise invalid_param("card", f"You cannot update card details of a PaymentMethod "
                                        f"of type {obj.type}.")
        if "exp_month" in card:
            obj.card["exp_month"] = as_int(card["exp_month"], "card[exp_month]", 1)
        if "exp_year" in card:
            obj.card["exp_year"] = as_int(card["exp_year"], "card[exp_year]", 2000)
        if billing is not None:
            for key, value in as_dict(billing, "billing_details").items():
                if key not in obj.billing_details:
                    raise unknown_param(f"billing_details[{key}]")
                obj.billing_details[key] = value or None
        if allow_redisplay is not None:
            obj.allow_redisplay = as_enum(allow_redisplay, "allow_redisplay",
                                          ("always", "limited", "unspecified"))
        if metadata is not None:
            obj.metadata = metadata_update(obj.metadata, metadata)
        emit("payment_method.updated", obj)
        return obj

    @classmethod
    def _api_delete(cls, id: str) -> Any:  # noqa: A002
        raise StripeError(405, "PaymentMethods cannot be deleted; detach them instead.")

    @classmethod
    def _api_attach(cls, id: str, customer: Any = None, **kwargs: Any) -> PaymentMethod:  # noqa: A002
        reject_unknown(kwargs)
        if customer is None:
            raise missing_param("customer")
        obj = cls._get(id)
        lookup(Customer, customer, "customer")
        if obj.customer == customer:
            return obj
        if obj.customer is not None:
            raise StripeError(400, "The payment method you provided has already been attached "
                                   "to a customer.", param="payment_method")
        behaviour = obj._card_behaviour
        # Stripe verifies the card when it is attached: declining cards fail here (…0341 not).
        if behaviour.decline is not None and behaviour.decline_at_setup:
            raise card_declined(behaviour.decline)
        obj._attach_to(customer)
        return obj

    def _attach_to(self, customer: str) -> None:
        self.customer = customer
        emit("payment_method.attached", self)

    @classmethod
    def _api_detach(cls, id: str, **kwargs: Any) -> PaymentMethod:  # noqa: A002
        reject_unknown(kwargs)
        obj = cls._get(id)
        if obj.customer is None:
            raise StripeError(400, f"The payment method {obj.id} is not attached to a customer "
                                   f"so detachment is impossible.",
                              code="payment_method_unexpected_state")
        customer = store.get("customer:" + obj.customer)
        if customer is not None and \
                customer.invoice_settings.get("default_payment_method") == obj.id:
            customer.invoice_settings["default_payment_method"] = None
        obj.customer = None
        emit("payment_method.detached", obj)
        return obj

    @classmethod
    def _api_list_all(cls, url: str, customer: Any = None, type: Any = None,  # noqa: A002
                      limit: Any = None, starting_after: Any = None,
                      ending_before: Any = None, **kwargs: Any) -> List:
        reject_unknown(kwargs)
        if customer is not None:
            lookup(Customer, customer, "customer")
        if type is not None:
            as_enum(type, "type", PM_TYPES)
        return list_objects(
            "payment_method", url,
            lambda pm: isinstance(pm, PaymentMethod) and pm.customer is not None
            and (customer is None or pm.customer == customer)
            and (type is None or pm.type == type),
            limit, starting_after, ending_before)


# --------------------------------------------------------------------------- charges


def _outcome(decline: cards.Decline | None, behaviour: cards.Behaviour) -> dict[str, Any]:
    """The charge's `outcome` (https://docs.stripe.com/api/charges/object#charge_object-outcome):
    Radar's risk level and score, and whether the network or Radar decided."""
    outcome: dict[str, Any] = {
        "advice_code": None, "network_advice_code": None, "network_decline_code": None,
        "risk_level": behaviour.risk_level, "risk_score": behaviour.risk_score}
    if decline is None:
        return {**outcome, "network_status": "approved_by_network", "reason": None,
                "seller_message": "Payment complete.", "type": "authorized"}
    if decline.blocked:
        return {**outcome, "network_status": "not_sent_to_network",
                "reason": "highest_risk_level",
                "seller_message": "Stripe blocked this payment as too risky.",
                "type": "blocked"}
    reason = decline.decline_code or decline.code
    return {**outcome, "network_status": "declined_by_network", "reason": reason,
            "seller_message": "The bank did not return any further details with this decline."
            if reason == "generic_decline" else f"The bank returned the decline code "
                                                f"`{reason}`.",
            "type": "issuer_declined"}


def decline_error(decline: cards.Decline, pm_export: dict[str, Any],
                  charge_id: str | None = None) -> dict[str, Any]:
    """A `last_payment_error` / `last_setup_error` for a declined card."""
    error: dict[str, Any] = {
        "code": decline.code,
        "doc_url": f"https://docs.stripe.com/error-codes/{decline.code.replace('_', '-')}",
        "message": decline.message, "payment_method": pm_export, "type": "card_error"}
    if charge_id is not None:
        error["charge"] = charge_id
    if decline.decline_code:
        error["decline_code"] = decline.decline_code
    if decline.param:
        error["param"] = decline.param
    return error


def card_declined(decline: cards.Decline, **extra: Any) -> StripeError:
    """The 402 `card_error` a declined confirmation answers."""
    return StripeError(402, decline.message, type="card_error", code=decline.code,
                       decline_code=decline.decline_code, param=decline.param, **extra)


class Charge(BaseCharge):
    """The charge a PaymentIntent confirmation creates (succeeded or failed)."""

    def __init__(self, intent: PaymentIntent, pm: PaymentMethod,
                 decline: cards.Decline | None, three_d_secure: bool) -> None:
        StripeObject.__init__(self, id=new_id("ch_"))
        captured = decline is None and intent.capture_method != "manual"
        behaviour = pm._card_behaviour
        self.amount = intent.amount
        self.amount_captured = intent.amount if captured else 0
        self.application = None
        self.application_fee = None
        self.application_fee_amount = None
        self.balance_transaction = new_id("txn_") if captured else None
        self.billing_details = copy.deepcopy(pm.billing_details)
        self.calculated_statement_descriptor = "PAYMENTS SITE"
        self.captured = captured
        self.currency = intent.currency
        self.customer = intent.customer
        self.description = intent.description
        self.disputed = False
        self.failure_balance_transaction = None
        self.failure_code = decline.code if decline else None
        self.failure_message = decline.message if decline else None
        self.fraud_details: dict[str, Any] = {}
        self.metadata = dict(intent.metadata)
        self.on_behalf_of = None
        self.outcome = _outcome(decline, behaviour)
        self.payment_intent = intent.id
        self.payment_method = pm.id
        self.payment_method_details: dict[str, Any]
        if pm.type == "sepa_debit":
            debit: dict[str, Any] = pm.sepa_debit
            self.payment_method_details = {"type": "sepa_debit", "sepa_debit": {
                **{k: debit[k] for k in ("bank_code", "branch_code", "country", "fingerprint",
                                         "last4")},
                # The mandate the customer accepted; the emulator has no Mandate objects.
                "mandate": new_id("mandate_")}}
        else:
            card: dict[str, Any] = pm.card
            approved = decline is None
            self.payment_method_details = {"type": "card", "card": {
                "amount_authorized": intent.amount if approved else None,
                "authorization_code": new_id("", 6).upper() if approved else None,
                "brand": card["brand"], "checks": dict(card["checks"]),
                "country": card["country"],
                "exp_month": card["exp_month"], "exp_year": card["exp_year"],
                "extended_authorization": {"status": "disabled"},
                "fingerprint": card["fingerprint"], "funding": card["funding"],
                "incremental_authorization": {"status": "unavailable"},
                "installments": None, "last4": card["last4"], "mandate": None,
                "multicapture": {"status": "unavailable"},
                "network": card["brand"], "network_token": {"used": False},
                "network_transaction_id": new_id("", 15) if approved else None,
                "overcapture": {"maximum_amount_capturable": intent.amount,
                                "status": "unavailable"},
                "regulated_status": card["regulated_status"],
                "three_d_secure": {
                    "authentication_flow": "challenge", "electronic_commerce_indicator": "05",
                    "exemption_indicator": None, "result": "authenticated",
                    "result_reason": None, "transaction_id": new_id("", 32),
                    "version": "2.2.0"} if three_d_secure else None,
                "transaction_link_id": None,
                "wallet": None}}
        self.receipt_email = intent.receipt_email
        self.receipt_number = None
        self.receipt_url = f"https://pay.stripe.com/receipts/emulator/{self.id}"
        self.review = None
        self.shipping = copy.deepcopy(intent.shipping)
        self.source = None
        self.source_transfer = None
        self.statement_descriptor = None
        self.statement_descriptor_suffix = None
        self.status = "failed" if decline else "succeeded"
        self.transfer_data = None
        self.transfer_group = None
        self._refund_ids: list[str] = []

    refunds: Any = None  # localstripe's property; Stripe includes refunds only on request

    def _export(self, expand: Any = None) -> dict[str, Any]:
        obj = super()._export(expand=expand)
        obj.pop("refunds", None)
        return obj

    def _fail(self, decline: cards.Decline) -> None:
        """A pending (delayed-notification) charge the bank later refused."""
        self.status = "failed"
        self.captured = False
        self.amount_captured = 0
        self.balance_transaction = None
        self.failure_code = decline.code
        self.failure_message = decline.message
        self.outcome = _outcome(decline, cards.OK)

    @property
    def paid(self) -> bool:
        return self.status == "succeeded"

    @property
    def amount_refunded(self) -> int:
        # Pending refunds count (Stripe reserves them); failed ones give the money back.
        return sum(r.amount for r in self._refund_objects() if r.status != "failed"
                   and r.status != "canceled")

    @property
    def refunded(self) -> bool:
        return self.amount_refunded >= self.amount

    def _refund_objects(self) -> list[Refund]:
        return [store["refund:" + rid] for rid in self._refund_ids if "refund:" + rid in store]

    @classmethod
    def _api_create(cls, **data: Any) -> Charge:
        raise StripeError(400, "The emulator only creates charges through PaymentIntents.")

    @classmethod
    def _api_update(cls, id: str, **data: Any) -> Charge:  # noqa: A002
        obj = lookup(cls, id)
        remember(obj)
        metadata = data.pop("metadata", None)
        description = data.pop("description", None)
        reject_unknown(data)
        if metadata is not None:
            obj.metadata = metadata_update(obj.metadata, metadata)
        if description is not None:
            obj.description = as_str(description, "description")
        emit("charge.updated", obj)
        return obj

    @classmethod
    def _api_list_all(cls, url: str, customer: Any = None, payment_intent: Any = None,
                      created: Any = None, limit: Any = None, starting_after: Any = None,
                      ending_before: Any = None, **kwargs: Any) -> List:
        reject_unknown(kwargs)
        return list_objects(
            "charge", url,
            lambda c: (customer is None or c.customer == customer)
            and (payment_intent is None or c.payment_intent == payment_intent),
            limit, starting_after, ending_before, created)


DISPUTE_DELAY_S = 0.0  # the card network's dispute arrives after the payment's own answer


def open_dispute(charge: Charge, reason: str) -> None:
    """The cardholder's bank disputes the charge: the dispute opens, the charge is marked
    disputed and the disputed amount (plus Stripe's fee) is withdrawn from the balance."""
    if store.get("charge:" + charge.id) is not charge:
        return  # wiped meanwhile
    dispute = Dispute(charge, reason)
    remember(charge)
    charge.disputed = True
    emit("charge.dispute.created", dispute)
    emit("charge.updated", charge)
    dispute.balance_transactions.append({
        "id": new_id("txn_"), "object": "balance_transaction", "amount": -dispute.amount,
        "currency": dispute.currency, "created": now(), "description": f"Chargeback withdrawal "
        f"for {charge.id}", "fee": 1500, "net": -dispute.amount - 1500, "reporting_category":
        "dispute", "source": dispute.id, "status": "available", "type": "adjustment"})
    emit("charge.dispute.funds_withdrawn", dispute)
    for callback in on_background_change:
        callback()


class Dispute(StripeObject):
    """The dispute Stripe opens shortly after a charge with …0259 (or …2685) succeeds."""

    object = "dispute"
    _id_prefix = "dp_"

    def __init__(self, charge: Charge, reason: str) -> None:
        super().__init__(id=new_id("dp_"))
        self.amount = charge.amount
        self.balance_transactions: list[Any] = []
        self.charge = charge.id
        self.currency = charge.currency
        self.enhanced_eligibility_types: list[str] = []
        self.evidence: dict[str, Any] = {k: None for k in (
            "access_activity_log", "billing_address", "cancellation_policy",
            "cancellation_policy_disclosure", "cancellation_rebuttal",
            "customer_communication", "customer_email_address", "customer_name",
            "customer_purchase_ip", "customer_signature", "duplicate_charge_documentation",
            "duplicate_charge_explanation", "duplicate_charge_id", "product_description",
            "receipt", "refund_policy", "refund_policy_disclosure",
            "refund_refusal_explanation", "service_date", "service_documentation",
            "shipping_address", "shipping_carrier", "shipping_date", "shipping_documentation",
            "shipping_tracking_number", "uncategorized_file", "uncategorized_text")}
        self.evidence["enhanced_evidence"] = {}
        self.evidence_details = {"due_by": self.created + 7 * 86400,
                                 "enhanced_eligibility": {}, "has_evidence": False,
                                 "past_due": False, "submission_count": 0,
                                 "submission_method": "not_submitted"}
        self.is_charge_refundable = False
        self.metadata: dict[str, str] = {}
        self.payment_intent = charge.payment_intent
        card = charge.payment_method_details["card"]
        self.payment_method_details: dict[str, Any] = {"type": "card", "card": {
            "brand": card["brand"], "case_type": "chargeback", "network": card["network"],
            "network_reason_code": "10.4" if reason == "fraudulent" else "13.1"}}
        self.reason = reason
        self.status = "needs_response"

    @classmethod
    def _api_create(cls, **data: Any) -> Dispute:
        raise StripeError(400, "Disputes are opened by the card network, not through the API.")

    @classmethod
    def _api_list_all(cls, url: str, charge: Any = None, payment_intent: Any = None,
                      created: Any = None, limit: Any = None, starting_after: Any = None,
                      ending_before: Any = None, **kwargs: Any) -> List:
        # https://docs.stripe.com/api/disputes/list (charge, payment_intent, created, paging)
        reject_unknown(kwargs)
        return list_objects(
            "dispute", url,
            lambda d: (charge is None or d.charge == charge)
            and (payment_intent is None or d.payment_intent == payment_intent),
            limit, starting_after, ending_before, created)


# --------------------------------------------------------------------------- payment intents

THREE_DS_ACTION: dict[str, Any] = {"type": "use_stripe_sdk",
                   "use_stripe_sdk": {"type": "three_d_secure_redirect", "stripe_js": ""}}


# Currencies each payment method type can be used with (https://docs.stripe.com/payments/
# sepa-debit/accept-a-payment: "Supported currencies: eur"); card takes any.
PM_TYPE_CURRENCIES: dict[str, tuple[str, ...]] = {"sepa_debit": ("eur",)}


def _check_type_currency(pm_type: str, currency: str | None, param: str) -> None:
    allowed = PM_TYPE_CURRENCIES.get(pm_type)
    if currency is not None and allowed is not None and currency not in allowed:
        raise invalid_param(param, f"The currency provided ({currency}) is invalid. Payments "
                                   f"with {pm_type} support the following currencies: "
                                   f"{', '.join(allowed)}.")


def _payment_method_types(automatic: Any, types: Any, currency: str | None = None
                          ) -> tuple[dict[str, Any] | None, list[str]]:
    """(automatic_payment_methods, payment_method_types) as Stripe reports them.

    With automatic payment methods the list is what the emulator's "dashboard" enables and the
    currency allows: card, plus sepa_debit for eur (SetupIntents have no currency).
    """
    if automatic is not None and types is not None:
        raise StripeError(400, "You may only specify one of these parameters: "
                               "automatic_payment_methods, allowed_payment_method_types.",
                          param="automatic_payment_methods")
    if types is not None:
        if not isinstance(types, list) or not types:
            raise invalid_param("allowed_payment_method_types", "Invalid array")
        for t in types:
            if t not in ("card", "link", "sepa_debit"):
                raise invalid_param("allowed_payment_method_types",
                                    f'The payment method type "{t}" is invalid. Please ensure '
                                    f'the provided type is activated in your dashboard.')
            _check_type_currency(str(t), currency, "allowed_payment_method_types")
        return None, [str(t) for t in types]
    auto = as_dict(automatic, "automatic_payment_methods") or {"enabled": True}
    reject_unknown({k: v for k, v in auto.items() if k not in ("enabled", "allow_redirects")},
                   "automatic_payment_methods")
    enabled = as_bool(auto.get("enabled"), "automatic_payment_methods[enabled]")
    if enabled is None:
        raise missing_param("automatic_payment_methods[enabled]")
    result: dict[str, Any] = {"enabled": enabled}
    if auto.get("allow_redirects") is not None:
        result["allow_redirects"] = as_enum(auto["allow_redirects"],
                                            "automatic_payment_methods[allow_redirects]",
                                            ("always", "never"))
    eligible = [t for t in PM_TYPES
                if currency is None or currency in PM_TYPE_CURRENCIES.get(t, (currency,))]
    return (result if enabled else None), (eligible if enabled else ["card"])


def _check_pm_allowed(pm: PaymentMethod, types: list[str], currency: str | None,
                      kind: str = "PaymentIntent") -> None:
    """A PaymentMethod must be of a type the intent allows, in a currency that type takes."""
    if pm.type not in types:
        code = "payment_intent_incompatible_payment_method" if kind == "PaymentIntent" \
            else "setup_intent_invalid_parameter"
        raise StripeError(
            400, f"The PaymentMethod provided ({pm.type}) is not allowed for this {kind}. "
                 f"Please attach a PaymentMethod of one of the following types: "
                 f"{', '.join(types)}. Alternatively update the allowed_payment_method_types "
                 f"for this {kind} to include \"{pm.type}\".",
            param="payment_method", code=code)
    _check_type_currency(pm.type, currency, "payment_method")


class IntentConfirmation:
    """What confirming a PaymentIntent and a SetupIntent share: which states may be
    confirmed, where the PaymentMethod comes from, asking for 3-D Secure and its result.

    Subclasses name themselves (`_kind`, `_label`), the field their errors go to and their
    failure event, and say what a successful authentication does (`_authenticated`).
    """

    _kind: str  # "payment_intent" / "setup_intent": error codes, events, client secrets
    _label: str  # "PaymentIntent" / "SetupIntent": messages
    _error_field: str  # "last_payment_error" / "last_setup_error"
    _failed_event: str  # "payment_intent.payment_failed" / "setup_intent.setup_failed"
    id: str
    status: Any
    payment_method: Any
    next_action: Any

    _export: Callable[..., dict[str, Any]]  # StripeObject's, through the concrete class

    def _unexpected_state(self, message: str) -> StripeError:
        extra: dict[str, Any] = {self._kind: self._export()}
        return StripeError(400, message, code=f"{self._kind}_unexpected_state", **extra)

    def _check_confirmable(self) -> None:
        if self.status in ("requires_payment_method", "requires_confirmation",
                           "requires_action"):
            return
        if self.status == "succeeded" and self._kind == "payment_intent":
            raise self._unexpected_state("You cannot confirm this PaymentIntent because it has "
                                         "already succeeded after being previously confirmed.")
        raise self._unexpected_state(f"You cannot confirm this {self._label} because it has a "
                                     f"status of {self.status}.")

    def _payment_method_for(self, payment_method: Any,
                            payment_method_data: Any) -> PaymentMethod:
        """The PaymentMethod to confirm with: new from `payment_method_data`, the one named,
        or the one already on the intent."""
        if payment_method is not None and payment_method_data is not None:
            raise StripeError(400, "You may only specify one of these parameters: "
                                   "payment_method, payment_method_data.",
                              param="payment_method_data")
        if payment_method_data is not None:
            return PaymentMethod(**as_dict(payment_method_data, "payment_method_data"))
        if payment_method is not None:
            return PaymentMethod._get(payment_method, "payment_method")
        if self.payment_method is not None:
            return PaymentMethod._get(self.payment_method, "payment_method")
        raise self._unexpected_state(
            f"You cannot confirm this {self._label} because it's missing a payment method. "
            f"You can either update the {self._label} with a payment method and then confirm "
            f"it again, or confirm it again directly with a payment method.")

    def _ask_for_authentication(self, return_url: Any = None) -> None:
        self.status = "requires_action"
        self.next_action = copy.deepcopy(THREE_DS_ACTION)
        if return_url:
            self.next_action["use_stripe_sdk"]["return_url"] = return_url
        emit(f"{self._kind}.requires_action", self)  # type: ignore[arg-type]

    def _authenticated(self, pm: PaymentMethod) -> None:
        raise NotImplementedError

    @classmethod
    def _api_authenticate(cls, id: str, client_secret: Any = None,  # noqa: A002
                          success: Any = False, **kwargs: Any) -> Any:
        """The 3-D Secure challenge result, posted by the emulator's Stripe.js."""
        obj = lookup(cls, id)  # type: ignore[arg-type]
        check_client_secret(obj, client_secret, cls._kind)
        if obj.status != "requires_action":
            raise StripeError(400, f"This {cls._label} has a status of {obj.status}; only one "
                                   f"in requires_action can be authenticated.",
                              code=f"{cls._kind}_unexpected_state")
        pm = PaymentMethod._get(obj.payment_method)
        obj.next_action = None
        if as_bool(success, "success"):
            obj._authenticated(pm)
            return obj
        obj.status = "requires_payment_method"
        obj.payment_method = None
        code = f"{cls._kind}_authentication_failure"
        setattr(obj, cls._error_field, {
            "code": code, "doc_url": f"https://docs.stripe.com/error-codes/"
                                     f"{code.replace('_', '-')}",
            "message": "We are unable to authenticate your payment method. Please choose a "
                       "different payment method and try again.",
            "payment_method": pm._export(), "type": "invalid_request_error"})
        emit(cls._failed_event, obj)
        return obj


class PaymentIntent(IntentConfirmation, BasePaymentIntent):
    """A PaymentIntent with Stripe's state machine, declines and 3-D Secure."""

    _kind, _label = "payment_intent", "PaymentIntent"
    _error_field, _failed_event = "last_payment_error", "payment_intent.payment_failed"

    # localstripe computes these as properties; here they are plain stored attributes.
    status: Any = None
    last_payment_error: Any = None
    charges: Any = None

    def __init__(self, amount: Any = None, currency: Any = None, customer: Any = None,
                 description: Any = None, metadata: Any = None, receipt_email: Any = None,
                 automatic_payment_methods: Any = None,
                 allowed_payment_method_types: Any = None,
                 setup_future_usage: Any = None, payment_method: Any = None,
                 capture_method: Any = None, confirmation_method: Any = None,
                 statement_descriptor: Any = None, statement_descriptor_suffix: Any = None,
                 shipping: Any = None, payment_method_options: Any = None,
                 **kwargs: Any) -> None:
        reject_unknown(kwargs)
        if amount is None:
            raise missing_param("amount")
        if currency is None:
            raise missing_param("currency")
        amount = as_int(amount, "amount", 1)
        currency = check_currency(currency)
        minimum = MIN_AMOUNTS.get(currency)
        if minimum and amount < minimum:
            raise StripeError(400, f"Amount must be at least {format_amount(minimum, currency)} "
                                   f"{currency}", param="amount", code="amount_too_small")
        if amount > 99999999:
            raise StripeError(400, "Amount must be no more than $999,999.99", param="amount",
                              code="amount_too_large")
        if customer is not None:
            lookup(Customer, customer, "customer")
        if receipt_email not in (None, "") and "@" not in str(receipt_email):
            raise invalid_param("receipt_email", f"Invalid email address: {receipt_email}",
                                "email_invalid")
        auto, types = _payment_method_types(automatic_payment_methods,
                                            allowed_payment_method_types, currency)
        pm = PaymentMethod._get(payment_method, "payment_method") if payment_method else None
        if pm is not None:
            _check_pm_allowed(pm, types, currency)
        StripeObject.__init__(self, id=new_id("pi_"))
        self.amount = amount
        self.amount_capturable = 0
        self.amount_details: dict[str, Any] = {"tip": {}}
        self.amount_received = 0
        self.application = None
        self.application_fee_amount = None
        self.automatic_payment_methods = auto
        self.canceled_at: int | None = None
        self.cancellation_reason: str | None = None
        self.capture_method: str | None = as_enum(capture_method, "capture_method",
                                      ("automatic", "automatic_async", "manual")) \
            or "automatic_async"
        self.client_secret = f"{self.id}_secret_{new_id('', 25)}"
        self.confirmation_method = as_enum(confirmation_method, "confirmation_method",
                                           ("automatic", "manual")) or "automatic"
        self.currency = currency
        self.customer = customer
        self.description = as_str(description, "description")
        self.allowed_payment_method_types = list(allowed_payment_method_types) \
            if allowed_payment_method_types else None
        self.customer_account = None
        self.excluded_payment_method_types = None
        self.last_payment_error = None
        self.latest_charge: str | None = None
        self.metadata = metadata_update({}, metadata)
        self.next_action: dict[str, Any] | None = None
        self.managed_payments = {"enabled": False}
        self.on_behalf_of = None
        self.payment_method = pm.id if pm else None
        self.payment_method_configuration_details = None
        self.payment_method_options = {"card": {
            "installments": None, "mandate_options": None, "network": None,
            "request_three_d_secure": "automatic"}}
        as_dict(payment_method_options, "payment_method_options")
        self.payment_method_types = types
        self.processing = None
        self.receipt_email = receipt_email or None
        self.review = None
        self.setup_future_usage = as_enum(setup_future_usage, "setup_future_usage",
                                          ("on_session", "off_session"))
        self.shipping = as_dict(shipping, "shipping") or None
        self.source = None
        self.statement_descriptor = statement_descriptor
        self.statement_descriptor_suffix = statement_descriptor_suffix
        self.status = "requires_confirmation" if pm else "requires_payment_method"
        self.transfer_data = None
        self.transfer_group = None

    def _export(self, expand: Any = None) -> dict[str, Any]:
        obj = super()._export(expand=expand)
        obj.pop("charges", None)
        return obj

    # ---- API entry points

    @classmethod
    def _api_create(cls, confirm: Any = None, off_session: Any = None, return_url: Any = None,
                    error_on_requires_action: Any = None, use_stripe_sdk: Any = None,
                    mandate_data: Any = None, **data: Any) -> PaymentIntent:
        confirm = as_bool(confirm, "confirm")
        if off_session is not None and not confirm:
            raise invalid_param("off_session",
                                "You can only pass off_session when confirm=true.")
        if return_url is not None and not confirm:
            raise invalid_param("return_url",
                                "You can only pass return_url when confirm=true.")
        obj = cls(**data)
        emit("payment_intent.created", obj)
        if confirm:
            obj._confirm(off_session=off_session, return_url=return_url,
                         error_on_requires_action=error_on_requires_action)
        return obj

    @classmethod
    def _api_retrieve(cls, id: str) -> PaymentIntent:  # noqa: A002
        return lookup(cls, id)  # type: ignore[no-any-return]

    @classmethod
    def _api_update(cls, id: str, **data: Any) -> PaymentIntent:  # noqa: A002
        obj: PaymentIntent = lookup(cls, id)
        editable_after = {"metadata", "description", "receipt_email", "shipping"}
        if obj.status in ("succeeded", "canceled", "processing", "requires_capture"):
            for key in data:
                if key not in editable_after:
                    raise StripeError(
                        400, f"You cannot update this PaymentIntent because it has a status "
                             f"of {obj.status}.", param=key,
                        code="payment_intent_unexpected_state")
        if "metadata" in data:
            obj.metadata = metadata_update(obj.metadata, data.pop("metadata"))
        for key in ("description", "receipt_email", "statement_descriptor",
                    "statement_descriptor_suffix"):
            if key in data:
                setattr(obj, key, as_str(data.pop(key), key) or None)
        if "shipping" in data:
            obj.shipping = as_dict(data.pop("shipping"), "shipping") or None
        if "amount" in data:
            obj.amount = as_int(data.pop("amount"), "amount", 1)
        currency_changed = "currency" in data
        if currency_changed:
            obj.currency = check_currency(data.pop("currency"))
        if "customer" in data:
            customer = data.pop("customer")
            lookup(Customer, customer, "customer")
            obj.customer = customer
        if "setup_future_usage" in data:
            obj.setup_future_usage = as_enum(data.pop("setup_future_usage") or None,
                                             "setup_future_usage",
                                             ("on_session", "off_session"))
        if "payment_method" in data:
            pm = PaymentMethod._get(data.pop("payment_method"), "payment_method")
            obj.payment_method = pm.id
            obj.status = "requires_confirmation"
        if "allowed_payment_method_types" in data or "automatic_payment_methods" in data:
            allowed = data.pop("allowed_payment_method_types", None)
            obj.automatic_payment_methods, obj.payment_method_types = _payment_method_types(
                data.pop("automatic_payment_methods", None), allowed, obj.currency)
            obj.allowed_payment_method_types = list(allowed) if allowed else None
        elif currency_changed and obj.automatic_payment_methods:
            # The eligible types follow the currency (sepa_debit only for eur).
            obj.payment_method_types = _payment_method_types(
                obj.automatic_payment_methods, None, obj.currency)[1]
        elif currency_changed:
            for t in obj.payment_method_types:
                _check_type_currency(t, obj.currency, "currency")
        if "capture_method" in data:
            obj.capture_method = as_enum(data.pop("capture_method"), "capture_method",
                                         ("automatic", "automatic_async", "manual"))
        as_dict(data.pop("payment_method_options", None), "payment_method_options")
        reject_unknown(data)
        return obj

    @classmethod
    def _api_confirm(cls, id: str, payment_method: Any = None,  # noqa: A002
                     payment_method_data: Any = None, off_session: Any = None,
                     return_url: Any = None, setup_future_usage: Any = None,
                     receipt_email: Any = None, error_on_requires_action: Any = None,
                     client_secret: Any = None, use_stripe_sdk: Any = None,
                     mandate_data: Any = None, payment_method_options: Any = None,
                     shipping: Any = None, capture_method: Any = None,
                     expected_payment_method_type: Any = None, client_context: Any = None,
                     **kwargs: Any) -> PaymentIntent:
        reject_unknown(kwargs)
        obj: PaymentIntent = lookup(cls, id)
        if client_secret is not None:
            check_client_secret(obj, client_secret, "payment_intent")
        check_client_context(obj, client_context, "payment_intent")
        if setup_future_usage is not None:
            obj.setup_future_usage = as_enum(setup_future_usage or None, "setup_future_usage",
                                             ("on_session", "off_session"))
        if receipt_email is not None:
            obj.receipt_email = as_str(receipt_email, "receipt_email") or None
        if shipping is not None:
            obj.shipping = as_dict(shipping, "shipping") or None
        if capture_method is not None:
            obj.capture_method = as_enum(capture_method, "capture_method",
                                         ("automatic", "automatic_async", "manual"))
        obj._confirm(payment_method=payment_method, payment_method_data=payment_method_data,
                     off_session=off_session, return_url=return_url,
                     error_on_requires_action=error_on_requires_action)
        return obj

    @classmethod
    def _api_cancel(cls, id: str, cancellation_reason: Any = None,  # noqa: A002
                    **kwargs: Any) -> PaymentIntent:
        reject_unknown(kwargs)
        obj: PaymentIntent = lookup(cls, id)
        reason = as_enum(cancellation_reason, "cancellation_reason",
                         ("duplicate", "fraudulent", "requested_by_customer", "abandoned"))
        if obj.status not in ("requires_payment_method", "requires_capture",
                              "requires_confirmation", "requires_action", "processing"):
            raise StripeError(
                400, f"You cannot cancel this PaymentIntent because it has a status of "
                     f"{obj.status}. Only a PaymentIntent with one of the following statuses "
                     f"may be canceled: requires_payment_method, requires_capture, "
                     f"requires_confirmation, requires_action, processing.",
                code="payment_intent_unexpected_state", payment_intent=obj._export())
        obj.status = "canceled"
        obj.next_action = None
        obj.canceled_at = now()
        obj.cancellation_reason = reason
        obj.amount_capturable = 0
        emit("payment_intent.canceled", obj)
        return obj

    @classmethod
    def _api_capture(cls, id: str, amount_to_capture: Any = None,  # noqa: A002
                     **kwargs: Any) -> PaymentIntent:
        reject_unknown(kwargs)
        obj: PaymentIntent = lookup(cls, id)
        if obj.status != "requires_capture":
            raise StripeError(
                400, f"This PaymentIntent could not be captured because it has a status of "
                     f"{obj.status}. Only a PaymentIntent with one of the following statuses "
                     f"may be captured: requires_capture.",
                code="payment_intent_unexpected_state")
        amount = obj.amount_capturable if amount_to_capture is None else as_int(
            amount_to_capture, "amount_to_capture", 1)
        if amount > obj.amount_capturable:
            raise StripeError(400, "The amount to capture is greater than the amount "
                                   "capturable.", param="amount_to_capture",
                              code="amount_too_large")
        charge: Charge = store["charge:" + str(obj.latest_charge)]
        charge.captured = True
        charge.amount_captured = amount
        charge.balance_transaction = new_id("txn_")
        obj.amount_received = amount
        obj.amount_capturable = 0
        obj.status = "succeeded"
        emit("charge.captured", charge)
        emit("payment_intent.succeeded", obj)
        return obj

    # ---- state machine

    def _confirm(self, payment_method: Any = None, payment_method_data: Any = None,
                 off_session: Any = None, return_url: Any = None,
                 error_on_requires_action: Any = None) -> None:
        self._check_confirmable()
        pm = self._payment_method_for(payment_method, payment_method_data)
        if pm.customer is not None and pm.customer != self.customer:
            raise StripeError(
                400, f"The provided PaymentMethod ({pm.id}) was previously attached to a "
                     f"different Customer. It must be used with that customer.",
                param="payment_method")
        off = off_session not in (None, False, "false", "")
        if off and self.setup_future_usage == "on_session":
            raise invalid_param("off_session", "You cannot set off_session with "
                                               "setup_future_usage=on_session.")
        _check_pm_allowed(pm, self.payment_method_types, self.currency)
        if pm.type == "sepa_debit" and self.capture_method == "manual":
            raise invalid_param("capture_method", "The payment method type sepa_debit does not "
                                                  "support capture_method=manual.")
        self.payment_method = pm.id
        self.last_payment_error = None
        self.next_action = None
        if pm.type == "sepa_debit":
            self._start_debit(pm)
            return
        auth = pm._authentication(off)
        if auth == "challenge" and as_bool(error_on_requires_action, "error_on_requires_action"):
            auth = "fail"
        if auth == "fail":
            self._charge(pm, decline=cards.AUTH_REQUIRED)
        elif auth == "challenge":
            self._ask_for_authentication(return_url)
        else:
            self._charge(pm)

    def _authenticated(self, pm: PaymentMethod) -> None:
        try:
            self._charge(pm, three_d_secure=True)
        except StripeError:
            pass  # a decline after authentication is reported on the intent itself

    def _charge(self, pm: PaymentMethod, decline: cards.Decline | None = None,
                three_d_secure: bool = False) -> Charge:
        behaviour = pm._card_behaviour
        decline = decline or behaviour.decline
        charge = Charge(self, pm, decline, three_d_secure)
        self.latest_charge = charge.id
        if decline is not None:
            self.status = "requires_payment_method"
            self.payment_method = None
            pm_export = pm._export()
            self.last_payment_error = decline_error(decline, pm_export, charge.id)
            emit("charge.failed", charge)
            emit("payment_intent.payment_failed", self)
            raise card_declined(decline, charge=charge.id, payment_intent=self._export(),
                                payment_method=pm_export)
        if self.capture_method == "manual":
            self.status = "requires_capture"
            self.amount_capturable = self.amount
        else:
            self.status = "succeeded"
            self.amount_received = self.amount
        self._set_up_for_future(pm)
        emit("charge.succeeded", charge)
        if self.status == "succeeded":
            emit("payment_intent.succeeded", self)
        else:
            emit("payment_intent.amount_capturable_updated", self)
        if behaviour.dispute_reason:
            reason = behaviour.dispute_reason
            call_later(DISPUTE_DELAY_S, lambda: open_dispute(charge, reason))
        return charge

    def _set_up_for_future(self, pm: PaymentMethod) -> None:
        if self.setup_future_usage:
            pm._setup_done = True
            if self.customer and pm.customer is None:
                pm._attach_to(self.customer)

    # ---- delayed notification (SEPA Direct Debit)

    def _start_debit(self, pm: PaymentMethod) -> None:
        """The debit is submitted: the charge is pending and the intent `processing` until the
        bank answers, `sepa.processing_delay_s()` later (never inside this request).

        https://docs.stripe.com/payments/payment-intents/verifying-status#checking-status
        """
        charge = Charge(self, pm, None, False)
        charge.status = "pending"
        self.latest_charge = charge.id
        self.status = "processing"
        emit("charge.pending", charge)
        emit("payment_intent.processing", self)
        call_later(sepa.processing_delay_s(), self._settle_debit)

    def _settle_debit(self) -> None:
        """The bank's answer: `succeeded`, or back to `requires_payment_method`."""
        if store.get("payment_intent:" + self.id) is not self or self.status != "processing":
            return  # wiped or canceled meanwhile
        charge = store.get("charge:" + str(self.latest_charge))
        pm = store.get("payment_method:" + str(getattr(charge, "payment_method", None)))
        if not isinstance(charge, Charge) or not isinstance(pm, PaymentMethod):
            return
        failure = sepa.OUTCOMES[pm._sepa_outcome or "succeeds"].failure
        if failure is None:
            charge.status = "succeeded"
            self.status = "succeeded"
            self.amount_received = self.amount
            self._set_up_for_future(pm)
            emit("charge.succeeded", charge)
            emit("payment_intent.succeeded", self)
        else:
            charge._fail(failure)
            self.status = "requires_payment_method"
            self.payment_method = None
            self.last_payment_error = {
                "charge": charge.id, "code": failure.code,
                "doc_url": f"https://docs.stripe.com/error-codes/"
                           f"{failure.code.replace('_', '-')}",
                "message": failure.message, "payment_method": pm._export(),
                "type": "invalid_request_error"}
            emit("charge.failed", charge)
            emit("payment_intent.payment_failed", self)
        for callback in on_background_change:
            callback()

    @classmethod
    def _api_list_all(cls, url: str, customer: Any = None, created: Any = None,
                      limit: Any = None, starting_after: Any = None, ending_before: Any = None,
                      **kwargs: Any) -> List:
        reject_unknown(kwargs)
        return list_objects("payment_intent", url,
                            lambda pi: customer is None or pi.customer == customer,
                            limit, starting_after, ending_before, created)


# --------------------------------------------------------------------------- setup intents


class SetupIntent(IntentConfirmation, BaseSetupIntent):
    """A SetupIntent that verifies the card, runs 3-D Secure and attaches it to the customer."""

    _kind, _label = "setup_intent", "SetupIntent"
    _error_field, _failed_event = "last_setup_error", "setup_intent.setup_failed"

    def __init__(self, customer: Any = None, usage: Any = None,
                 allowed_payment_method_types: Any = None,
                 automatic_payment_methods: Any = None,
                 metadata: Any = None, description: Any = None, payment_method: Any = None,
                 payment_method_options: Any = None, **kwargs: Any) -> None:
        reject_unknown(kwargs)
        if customer is not None:
            lookup(Customer, customer, "customer")
        auto, types = _payment_method_types(automatic_payment_methods,
                                            allowed_payment_method_types)
        pm = PaymentMethod._get(payment_method, "payment_method") if payment_method else None
        as_dict(payment_method_options, "payment_method_options")
        StripeObject.__init__(self, id=new_id("seti_"))
        self.allowed_payment_method_types = list(allowed_payment_method_types) \
            if allowed_payment_method_types else None
        self.application = None
        self.automatic_payment_methods = auto
        self.cancellation_reason: str | None = None
        self.client_secret = f"{self.id}_secret_{new_id('', 25)}"
        self.customer = customer
        self.excluded_payment_method_types = None
        self.payment_method_configuration_details = None
        self.description = as_str(description, "description")
        self.flow_directions = None
        self.last_setup_error: dict[str, Any] | None = None
        self.latest_attempt = None
        self.mandate = None
        self.metadata = metadata_update({}, metadata)
        self.next_action: dict[str, Any] | None = None
        self.on_behalf_of = None
        self.payment_method = pm.id if pm else None
        self.payment_method_options = {"card": {"mandate_options": None, "network": None,
                                                "request_three_d_secure": "automatic"}}
        self.payment_method_types = types
        self.single_use_mandate = None
        self.status = "requires_confirmation" if pm else "requires_payment_method"
        self.usage = as_enum(usage, "usage", ("off_session", "on_session")) or "off_session"

    @classmethod
    def _api_create(cls, confirm: Any = None, return_url: Any = None,
                    use_stripe_sdk: Any = None, mandate_data: Any = None,
                    **data: Any) -> SetupIntent:
        confirm = as_bool(confirm, "confirm")
        if return_url is not None and not confirm:
            raise invalid_param("return_url", "You can only pass return_url when confirm=true.")
        obj = cls(**data)
        emit("setup_intent.created", obj)
        if confirm:
            obj._confirm()
        return obj

    @classmethod
    def _api_retrieve(cls, id: str) -> SetupIntent:  # noqa: A002
        return lookup(cls, id)  # type: ignore[no-any-return]

    @classmethod
    def _api_update(cls, id: str, **data: Any) -> SetupIntent:  # noqa: A002
        obj: SetupIntent = lookup(cls, id)
        if "metadata" in data:
            obj.metadata = metadata_update(obj.metadata, data.pop("metadata"))
        if "description" in data:
            obj.description = as_str(data.pop("description"), "description") or None
        if "customer" in data:
            customer = data.pop("customer")
            lookup(Customer, customer, "customer")
            obj.customer = customer
        if "payment_method" in data:
            obj.payment_method = PaymentMethod._get(data.pop("payment_method"),
                                                   "payment_method").id
            obj.status = "requires_confirmation"
        if "allowed_payment_method_types" in data:
            allowed = data.pop("allowed_payment_method_types")
            obj.automatic_payment_methods, obj.payment_method_types = _payment_method_types(
                None, allowed)
            obj.allowed_payment_method_types = list(allowed) if allowed else None
        reject_unknown(data)
        return obj

    @classmethod
    def _api_confirm(cls, id: str, payment_method: Any = None,  # noqa: A002
                     payment_method_data: Any = None, client_secret: Any = None,
                     return_url: Any = None, use_stripe_sdk: Any = None,
                     mandate_data: Any = None, payment_method_options: Any = None,
                     expected_payment_method_type: Any = None, client_context: Any = None,
                     **kwargs: Any) -> SetupIntent:
        reject_unknown(kwargs)
        obj: SetupIntent = lookup(cls, id)
        if client_secret is not None:
            check_client_secret(obj, client_secret, "setup_intent")
        check_client_context(obj, client_context, "setup_intent")
        obj._confirm(payment_method, payment_method_data)
        return obj

    @classmethod
    def _api_cancel(cls, id: str, cancellation_reason: Any = None,  # noqa: A002
                    client_secret: Any = None, use_stripe_sdk: Any = None,
                    **kwargs: Any) -> SetupIntent:
        reject_unknown(kwargs)
        obj: SetupIntent = lookup(cls, id)
        if client_secret is not None:
            check_client_secret(obj, client_secret, "setup_intent")
        if obj.status not in ("requires_payment_method", "requires_confirmation",
                              "requires_action"):
            raise StripeError(400, f"You cannot cancel this SetupIntent because it has a "
                                   f"status of {obj.status}.",
                              code="setup_intent_unexpected_state")
        obj.status = "canceled"
        obj.next_action = None
        obj.cancellation_reason = as_enum(cancellation_reason, "cancellation_reason",
                                          ("abandoned", "duplicate", "requested_by_customer"))
        emit("setup_intent.canceled", obj)
        return obj

    def _confirm(self, payment_method: Any = None, payment_method_data: Any = None) -> None:
        self._check_confirmable()
        pm = self._payment_method_for(payment_method, payment_method_data)
        if pm.customer is not None and self.customer is not None and \
                pm.customer != self.customer:
            raise StripeError(400, "The payment method you provided has already been attached "
                                   "to a customer.", param="payment_method")
        _check_pm_allowed(pm, self.payment_method_types, None, "SetupIntent")
        self.payment_method = pm.id
        self.last_setup_error = None
        behaviour = pm._card_behaviour
        if behaviour.decline is not None and behaviour.decline_at_setup:
            d = behaviour.decline
            pm_export = pm._export()
            self.status = "requires_payment_method"
            self.payment_method = None
            self.last_setup_error = decline_error(d, pm_export)
            emit("setup_intent.setup_failed", self)
            raise card_declined(d, setup_intent=self._export(), payment_method=pm_export)
        if behaviour.three_ds != "none":
            self._ask_for_authentication()
            return
        self._succeed(pm)

    def _authenticated(self, pm: PaymentMethod) -> None:
        self._succeed(pm)

    def _succeed(self, pm: PaymentMethod) -> None:
        self.status = "succeeded"
        self.next_action = None
        pm._setup_done = True
        if self.customer and pm.customer is None:
            pm._attach_to(self.customer)
        emit("setup_intent.succeeded", self)

    @classmethod
    def _api_list_all(cls, url: str, customer: Any = None, payment_method: Any = None,
                      created: Any = None, limit: Any = None, starting_after: Any = None,
                      ending_before: Any = None, **kwargs: Any) -> List:
        reject_unknown(kwargs)
        return list_objects(
            "setup_intent", url,
            lambda si: (customer is None or si.customer == customer)
            and (payment_method is None or si.payment_method == payment_method),
            limit, starting_after, ending_before, created)


# --------------------------------------------------------------------------- refunds


class Refund(BaseRefund):
    """A refund with Stripe's validation (reasons, remaining amount) and events."""

    def __init__(self, charge: Any = None, payment_intent: Any = None, amount: Any = None,
                 reason: Any = None, metadata: Any = None, instructions_email: Any = None,
                 **kwargs: Any) -> None:
        reject_unknown(kwargs)
        if charge is None and payment_intent is None:
            raise StripeError(400, "One of the following params should be provided for this "
                                   "request: payment_intent or charge.",
                              code="parameter_missing")
        reason = as_enum(reason, "reason", ("duplicate", "fraudulent", "requested_by_customer"))
        amount_n = None if amount is None else as_int(amount, "amount", 1)
        if payment_intent is not None:
            intent: PaymentIntent = lookup(PaymentIntent, payment_intent, "payment_intent")
            if intent.status not in ("succeeded",) or intent.latest_charge is None:
                raise StripeError(400, "This PaymentIntent does not have a successful charge "
                                       "to refund.", param="payment_intent",
                                  code="payment_intent_unexpected_state")
            if charge is not None and charge != intent.latest_charge:
                raise invalid_param("charge", "The charge does not belong to this "
                                              "PaymentIntent.")
            charge = intent.latest_charge
        charge_obj: Charge = lookup(Charge, charge, "charge")
        if charge_obj.status != "succeeded" or not charge_obj.captured:
            raise StripeError(400, f"Charge {charge_obj.id} has not been captured or did not "
                                   f"succeed, so it cannot be refunded.", param="charge",
                              code="charge_not_refundable")
        if charge_obj.disputed:
            raise StripeError(400, f"Charge {charge_obj.id} has been charged back; cannot issue "
                                   f"a refund.", code="charge_disputed")
        remaining = charge_obj.amount - charge_obj.amount_refunded
        if remaining <= 0:
            raise StripeError(400, f"Charge {charge_obj.id} has already been refunded.",
                              code="charge_already_refunded", param="charge")
        if amount_n is None:
            amount_n = remaining
        elif amount_n > remaining:
            cur = charge_obj.currency
            raise StripeError(400, f"Refund amount ({format_amount(amount_n, cur)}) is greater "
                                   f"than unrefunded amount on charge "
                                   f"({format_amount(remaining, cur)})",
                              param="amount", code="amount_too_large")
        pm = store.get("payment_method:" + str(charge_obj.payment_method))
        flow = pm._card_behaviour.refund_flow if isinstance(pm, PaymentMethod) else "succeeded"
        StripeObject.__init__(self, id=new_id("re_"))
        del self.livemode  # a Refund has no livemode field
        self.amount = amount_n
        self.balance_transaction = new_id("txn_")
        self.charge = charge_obj.id
        self.currency = charge_obj.currency
        self.customer = charge_obj.customer
        self.customer_account = None
        self.destination_details = {"card": {"reference": None, "reference_status": "pending",
                                             "reference_type": "acquirer_reference_number",
                                             "type": "refund"}, "type": "card"}
        self.metadata = metadata_update({}, metadata)
        self.payment_intent = charge_obj.payment_intent
        self.payment_method = charge_obj.payment_method
        self.reason = reason
        self.receipt_number = None
        self.source_transfer_reversal = None
        self.status = "pending" if flow == "pending" else "succeeded"
        self.transfer_reversal = None
        self._flow = flow
        charge_obj._refund_ids.append(self.id)

    @classmethod
    def _api_create(cls, **data: Any) -> Refund:
        obj = cls(**data)
        emit("refund.created", obj)
        emit("charge.refunded", store["charge:" + obj.charge])
        if obj._flow != "succeeded":
            call_later(REFUND_SETTLE_S, obj._settle)
        return obj

    def _settle(self) -> None:
        """Refunds on …7726 settle later (pending → succeeded), on …5126 fail later."""
        if store.get("refund:" + self.id) is not self:
            return  # wiped meanwhile
        remember(self)
        if self._flow == "pending":
            self.status = "succeeded"
        else:
            self.status = "failed"
            self.failure_reason = "expired_or_canceled_card"
            self.failure_balance_transaction = new_id("txn_")
        emit("refund.updated", self)
        emit("charge.refund.updated", self)
        if self.status == "failed":
            emit("refund.failed", self)
        for callback in on_background_change:
            callback()

    @classmethod
    def _api_retrieve(cls, id: str) -> Refund:  # noqa: A002
        return lookup(cls, id)  # type: ignore[no-any-return]

    @classmethod
    def _api_update(cls, id: str, **data: Any) -> Refund:  # noqa: A002
        obj: Refund = lookup(cls, id)
        remember(obj)
        metadata = data.pop("metadata", None)
        reject_unknown(data)
        if metadata is not None:
            obj.metadata = metadata_update(obj.metadata, metadata)
        emit("refund.updated", obj)
        emit("charge.refund.updated", obj)
        return obj

    @classmethod
    def _api_list_all(cls, url: str, charge: Any = None, payment_intent: Any = None,
                      created: Any = None, limit: Any = None, starting_after: Any = None,
                      ending_before: Any = None, **kwargs: Any) -> List:
        reject_unknown(kwargs)
        if payment_intent is not None:
            lookup(PaymentIntent, payment_intent, "payment_intent")
        if charge is not None:
            lookup(Charge, charge, "charge")
        return list_objects(
            "refund", url,
            lambda r: (charge is None or r.charge == charge)
            and (payment_intent is None or r.payment_intent == payment_intent),
            limit, starting_after, ending_before, created)


# --------------------------------------------------------------------------- customers


def customer_create(**data: Any) -> Any:
    """localstripe's Customer, but attaching `payment_method` the Stripe way (with events)."""
    payment_method = data.pop("payment_method", None)
    pm = PaymentMethod._get(payment_method, "payment_method") if payment_method else None
    invoice_settings = data.get("invoice_settings")
    obj = Customer._api_create(**data)
    if pm is not None:
        PaymentMethod._api_attach(pm.id, customer=obj.id)
    if isinstance(invoice_settings, dict) and invoice_settings.get("default_payment_method"):
        _check_default_pm(obj.id, invoice_settings["default_payment_method"])
    return obj


def _check_default_pm(customer_id: str, pm_id: str) -> None:
    pm = PaymentMethod._get(pm_id, "invoice_settings[default_payment_method]")
    if pm.customer != customer_id:
        raise StripeError(400, f"The customer does not have a payment method with the ID "
                               f"{pm_id}. The payment method must be attached to the customer.",
                          param="invoice_settings[default_payment_method]",
                          code="resource_missing")


def customer_update(id: str, **data: Any) -> Any:  # noqa: A002
    """Validate the default payment method as Stripe does, then let localstripe update."""
    obj = lookup(Customer, id)
    remember(obj)
    settings = data.get("invoice_settings")
    if isinstance(settings, dict):
        default = settings.get("default_payment_method")
        if default:
            _check_default_pm(obj.id, default)
        # Stripe merges invoice_settings; localstripe would replace the whole dict.
        data["invoice_settings"] = {**obj.invoice_settings, **settings}
    return Customer._api_update(id, **data)


def customer_payment_methods(id: str, type: Any = None, limit: Any = None,  # noqa: A002
                             starting_after: Any = None, ending_before: Any = None,
                             **kwargs: Any) -> List:
    reject_unknown(kwargs)
    lookup(Customer, id)
    if type is not None:
        as_enum(type, "type", PM_TYPES)
    return list_objects(
        "payment_method", f"/v1/customers/{id}/payment_methods",
        lambda pm: isinstance(pm, PaymentMethod) and pm.customer == id
        and (type is None or pm.type == type),
        limit, starting_after, ending_before)


def customer_payment_method(id: str, payment_method: str, **kwargs: Any) -> PaymentMethod:  # noqa: A002
    reject_unknown(kwargs)
    lookup(Customer, id)
    pm = PaymentMethod._get(payment_method, "payment_method")
    if pm.customer != id:
        raise no_such("payment_method", payment_method, "payment_method")
    return pm


def resume_background() -> None:
    """After a reload from --data, finish what was still settling when the process stopped:
    debits in `processing` and refunds that had not reached their final status yet."""
    for obj in list(store.values()):
        if isinstance(obj, PaymentIntent) and obj.status == "processing":
            call_later(sepa.processing_delay_s(), obj._settle_debit)
        elif isinstance(obj, Refund) and (obj._flow, obj.status) in (("pending", "pending"),
                                                                      ("fails", "succeeded")):
            call_later(REFUND_SETTLE_S, obj._settle)


def install() -> None:
    """Point localstripe's own code (customers, invoices…) at these events and errors."""
    seam.install(Event, lambda event: webhooks.publish(event._export()),
                 lambda cls, id: no_such(str(cls.object), id,  # type: ignore[attr-defined]
                                         ID_PARAMS.get(str(cls.object), "id")))  # type: ignore[attr-defined]
