"""JSON routes for payments: process, history, one payment."""

from flask import Blueprint

bp = Blueprint("api_payments", __name__, url_prefix="/api/payments")
