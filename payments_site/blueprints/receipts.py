"""Receipts: the customer's list and the PDF download."""

from __future__ import annotations

from flask import Blueprint, Response, render_template, request
from flask_login import current_user, login_required

from payments_site.services import receipts

bp = Blueprint("receipts", __name__)


@bp.get("/account/receipts")
@login_required
def index() -> str:
    """The signed-in user's receipts and refund notes, newest first (?page=N)."""
    page = request.args.get("page", 1, type=int) or 1
    listing = receipts.receipts_for_user(current_user, page=max(page, 1))
    return render_template("account/receipts.html", listing=listing)


@bp.get("/receipts/<number>.pdf")
@login_required
def download(number: str) -> Response:
    """The stored PDF, byte for byte, to its owner or an admin; 404 for anyone else."""
    receipt = receipts.receipt_for_download(number, current_user)
    response = Response(receipt.pdf, mimetype="application/pdf")
    response.headers["Content-Disposition"] = f'attachment; filename="{receipt.filename}"'
    response.headers["Cache-Control"] = "no-store"
    response.headers["ETag"] = f'"{receipt.sha256}"'
    return response
