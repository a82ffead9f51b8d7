"""JSON route to re-send a payment's receipt email."""

from flask import Blueprint

bp = Blueprint("api_receipts", __name__, url_prefix="/api/payments")
