"""Admin page of the webhook inbox: recent events, errors, replay."""

from flask import Blueprint

bp = Blueprint("admin_webhooks", __name__, url_prefix="/admin/webhooks")
