"""Receipts: the customer's list and the PDF download."""

from flask import Blueprint

bp = Blueprint("receipts", __name__)
