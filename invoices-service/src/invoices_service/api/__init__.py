"""HTTP views: the public API (`/api/v3.0/invoices`), jarvis (`/invoices`) and internal endpoints."""

from __future__ import annotations

from flask import Response, current_app

from ..domain import ASSOCIATION_STATES
from ..services import InvoiceService, ListFilters


def service() -> InvoiceService:
    return current_app.extensions["invoice_service"]


def filters_from(args: dict) -> ListFilters:
    args = dict(args)
    state = ASSOCIATION_STATES[args.pop("association")]
    return ListFilters(state=state, **args)


def json_response(text: str, status: int = 200) -> Response:
    """Invoices are rendered to JSON text by the domain (exact amounts); sent as they are."""
    return Response(text, status=status, mimetype="application/json")
