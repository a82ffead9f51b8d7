"""Receipts: the customer's list and the PDF download."""

from __future__ import annotations

from flask import Response, render_template
from flask_login import current_user, login_required

from payments_site.blueprints import parsing
from payments_site.blueprints.site.blueprint import bp
from payments_site.services import receipts


@bp.get("/account/receipts", endpoint="receipts")
@login_required
def receipts_page() -> str:
    """The signed-in user's receipts and refund notes, newest first (?page=N)."""
    page = parsing.query(parsing.ReceiptsQuery).page
    listing = receipts.receipts_for_user(current_user, page=page)
    return render_template("account/receipts.html", listing=listing)


@bp.get("/receipts/<number>.pdf")
@login_required
def download_receipt(number: str) -> Response:
    """The stored PDF, byte for byte, to its owner or an admin; 404 for anyone else."""
    receipt = receipts.receipt_for_download(number, current_user)
    response = Response(receipt.pdf, mimetype="application/pdf")
    response.headers["Content-Disposition"] = f'attachment; filename="{receipt.filename}"'
    response.headers["Cache-Control"] = "no-store"
    response.headers["ETag"] = f'"{receipt.sha256}"'
    return response
