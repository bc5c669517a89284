"""Internal endpoints (docs/internal-api.md): service token only, of the components each view
names in `callers` (403 `service_not_allowed` otherwise)."""

from __future__ import annotations

from bobdesk_shared.auth import INGEST_WORKER, SERVICE_SECURITY, authenticate_services
from bobdesk_shared.web import Blueprint
from flask.views import MethodView

from ..schemas import (
    BATCH_EXAMPLE,
    BatchResultSchema,
    BatchSchema,
    ListingCompleteResultSchema,
    ListingCompleteSchema,
    ReconcileResultSchema,
    ReconcileSchema,
)
from . import service

blp = Blueprint("internal_invoices", __name__, url_prefix="/internal/invoices",
                description="Ingestion and reconciliation, for the ingest worker only.")


authenticate_services(blp)


@blp.route("/batch")
class Batch(MethodView):
    callers = (INGEST_WORKER,)

    @blp.doc(security=SERVICE_SECURITY)
    @blp.arguments(BatchSchema, example=BATCH_EXAMPLE)
    @blp.response(200, BatchResultSchema)
    def post(self, body):
        """Store a batch of canonical invoices of one connection (idempotent), after authorize-ingest."""
        return service().ingest(body["connection"], body["fence"], body["invoices"], body["cancellations"],
                                body["listing"])


@blp.route("/listing-complete")
class ListingComplete(MethodView):
    callers = (INGEST_WORKER,)

    @blp.doc(security=SERVICE_SECURITY)
    @blp.arguments(ListingCompleteSchema)
    @blp.response(200, ListingCompleteResultSchema)
    @blp.alt_response(409, description="lease_lost, connection_inactive, or unknown_listing (no batch of it stored)")
    def post(self, body):
        """A poll's full listing is done: cancel the connection's invoices it did not list."""
        return service().complete_listing(body["connection"], body["fence"], body["listing"])


@blp.route("/reconcile")
class Reconcile(MethodView):
    callers = (INGEST_WORKER,)

    @blp.doc(security=SERVICE_SECURITY)
    @blp.arguments(ReconcileSchema)
    @blp.response(200, ReconcileResultSchema)
    def post(self, body):
        """Re-match suppliers and automatic ticket links of a company against PLATFORM_DB."""
        return service().reconcile(body["client"])
