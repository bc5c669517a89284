"""The public API (token: public, scope invoices:read): read-only invoices of the token's company."""

from __future__ import annotations

from bobdesk_shared.auth import PUBLIC_SECURITY, require_public
from bobdesk_shared.web import Blueprint
from flask import g

from . import register_reads
from .rate_limit import HEADERS, LIMITED_HEADERS

RATE_LIMITED = "The company's budget (PUBLIC_API_RATE_LIMIT, default 600/minute) is spent (`rate_limited`)."

blp = Blueprint("public_invoices", __name__, url_prefix="/api/v3.0/invoices",
                description="Invoices ingested from your accounting provider (read-only).")


@blp.before_request
def authenticate():
    """Authentication first, so a caller without a valid token learns nothing from a 400."""
    g.principal = require_public()


register_reads(blp, PUBLIC_SECURITY, {
    401: {"description": "Missing, malformed or expired public token."},
    403: {"description": "The token lacks the `invoices:read` scope."},
    429: {"description": RATE_LIMITED, "headers": LIMITED_HEADERS},
}, headers=HEADERS)
