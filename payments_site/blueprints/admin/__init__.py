"""The admin pages (/admin): one blueprint, `admin`, open to admins only (one check, before
every request). Its modules: overview (the admin home), payments (search, detail, refund
form), emails, webhooks."""

from payments_site.blueprints.admin import emails, overview, payments, webhooks
from payments_site.blueprints.admin.blueprint import bp

__all__ = ["bp", "emails", "overview", "payments", "webhooks"]
