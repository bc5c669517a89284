"""POST /webhooks/{provider}/{connectionId}: the provider's signed event deliveries."""

from __future__ import annotations

from bobdesk_shared.web import Blueprint, ErrorSchema
from flask import current_app, jsonify, request
from flask.views import MethodView

from .schemas import ReceiptSchema, delivery_doc

blp = Blueprint("webhooks", __name__, url_prefix="/webhooks",
                description="Signed event deliveries from the providers that send webhooks.")


UNVERIFIABLE = ("The delivery cannot be verified: missing, invalid or stale signature, or a connection that "
                "takes no webhooks (unknown, inactive, deleted, no secret): one answer for all of them.")


@blp.route("/<provider>/<connection_id>")
class Deliveries(MethodView):
    @blp.doc(**delivery_doc())
    @blp.response(202, ReceiptSchema, description="Verified and recorded; processed asynchronously.")
    @blp.alt_response(200, schema=ReceiptSchema, description="A replayed event id, or a type we ignore.")
    @blp.alt_response(400, schema=ErrorSchema, description="The body is not a valid event.")
    @blp.alt_response(401, schema=ErrorSchema, description=UNVERIFIABLE)
    @blp.alt_response(404, schema=ErrorSchema, description="No provider sends webhooks under this name.")
    def post(self, provider, connection_id):
        """Deliver one signed event; a deletion is believed only once the provider confirms it."""
        receipt = current_app.extensions["webhook_receiver"].receive(
            provider, connection_id, request.headers, request.get_data(cache=False))
        return jsonify(receipt.body), receipt.status
