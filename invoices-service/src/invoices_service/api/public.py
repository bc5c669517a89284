"""The public API of seed-invoices-public-api.txt (token: public, scope invoices:read)."""

from __future__ import annotations

from bobdesk_shared.auth import BEARER_SECURITY, require_public
from bobdesk_shared.web import Blueprint, ErrorSchema
from flask import g
from flask.views import MethodView

from ..domain import render_page, render_single
from ..schemas import InvoiceEnvelopeSchema, InvoicePageSchema, ListQuerySchema
from . import filters_from, json_response, service
from .rate_limit import HEADERS, LIMITED_HEADERS

RATE_LIMITED = "The company's budget (PUBLIC_API_RATE_LIMIT, default 600/minute) is spent (`rate_limited`)."

blp = Blueprint("public_invoices", __name__, url_prefix="/api/v3.0/invoices",
                description="Invoices ingested from your accounting provider (read-only).")


@blp.before_request
def authenticate():
    """Authentication first, so a caller without a valid token learns nothing from a 400."""
    g.principal = require_public()



@blp.route("")
class PublicInvoices(MethodView):
    @blp.doc(security=BEARER_SECURITY)
    @blp.arguments(ListQuerySchema, location="query", as_kwargs=False)
    @blp.response(200, InvoicePageSchema, headers=HEADERS)
    @blp.alt_response(429, schema=ErrorSchema, description=RATE_LIMITED, headers=LIMITED_HEADERS)
    def get(self, args):
        """List invoices, ascending ids; pass the returned cursor to get the next page."""
        return json_response(render_page(service().list_invoices(g.principal.client, filters_from(args))))


@blp.route("/<invoice_id>")
class PublicInvoice(MethodView):
    @blp.doc(security=BEARER_SECURITY)
    @blp.response(200, InvoiceEnvelopeSchema, headers=HEADERS)
    @blp.alt_response(429, schema=ErrorSchema, description=RATE_LIMITED, headers=LIMITED_HEADERS)
    def get(self, invoice_id):
        """Retrieve an invoice (404 when missing or another company's)."""
        return json_response(render_single(service().get_invoice(g.principal.client, invoice_id)))
