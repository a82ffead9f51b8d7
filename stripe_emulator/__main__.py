# SPDX-License-Identifier: GPL-3.0-or-later
# Copyright (C) 2026 the payments_site authors; extends localstripe (C) 2017 Adrien Vergé.
#
# This program is free software: you can redistribute it and/or modify it under the terms of
# the GNU General Public License as published by the Free Software Foundation, either version 3
# of the License, or (at your option) any later version. This program is distributed in the hope
# that it will be useful, but WITHOUT ANY WARRANTY; without even the implied warranty of
# MERCHANTABILITY or FITNESS FOR A PARTICULAR PURPOSE. See the LICENSE file in this folder.
"""Command line: `python -m stripe_emulator --host 127.0.0.1 --port 8420 [--data DIR]
[--processing-delay SECONDS] [--contract DIR] [--allow-origin ORIGIN ...]`."""

from __future__ import annotations

import argparse
import logging

from aiohttp import web

from . import contract, persistence, sepa
from .server import create_app


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m stripe_emulator",
                                     description="Stripe API emulator (test mode only).")
    parser.add_argument("--host", default="127.0.0.1",
                        help="interface to bind (only this one; default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8420)
    parser.add_argument("--data", default=None,
                        help="keep state in this directory (default: memory only)")
    parser.add_argument("--access-log", action="store_true", help="log every request")
    parser.add_argument("--processing-delay", type=float, default=None, metavar="SECONDS",
                        help="how long a SEPA Direct Debit PaymentIntent stays processing "
                             f"(default: ${sepa.DELAY_ENV} or {sepa.DEFAULT_DELAY_S:g})")
    parser.add_argument("--contract", default=None, metavar="DIR",
                        help="check every /v1 request, response and event against the JSON "
                             "Schemas in DIR (tests/contract/schemas); read the violations at "
                             "GET /_config/contract")
    parser.add_argument("--allow-origin", action="append", default=[], metavar="ORIGIN",
                        help="a web origin whose pages may call /v1 (Stripe.js on the shop's "
                             "pages), e.g. http://127.0.0.1:5000, or http://127.0.0.1:* for "
                             "any port; repeatable. Default: none. /_config/* never answers "
                             "another origin")
    args = parser.parse_args(argv)
    if args.processing_delay is not None and args.processing_delay < 0:
        parser.error("--processing-delay must be >= 0")
    sepa.set_processing_delay(args.processing_delay)

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    contract.configure(args.contract)
    persistence.configure(args.data)
    persistence.load()
    app = create_app(allow_origins=args.allow_origin)
    web.run_app(app, host=args.host, port=args.port, print=None,
                access_log=logging.getLogger("aiohttp.access") if args.access_log else None)


if __name__ == "__main__":
    main()
