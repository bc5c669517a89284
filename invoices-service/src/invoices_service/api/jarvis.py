"""Jarvis (the Bob! Desk web app): the same reads as the public API, and manual ticket links.
User token (cookie `session` or Bearer) with the `accounting` permission."""

from __future__ import annotations

from bobdesk_shared.auth import USER_SECURITY, require_user
from bobdesk_shared.web import Blueprint
from flask import g
from flask.views import MethodView

from ..schemas import InvoiceEnvelopeSchema, LinkSchema
from . import json_response, register_reads, service
from .rendering import render_single

blp = Blueprint("jarvis_invoices", __name__, url_prefix="/invoices",
                description="Invoices for jarvis users (accounting permission).")


@blp.before_request
def authenticate():
    """Authentication first, so a caller without a valid token learns nothing from a 400."""
    g.principal = require_user()


register_reads(blp, USER_SECURITY, {401: {"description": "Missing, malformed or expired user token."},
                                    403: {"description": "The user lacks the `accounting` permission."}})


@blp.route("/<invoice_id>/link")
class InvoiceLink(MethodView):
    @blp.doc(security=USER_SECURITY)
    @blp.arguments(LinkSchema)
    @blp.response(200, InvoiceEnvelopeSchema)
    def post(self, body, invoice_id):
        """Link the invoice to a ticket of the company by hand; later ingestions keep this decision."""
        return json_response(render_single(service().link(g.principal.client, invoice_id, str(body["ticket"]))))

    @blp.doc(security=USER_SECURITY)
    @blp.response(200, InvoiceEnvelopeSchema)
    def delete(self, invoice_id):
        """Unlink the invoice by hand; no automatic link is made again."""
        return json_response(render_single(service().unlink(g.principal.client, invoice_id)))
