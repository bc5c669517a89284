"""`/invoice-connections` (the connection resource of the jarvis API), plus each connection's sync status.
User token (cookie `session` or Bearer) with the `accounting` permission; scoped to its company."""

from __future__ import annotations

from bobdesk_shared.auth import USER_SECURITY, require_user
from bobdesk_shared.timeutil import utcnow
from bobdesk_shared.web import Blueprint
from flask import g
from flask.views import MethodView

from .. import schemas
from . import connection_service, error
from .rendering import connection_view, sync_view

blp = Blueprint("invoice_connections", __name__, url_prefix="/invoice-connections",
                description="A company's connections to its accounts-payable providers. Secrets are write-only.")

NOT_FOUND = "No connection of the company has this id (unknown, deleted, another company's, malformed)."
INVALID = ("Invalid body (`validation_error`), or a `webhookSecret` for a provider that sends no webhooks "
           "(`webhooks_not_supported`).")
CONFLICT = "An active connection for this provider already exists for this company (`active_connection_exists`)."


@blp.before_request
def authenticate():
    """Authentication first, so a caller without a valid token learns nothing from a 400 or a 404."""
    g.principal = require_user()


def _documented(view):
    view = error(blp, 401, "Missing, malformed or expired user token.")(view)
    return error(blp, 403, "The user lacks the `accounting` permission.")(view)


@blp.route("")
class Connections(MethodView):
    @_documented
    @blp.doc(security=USER_SECURITY)
    @blp.response(200, schemas.ConnectionSchema(many=True), example=[schemas.CONNECTION_EXAMPLE])
    def get(self):
        """List connections

        All connections of the authenticated company, active and inactive, oldest first."""
        return [connection_view(doc) for doc in connection_service().list(g.principal.client)]

    @_documented
    @error(blp, 400, INVALID)
    @error(blp, 409, CONFLICT)
    @blp.doc(security=USER_SECURITY)
    @blp.arguments(schemas.ConnectionCreateSchema, example=schemas.CREATE_EXAMPLE)
    @blp.response(201, schemas.ConnectionSchema, example=schemas.CREATED_EXAMPLE)
    def post(self, body):
        """Create connection

        `apiKey` and `webhookSecret` are stored encrypted and never echoed back; `hasCredentials`
        and `hasWebhookSecret` tell their presence. An active connection is polled at once."""
        doc = connection_service().create(g.principal.client, body["provider"], body["apiKey"],
                                   body.get("webhookSecret"), body["active"])
        return connection_view(doc)


@blp.route("/<connection_id>")
class Connection(MethodView):
    @_documented
    @error(blp, 400, INVALID)
    @error(blp, 404, NOT_FOUND)
    @error(blp, 409, CONFLICT)
    @blp.doc(security=USER_SECURITY)
    @blp.arguments(schemas.ConnectionUpdateSchema, example=schemas.UPDATE_EXAMPLE)
    @blp.response(200, schemas.ConnectionSchema, example=schemas.UPDATED_EXAMPLE)
    def patch(self, body, connection_id):
        """Update connection

        Rotate the API key, replace the webhook secret, or enable/disable the connection; at least
        one field. `provider` and `client` cannot change. Disabling stops polling and webhook
        processing at once; a new key or a re-activation is polled at once."""
        return connection_view(connection_service().update(g.principal.client, connection_id, body))

    @_documented
    @error(blp, 404, NOT_FOUND)
    @blp.doc(security=USER_SECURITY)
    @blp.response(204)
    def delete(self, connection_id):
        """Delete connection

        Soft delete: the connection leaves the list, its secrets are erased, polling and webhook
        processing stop at once, and it no longer blocks a new active connection."""
        connection_service().delete(g.principal.client, connection_id)


@blp.route("/<connection_id>/sync")
class ConnectionSync(MethodView):
    @_documented
    @error(blp, 404, NOT_FOUND)
    @blp.doc(security=USER_SECURITY)
    @blp.response(200, schemas.SyncStatusSchema)
    def get(self, connection_id):
        """Sync status

        Last success, last error and when, consecutive failures, next poll, invoices ingested."""
        return sync_view(connection_service().get(g.principal.client, connection_id), utcnow())

    @_documented
    @error(blp, 404, NOT_FOUND)
    @error(blp, 409, "The connection is inactive (`connection_inactive`).")
    @error(blp, 400, "The body is not `{\"full\": <boolean>}`.")
    @blp.doc(security=USER_SECURITY)
    @blp.arguments(schemas.SyncRequestSchema, required=False, example={})
    @blp.response(202, schemas.SyncStatusSchema)
    def post(self, body, connection_id):
        """Poll now, or resync in full

        No body (or `{}`): makes the connection due at once (after the current poll, if one is running).
        With `{"full": true}`: the next poll starts from no checkpoint, lists everything the provider
        holds and cancels the invoices it no longer has; `resync` in the sync status shows it until it
        is done (then `lastResync`), with its counts."""
        doc = connection_service().poll_now(g.principal.client, connection_id, full=body.get("full", False))
        return sync_view(doc, utcnow())
