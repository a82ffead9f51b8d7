# SPDX-License-Identifier: GPL-3.0-or-later
# Copyright (C) 2026 the payments_site authors; extends localstripe (C) 2017 Adrien Vergé.
#
# This program is free software: you can redistribute it and/or modify it under the terms of
# the GNU General Public License as published by the Free Software Foundation, either version 3
# of the License, or (at your option) any later version. This program is distributed in the hope
# that it will be useful, but WITHOUT ANY WARRANTY; without even the implied warranty of
# MERCHANTABILITY or FITNESS FOR A PARTICULAR PURPOSE. See the LICENSE file in this folder.
"""The emulator's Stripe.js: ``GET /js.stripe.com/v3/`` and the Payment Element frame.

``register(app)`` adds the routes below to the emulator's aiohttp application and
removes any route already registered for the same paths: localstripe adds its own
``/js.stripe.com/v3/`` to its module-level app at import time, so call ``register`` after
that (any time before the app starts; a frozen router raises RuntimeError). Calling it
twice is harmless.

Routes (all public, no API key, like js.stripe.com):

- ``/js.stripe.com/v3/``                     ``static/stripe-v3.js`` (the Stripe object)
- ``/js.stripe.com/v3/elements-inner.html``  the Payment Element's iframe document
- ``/js.stripe.com/v3/elements-inner.js``    its script (card fields; creates PaymentMethods)
- ``/js.stripe.com/v3/elements-inner.css``   its styles
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path

from aiohttp import web

STATIC_DIR = Path(__file__).resolve().parent / "static"
JS_PATH = "/js.stripe.com/v3/"

# path -> (file in static/, content type)
FILES: dict[str, tuple[str, str]] = {
    JS_PATH: ("stripe-v3.js", "application/javascript"),
    JS_PATH + "elements-inner.html": ("elements-inner.html", "text/html"),
    JS_PATH + "elements-inner.js": ("elements-inner.js", "application/javascript"),
    JS_PATH + "elements-inner.css": ("elements-inner.css", "text/css"),
}

# The frame only talks to its own origin (the emulator) and may be embedded anywhere,
# as Stripe's frames are.
FRAME_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
    "img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors *"
)


def _make_handler(
    filename: str, content_type: str
) -> Callable[[web.Request], Awaitable[web.Response]]:
    path = STATIC_DIR / filename

    async def handler(request: web.Request) -> web.Response:
        # Read on each request: the files are small, and edits show up without a restart.
        headers = {
            "Cache-Control": "no-cache",
            "X-Content-Type-Options": "nosniff",
            "Cross-Origin-Resource-Policy": "cross-origin",
        }
        if content_type == "text/html":
            headers["Content-Security-Policy"] = FRAME_CSP
            headers["Referrer-Policy"] = "no-referrer"
        else:
            headers["Access-Control-Allow-Origin"] = "*"
        return web.Response(
            body=path.read_bytes(), content_type=content_type, charset="utf-8", headers=headers
        )

    return handler


def _remove_existing(router: web.UrlDispatcher, path: str) -> None:
    """Drop every resource already registered for exactly ``path`` (localstripe's)."""
    for resource in list(router.resources()):
        if resource.canonical != path or not isinstance(resource, web.PlainResource):
            continue
        # aiohttp has no public "remove route"; these are the three places a resource
        # is recorded (aiohttp 3.9+).
        router._resources.remove(resource)
        router.unindex_resource(resource)
        if resource.name:
            router._named_resources.pop(resource.name, None)


def register(app: web.Application) -> None:
    """Serve the emulator's Stripe.js on ``app``, replacing any existing route for it."""
    router = app.router
    if router.frozen:
        raise RuntimeError("stripe_emulator.js.register() must be called before the app starts")
    for path, (filename, content_type) in FILES.items():
        _remove_existing(router, path)
        router.add_get(path, _make_handler(filename, content_type))
