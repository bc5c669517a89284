"""Documentation of the webhook endpoint: the body is verified raw, then parsed by its provider's adapter,
so each provider's signature header and event shape come from that adapter."""

import marshmallow as ma

from ..providers import webhook_adapter_classes


class ReceiptSchema(ma.Schema):
    status = ma.fields.String(required=True, metadata={"description": "accepted, duplicate or ignored"})
    event_id = ma.fields.String(required=True)


def delivery_doc() -> dict:
    """Each webhook provider's signature header (optional: each provider sends its own) and event schema."""
    adapters = webhook_adapter_classes().values()
    schemas = [adapter.event_schema for adapter in adapters]
    return {
        "parameters": [{"in": "header", "name": adapter.signature_header, "required": False,
                        "schema": {"type": "string"}, "description": adapter.signature_description}
                       for adapter in adapters],
        "requestBody": {"required": True, "content": {"application/json": {
            "schema": schemas[0] if len(schemas) == 1 else {"oneOf": schemas}}}},
    }
