"""Blueprints: parse input, check access, call one service, render or serialize."""

from payments_site.blueprints import (
    account,
    admin,
    admin_webhooks,
    api_auth,
    api_catalog,
    api_docs,
    api_methods,
    api_payments,
    api_receipts,
    api_refunds,
    auth,
    cards,
    health,
    receipts,
    shop,
    webhooks,
)

BLUEPRINTS = [
    health.bp, auth.bp, shop.bp, account.bp, cards.bp, receipts.bp, admin.bp,
    admin_webhooks.bp, api_auth.bp, api_docs.bp, api_catalog.bp, api_payments.bp, api_methods.bp,
    api_refunds.bp, api_receipts.bp, webhooks.bp,
]
