"""Documentation schemas of the webhook endpoint (the body is verified raw, then parsed by the adapter)."""

import marshmallow as ma


class YoozEventSchema(ma.Schema):
    id = ma.fields.String(required=True, metadata={"example": "evt_01HZX"})
    type = ma.fields.String(required=True, metadata={"example": "invoice.created"})
    created_at = ma.fields.String(required=True, metadata={"example": "2024-03-12T08:00:00Z"})
    data = ma.fields.Dict(required=True, metadata={"example": {"invoice_id": "YZ-2024-00871"}})


class ReceiptSchema(ma.Schema):
    status = ma.fields.String(required=True, metadata={"description": "accepted, duplicate or ignored"})
    event_id = ma.fields.String(required=True)
