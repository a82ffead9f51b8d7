"""The pages customers use: one blueprint, `site`. Its modules: shop (catalog, cart,
checkout), auth (register, log in, log out), account (payments), cards, receipts."""

from payments_site.blueprints.site import account, auth, cards, receipts, shop
from payments_site.blueprints.site.blueprint import bp

__all__ = ["account", "auth", "bp", "cards", "receipts", "shop"]
