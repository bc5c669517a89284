"""The public API (token: public, scope invoices:read): read-only invoices of the token's company."""

from __future__ import annotations

from bobdesk_shared.auth import PUBLIC_SECURITY, PublicClient, require_public
from bobdesk_shared.web import Blueprint
from flask import g

from . import register_reads
from .rate_limit import HEADERS, LIMITED_HEADERS

RATE_LIMITED = "The company's budget (PUBLIC_API_RATE_LIMIT, default 600/minute) is spent (`rate_limited`)."

blp = Blueprint("public_invoices", __name__, url_prefix="/api/v3.0/invoices",
                description="Invoices ingested from your accounting provider (read-only).")


def principal() -> PublicClient:
    """The caller, its token decoded once per request: the rate limiter needs its company before the
    blueprint authenticates, and the blueprint reuses it."""
    if "principal" not in g:
        g.principal = require_public()
    return g.principal


def company() -> str:
    """The rate limiter's key: the caller's company (a bad token is a 401 here)."""
    return str(principal().client)


@blp.before_request
def authenticate():
    """Authentication first, so a caller without a valid token learns nothing from a 400."""
    principal()


register_reads(blp, PUBLIC_SECURITY, {
    401: {"description": "Missing, malformed or expired public token."},
    403: {"description": "The token lacks the `invoices:read` scope."},
    429: {"description": RATE_LIMITED, "headers": LIMITED_HEADERS},
}, headers=HEADERS)
