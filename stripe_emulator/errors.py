# SPDX-License-Identifier: GPL-3.0-or-later
# Copyright (C) 2026 the payments_site authors; extends localstripe (C) 2017 Adrien Vergé.
#
# This program is free software: you can redistribute it and/or modify it under the terms of
# the GNU General Public License as published by the Free Software Foundation, either version 3
# of the License, or (at your option) any later version. This program is distributed in the hope
# that it will be useful, but WITHOUT ANY WARRANTY; without even the implied warranty of
# MERCHANTABILITY or FITNESS FOR A PARTICULAR PURPOSE. See the LICENSE file in this folder.
"""Stripe-shaped API errors (the JSON body the official SDKs parse into typed exceptions)."""

from __future__ import annotations

from typing import Any

from .localstripe_seam import UserError

DOCS = "https://docs.stripe.com/error-codes"


class StripeError(UserError):
    """An error rendered exactly as Stripe's `{"error": {...}}` body.

    Subclasses localstripe's UserError so its own code paths and ours share one middleware.
    """

    def __init__(self, status: int, message: str, *, type: str = "invalid_request_error",
                 code: str | None = None, param: str | None = None,
                 decline_code: str | None = None, **extra: Any) -> None:
        contents: dict[str, Any] = {}
        if code:
            contents["code"] = code
            contents["doc_url"] = f"{DOCS}/{code.replace('_', '-')}"
        if param:
            contents["param"] = param
        if decline_code:
            contents["decline_code"] = decline_code
        contents.update({k: v for k, v in extra.items() if v is not None})
        super().__init__(status, message, contents)
        # UserError forces invalid_request_error; Stripe also uses card_error, api_error...
        self.body["error"]["type"] = type


def unknown_param(name: str) -> StripeError:
    return StripeError(400, f"Received unknown parameter: {name}", param=name,
                       code="parameter_unknown")


def missing_param(name: str) -> StripeError:
    return StripeError(400, f"Missing required param: {name}.", param=name,
                       code="parameter_missing")


def invalid_param(name: str, message: str, code: str | None = None) -> StripeError:
    """A value Stripe refuses; most such errors carry no `code`, only the `param`."""
    return StripeError(400, message, param=name, code=code)


def no_such(object_name: str, object_id: str, param: str) -> StripeError:
    return StripeError(404, f"No such {object_name}: '{object_id}'", param=param,
                       code="resource_missing")
