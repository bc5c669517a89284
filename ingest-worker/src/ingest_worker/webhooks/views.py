"""POST /webhooks/{provider}/{connectionId}: the provider's signed event deliveries."""

from __future__ import annotations

from bobdesk_shared.web import Blueprint
from flask import current_app, jsonify, request
from flask.views import MethodView

from .schemas import ReceiptSchema, YoozEventSchema

blp = Blueprint("webhooks", __name__, url_prefix="/webhooks",
                description="Signed event deliveries from providers (CONTRACTS section 5).")

SIGNATURE_DOC = {
    "parameters": [{"in": "header", "name": "Yooz-Signature", "required": True, "schema": {"type": "string"},
                    "description": "t=<unix seconds>,v1=<hex HMAC-SHA256 of '<t>.' + raw body>[,v1=...]"}],
    "requestBody": {"required": True, "content": {"application/json": {"schema": YoozEventSchema}}},
}


@blp.route("/<provider>/<connection_id>")
class Deliveries(MethodView):
    @blp.doc(**SIGNATURE_DOC)
    @blp.response(202, ReceiptSchema, description="Verified and recorded; processed asynchronously.")
    @blp.alt_response(200, schema=ReceiptSchema, description="A replayed event id, or a type we ignore.")
    @blp.alt_response(400, description="The body is not a valid event.")
    @blp.alt_response(401, description="Missing, invalid or stale signature.")
    @blp.alt_response(404, description="Unknown provider or connection (or deleted).")
    @blp.alt_response(409, description="The connection is inactive or has no webhook secret.")
    def post(self, provider, connection_id):
        receipt = current_app.extensions["webhook_receiver"].receive(
            provider, connection_id, request.headers, request.get_data(cache=False))
        return jsonify(receipt.body), receipt.status
