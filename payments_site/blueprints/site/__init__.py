"""The pages customers use: one blueprint, `site`. Its modules: shop (catalog, cart,
checkout), auth (register, log in, log out, forgotten passwords, emailed links), account
(payments), settings (name, password, email, sign out everywhere), cards, receipts.

Sign-in is part of it (microblog gives auth a package of its own): it is three small pages
sharing the site's layout and the session cart, and one blueprint keeps every customer page
named `site.*`.
"""

from payments_site.blueprints.site import account, auth, cards, receipts, settings, shop
from payments_site.blueprints.site.blueprint import bp

__all__ = ["account", "auth", "bp", "cards", "receipts", "settings", "shop"]
