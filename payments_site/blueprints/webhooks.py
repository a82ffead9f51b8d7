"""The Stripe webhook endpoint: verify, store, enqueue, answer 200."""

from flask import Blueprint

bp = Blueprint("webhooks", __name__, url_prefix="/api/webhooks")
