# SPDX-License-Identifier: GPL-3.0-or-later
# Copyright (C) 2026 the payments_site authors; extends localstripe (C) 2017 Adrien Vergé.
#
# This program is free software: you can redistribute it and/or modify it under the terms of
# the GNU General Public License as published by the Free Software Foundation, either version 3
# of the License, or (at your option) any later version. This program is distributed in the hope
# that it will be useful, but WITHOUT ANY WARRANTY; without even the implied warranty of
# MERCHANTABILITY or FITNESS FOR A PARTICULAR PURPOSE. See the LICENSE file in this folder.
"""Every touch of localstripe's internals, in one place, for the one version it was written for.

The rest of the emulator imports localstripe only through this module. Each seam below relies
on a detail of localstripe 1.15.10 that is not a public API (module globals replaced at run
time, private route tables, `Store` methods, how `_export` walks an object); another version
may move any of them, so `check_version()` refuses to start on one. To upgrade: read
localstripe's diff for each name used here, adjust, change `PINNED_VERSION`, and run
tests/emulator.
"""

from __future__ import annotations

import importlib.metadata
from collections.abc import Callable
from typing import Any

from aiohttp import web
from localstripe import resources as _ls
from localstripe import server as _ls_server
from localstripe.errors import UserError as UserError

PINNED_VERSION = "1.15.10"

# The classes the emulator extends or reads (localstripe's public names).
StripeObject = _ls.StripeObject
List = _ls.List
Customer = _ls.Customer
BaseEvent = _ls.Event
BasePaymentIntent = _ls.PaymentIntent
BaseSetupIntent = _ls.SetupIntent
BasePaymentMethod = _ls.PaymentMethod
BaseCharge = _ls.Charge
BaseRefund = _ls.Refund
store = _ls.store
unflatten_data: Callable[[Any], dict[str, Any]] = _ls_server.unflatten_data


class WrongLocalstripe(RuntimeError):
    """The installed localstripe is not the version these seams were written for."""


def check_version() -> None:
    """Fail loudly (at start-up, before serving) on any other localstripe version."""
    installed = importlib.metadata.version("localstripe")
    if installed != PINNED_VERSION:
        raise WrongLocalstripe(
            f"stripe_emulator needs localstripe {PINNED_VERSION} (it patches that version's "
            f"internals, see stripe_emulator/localstripe_seam.py); {installed} is installed. "
            f"Install localstripe=={PINNED_VERSION} or port the seams.")


# Fields of localstripe's Customer that Stripe no longer returns (account_balance and
# business_vat_id were renamed long ago; sources, subscriptions and tax_ids come only with
# `expand[]`), and the current ones it lacks, with Stripe's values for a new customer.
_CUSTOMER_DROPPED = ("account_balance", "business_vat_id", "sources", "subscriptions",
                     "tax_ids")
_CUSTOMER_DEFAULTS: dict[str, Any] = {
    "balance": 0, "currency": None, "invoice_prefix": None, "next_invoice_sequence": 1,
    "tax_exempt": "none", "test_clock": None}
_INVOICE_SETTINGS = {"custom_fields": None, "default_payment_method": None, "footer": None,
                     "rendering_options": None}


def _customer_export(self: Any, expand: Any = None) -> dict[str, Any]:
    obj: dict[str, Any] = _original_customer_export(self, expand=expand)
    for name in _CUSTOMER_DROPPED:
        obj.pop(name, None)
    obj.update(_CUSTOMER_DEFAULTS)
    obj["balance"] = -int(getattr(self, "account_balance", 0) or 0)
    obj["invoice_prefix"] = self.id[-8:].upper()
    obj["invoice_settings"] = {**_INVOICE_SETTINGS, **(obj.get("invoice_settings") or {})}
    return obj


_original_customer_export = _ls.Customer._export


def install(event_cls: type, publish: Callable[[Any], None],
            not_found: Callable[[type, str], Exception]) -> None:
    """Point localstripe's own code (customers, invoices…) at the emulator's events and
    errors, and give its customers the pinned API version's shape."""
    _ls.Event = event_cls  # type: ignore[misc]  # localstripe builds events by this global
    _ls.schedule_webhook = lambda event: publish(event)  # type: ignore[assignment]

    def _api_retrieve(cls: type, id: str) -> Any:  # noqa: A002 (localstripe's name)
        obj = store.get(f"{cls.object}:{id}")  # type: ignore[attr-defined]
        if obj is None:
            raise not_found(cls, id)
        return obj

    # Stripe's 404 body (resource_missing) instead of localstripe's bare "Not Found".
    _ls.StripeObject._api_retrieve = classmethod(_api_retrieve)  # type: ignore[assignment]
    _ls.Customer._export = _customer_export  # type: ignore[method-assign]


def quiet_store(save: Callable[[], None], load: Callable[[], None]) -> None:
    """localstripe pickles the whole store to /tmp on every change; keep it in memory and let
    the emulator's persistence decide when and where to save."""
    _ls.Store.__setitem__ = dict.__setitem__  # type: ignore[assignment,method-assign]
    _ls.Store.__delitem__ = dict.__delitem__  # type: ignore[assignment,method-assign]
    _ls.Store.dump_to_disk = lambda self: save()  # type: ignore[method-assign]
    _ls.Store.try_load_from_disk = lambda self: load()  # type: ignore[method-assign]


def add_localstripe_routes(router: web.UrlDispatcher, skip_prefixes: tuple[str, ...],
                           skip: set[tuple[str, str]]) -> None:
    """localstripe's own routes (products, plans, subscriptions, invoices, customer
    sources…), except those the emulator serves itself."""
    for method, url, func in _ls.extra_apis:
        if not url.startswith(skip_prefixes) and (method, url) not in skip:
            router.add_route(method, url, _ls_server.api_extra(func, url))
    for cls in (_ls.BalanceTransaction, _ls.Coupon, _ls.Customer, _ls.Invoice,
                _ls.InvoiceItem, _ls.Payout, _ls.Plan, _ls.Product, _ls.Source,
                _ls.Subscription, _ls.SubscriptionItem, _ls.TaxRate, _ls.Token):
        base = "/v1/" + cls.object + "s"
        routes = [("GET", base + "/{id}", _ls_server.api_retrieve),
                  ("DELETE", base + "/{id}", _ls_server.api_delete),
                  ("GET", base, _ls_server.api_list_all)]
        for method, url, factory in routes + [("POST", base, _ls_server.api_create),
                                              ("POST", base + "/{id}",
                                               _ls_server.api_update)]:
            if (method, url) not in skip:
                router.add_route(method, url, factory(cls, url))


__all__ = ["PINNED_VERSION", "BaseCharge", "BaseEvent", "BasePaymentIntent",
           "BasePaymentMethod", "BaseRefund", "BaseSetupIntent", "Customer", "List",
           "StripeObject", "UserError", "WrongLocalstripe", "add_localstripe_routes",
           "check_version", "install", "quiet_store", "store", "unflatten_data"]
