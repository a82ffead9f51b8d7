"""JSON route for refunds (admin only)."""

from flask import Blueprint

bp = Blueprint("api_refunds", __name__, url_prefix="/api/payments")
