"""HTTP views: the public API (`/api/v3.0/invoices`), jarvis (`/invoices`) and internal endpoints.

The public API and jarvis read invoices alike (same filters, same shapes): `register_reads` adds
the list and the single read to either blueprint, under that audience's authentication.
"""

from __future__ import annotations

from bobdesk_shared.web import ErrorSchema
from flask import Response, current_app, g
from flask.views import MethodView

from ..domain import ASSOCIATION_STATES, ListFilters
from ..schemas import InvoiceEnvelopeSchema, InvoicePageSchema, ListQuerySchema
from ..services import InvoiceService
from .rendering import render_page, render_single


def service() -> InvoiceService:
    return current_app.extensions["invoice_service"]


def filters_from(args: dict) -> ListFilters:
    args = dict(args)
    state = ASSOCIATION_STATES[args.pop("association")]
    return ListFilters(state=state, **args)


def json_response(text: str, status: int = 200) -> Response:
    """Invoices are rendered to JSON text (api/rendering.py: exact amounts); sent as they are."""
    return Response(text, status=status, mimetype="application/json")


def register_reads(blp, security: list, errors: dict[int, dict], headers: dict | None = None) -> None:
    """`GET ""` (a page) and `GET "/<invoice_id>"` on `blp`; `errors` documents the audience's own
    refusals (status -> `description`, `headers`), `headers` its successful answers' headers."""

    def documented(view):
        for status, doc in errors.items():
            view = blp.alt_response(status, schema=ErrorSchema, **doc)(view)
        return blp.doc(security=security)(view)

    @blp.route("")
    class Invoices(MethodView):
        @documented
        @blp.alt_response(400, schema=ErrorSchema, description="An unknown or invalid query parameter.")
        # An instance: given the class, webargs builds a schema on every request.
        @blp.arguments(ListQuerySchema(), location="query", as_kwargs=False)
        @blp.response(200, InvoicePageSchema, headers=headers)
        def get(self, args):
            """List the company's invoices, ascending ids; pass the returned cursor to get the next page."""
            docs = service().list_invoices(g.principal.client, filters_from(args))
            response = json_response(render_page(docs))
            # A page's documents (thousands of objects) are freed once the answer is sent, not before.
            response.call_on_close(docs.clear)
            return response

    @blp.route("/<invoice_id>")
    class Invoice(MethodView):
        @documented
        @blp.alt_response(404, schema=ErrorSchema, description="No such invoice in the company (or another's).")
        @blp.response(200, InvoiceEnvelopeSchema, headers=headers)
        def get(self, invoice_id):
            """Retrieve one invoice of the company."""
            return json_response(render_single(service().get_invoice(g.principal.client, invoice_id)))
