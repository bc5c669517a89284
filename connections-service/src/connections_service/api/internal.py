"""`/internal/connections` (docs/internal-api.md): leases for the ingest workers, ingestion
authorisation for invoices-service, webhook credentials. Service token only, and each route
serves only the components its view names in `callers` (403 `service_not_allowed` otherwise):
the routes that hand out API keys and webhook secrets serve the ingest worker alone."""

from __future__ import annotations

from bobdesk_shared.auth import INGEST_WORKER, INVOICES_SERVICE, SERVICE_SECURITY, authenticate_services
from bobdesk_shared.web import Blueprint
from flask.views import MethodView

from .. import schemas
from . import error, worker_service
from .rendering import claim_view

blp = Blueprint("internal_connections", __name__, url_prefix="/internal/connections",
                description="For the ingest workers and invoices-service only (service token).")

REFUSED = "The lease is not held (`lease_lost`) or the connection was deactivated or deleted (`connection_inactive`)."


authenticate_services(blp)

FORBIDDEN = "A valid service token of a component this route does not serve (`service_not_allowed`)."


def _documented(view):
    view = error(blp, 401, "Missing or invalid service token.")(view)
    view = error(blp, 403, FORBIDDEN)(view)
    return error(blp, 404, "Unknown connection.")(view)


@blp.route("/claim")
class Claim(MethodView):
    callers = (INGEST_WORKER,)

    @error(blp, 401, "Missing or invalid service token.")
    @error(blp, 403, FORBIDDEN)
    @blp.doc(security=SERVICE_SECURITY)
    @blp.arguments(schemas.ClaimSchema)
    @blp.response(200, schemas.ClaimResponseSchema)
    @blp.alt_response(204, description="Nothing is due.")
    def post(self, body):
        """Lease the most overdue due connection, with its decrypted API key, checkpoint and fence."""
        claimed = worker_service().claim(body["worker"], body["lease_seconds"])
        return ("", 204) if claimed is None else {"connection": claim_view(claimed)}


@blp.route("/<connection_id>/heartbeat")
class Heartbeat(MethodView):
    callers = (INGEST_WORKER,)

    @_documented
    @error(blp, 409, REFUSED)
    @blp.doc(security=SERVICE_SECURITY)
    @blp.arguments(schemas.HeartbeatSchema)
    @blp.response(200, schemas.HeartbeatResponseSchema)
    def post(self, body, connection_id):
        """Renew the lease (before every provider call), storing the checkpoint of a stored batch."""
        return worker_service().heartbeat(connection_id, body["fence"], body["lease_seconds"], body.get("checkpoint"))


@blp.route("/<connection_id>/poll-result")
class PollResult(MethodView):
    callers = (INGEST_WORKER,)

    @_documented
    @error(blp, 409, REFUSED)
    @blp.doc(security=SERVICE_SECURITY)
    @blp.arguments(schemas.PollResultSchema)
    @blp.response(200, schemas.PollResultResponseSchema)
    def post(self, body, connection_id):
        """Report a poll's success or failure; schedules the next poll and releases the lease."""
        return worker_service().report(connection_id, body["fence"], body)


@blp.route("/<connection_id>/release")
class Release(MethodView):
    callers = (INGEST_WORKER,)

    @_documented
    @error(blp, 409, REFUSED)
    @blp.doc(security=SERVICE_SECURITY)
    @blp.arguments(schemas.ReleaseSchema)
    @blp.response(204)
    def post(self, body, connection_id):
        """Give the lease back without a result (the connection stays due)."""
        worker_service().release(connection_id, body["fence"])


@blp.route("/<connection_id>/authorize-ingest")
class AuthorizeIngest(MethodView):
    callers = (INVOICES_SERVICE,)

    @_documented
    @error(blp, 409, REFUSED)
    @blp.doc(security=SERVICE_SECURITY)
    @blp.arguments(schemas.AuthorizeIngestSchema)
    @blp.response(200, schemas.AuthorizedSchema)
    def post(self, body, connection_id):
        """May a batch for this connection be stored now? Answers its authoritative company and provider."""
        return worker_service().authorize_ingest(connection_id, body["fence"])


@blp.route("/<connection_id>/webhook-credentials")
class WebhookCredentials(MethodView):
    callers = (INGEST_WORKER,)

    @_documented
    @error(blp, 409, "Inactive (`connection_inactive`) or no webhook secret stored (`no_webhook_secret`).")
    @blp.doc(security=SERVICE_SECURITY)
    @blp.response(200, schemas.WebhookCredentialsSchema)
    def get(self, connection_id):
        """The webhook secret (and API key) of an active connection, for the webhook receiver."""
        return worker_service().webhook_credentials(connection_id)


@blp.route("/<connection_id>/webhook-result")
class WebhookResult(MethodView):
    callers = (INGEST_WORKER,)

    @_documented
    @blp.doc(security=SERVICE_SECURITY)
    @blp.arguments(schemas.WebhookResultSchema)
    @blp.response(204)
    def post(self, body, connection_id):
        """Count a webhook delivery's invoices into the sync status."""
        worker_service().webhook_result(connection_id, body)
