"""Request schemas (parsing, 400 on anything invalid) and response schemas (OpenAPI only: invoices
are rendered by `api/rendering.py`, which a list page calls 200 times; a test holds both equal)."""

from __future__ import annotations

import datetime as dt

import marshmallow as ma
from bobdesk_shared.canonical import EXAMPLE as CANONICAL_EXAMPLE
from bobdesk_shared.canonical import CanonicalInvoiceSchema
from bobdesk_shared.schemas import StrictSchema
from bobdesk_shared.timeutil import OBJECT_ID_PATTERN, parse_object_id
from marshmallow import fields, validate

from .domain import ASSOCIATION_STATES

EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
MAX_MILLIS = 253402300799999  # 9999-12-31T23:59:59.999Z
MAX_BATCH = 500


class DigitsInteger(fields.Integer):
    """A query-string integer written with digits only (no sign, space or exponent)."""

    def _deserialize(self, value, attr, data, **kwargs):
        if isinstance(value, str) and not (value.isascii() and value.isdigit() and len(value) <= 18):
            raise self.make_error("invalid")
        return super()._deserialize(value, attr, data, **kwargs)


class Millis(DigitsInteger):
    """A Unix timestamp in milliseconds, loaded as an aware UTC datetime."""

    default_error_messages = {"invalid": f"Not a Unix timestamp in milliseconds (0..{MAX_MILLIS})."}

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.metadata = {"minimum": 0, "maximum": MAX_MILLIS, **self.metadata}

    def _deserialize(self, value, attr, data, **kwargs):
        millis = super()._deserialize(value, attr, data, **kwargs)
        if not 0 <= millis <= MAX_MILLIS:
            raise self.make_error("invalid")
        return EPOCH + dt.timedelta(milliseconds=millis)


class ObjectIdString(fields.String):
    default_error_messages = {"invalid_id": "Not an id (24 hexadecimal characters)."}

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.metadata = {"pattern": OBJECT_ID_PATTERN, **self.metadata}

    def _deserialize(self, value, attr, data, **kwargs):
        text = super()._deserialize(value, attr, data, **kwargs)
        oid = parse_object_id(text)
        if oid is None:
            raise self.make_error("invalid_id")
        return oid


def _exact(description: str) -> fields.String:
    return fields.String(validate=validate.Length(1, 500), metadata={"description": description})


class ListQuerySchema(StrictSchema):
    association = fields.String(
        load_default="all", validate=validate.OneOf(list(ASSOCIATION_STATES)),
        metadata={"description": "unmatched (state ticket_unmatched), linked, or all (default)."})
    issued_after = Millis(metadata={"description": "issue_date >= this (Unix ms)."})
    issued_before = Millis(metadata={"description": "issue_date < this (Unix ms)."})
    created_after = Millis(metadata={"description": "created_at >= this (Unix ms)."})
    created_before = Millis(metadata={"description": "created_at < this (Unix ms)."})
    updated_after = Millis(metadata={"description": "updated_at >= this (Unix ms)."})
    updated_before = Millis(metadata={"description": "updated_at < this (Unix ms)."})
    provider = _exact("Exact match, e.g. yooz.")
    supplier_siret = _exact("Exact match on the supplier SIRET as received.")
    number = _exact("Exact match on the invoice reference.")
    invoice_platform_id = _exact("Exact match on the provider's document id.")
    cursor = ObjectIdString(metadata={"description": "id of the last item of the previous page."})
    limit = DigitsInteger(load_default=50, validate=validate.Range(1, 200),
                           metadata={"description": "Page size, 1..200 (default 50)."})



class AmountsSchema(ma.Schema):
    ht = fields.Decimal(required=True, as_string=False,
                        metadata={"description": "Excluding tax (exact JSON number)."})
    tva = fields.Decimal(required=True, as_string=False)
    ttc = fields.Decimal(required=True, as_string=False)


class SupplierSchema(ma.Schema):
    name = fields.String(required=True)
    siret = fields.String(required=True, allow_none=True)


class InvoiceSchema(ma.Schema):
    id = fields.String(required=True, metadata={"example": "64a1f3c89ab7e72a4fb4ae01"})
    provider = fields.String(required=True, metadata={"example": "yooz"})
    invoice_platform_id = fields.String(required=True)
    number = fields.String(required=True)
    issue_date = fields.String(required=True, metadata={"example": "2024-03-12T00:00:00.000Z"})
    due_date = fields.String(required=True, allow_none=True)
    currency = fields.String(required=True, metadata={"example": "EUR"})
    amounts = fields.Nested(AmountsSchema, required=True)
    supplier = fields.Nested(SupplierSchema, required=True)
    state = fields.String(required=True, metadata={"enum": ["ticket_unmatched", "linked", "cancelled"]})
    ticket_id = fields.String(required=True, allow_none=True)
    supplier_id = fields.String(required=True, allow_none=True)
    created_at = fields.String(required=True)
    updated_at = fields.String(required=True)


class InvoicePageSchema(ma.Schema):
    cursor = fields.String(required=True, allow_none=True,
                           metadata={"description": "id of the last item; null at the end."})
    invoices = fields.List(fields.Nested(InvoiceSchema), required=True)


class InvoiceEnvelopeSchema(ma.Schema):
    invoice = fields.Nested(InvoiceSchema, required=True)


class LinkSchema(StrictSchema):
    ticket = ObjectIdString(required=True, metadata={"description": "The ticket id (same company)."})


class CancellationSchema(StrictSchema):
    invoice_platform_id = fields.String(required=True, validate=validate.Length(1, 500))
    at = fields.AwareDateTime(required=True, format="iso", default_timezone=None)


class BatchSchema(StrictSchema):
    connection = fields.String(required=True, validate=validate.Regexp(OBJECT_ID_PATTERN))
    fence = fields.Integer(required=True, allow_none=True, strict=True)
    invoices = fields.List(fields.Nested(CanonicalInvoiceSchema), required=True,
                           validate=validate.Length(max=MAX_BATCH),
                           metadata={"description": "Canonical invoices (docs/internal-api.md)."})
    cancellations = fields.List(fields.Nested(CancellationSchema), load_default=list,
                                validate=validate.Length(max=MAX_BATCH))
    listing = fields.String(load_default=None, allow_none=True, validate=validate.Length(min=1, max=100),
                            metadata={"description": "The full listing this batch belongs to, if any (its id)."})


class ListingCompleteSchema(StrictSchema):
    connection = fields.String(required=True, validate=validate.Regexp(r"^[0-9a-f]{24}$"))
    fence = fields.Integer(required=True, strict=True)
    listing = fields.String(required=True, validate=validate.Length(min=1, max=100))


class ListingCompleteResultSchema(ma.Schema):
    cancelled = fields.Integer(metadata={"description": "Invoices the listing did not list, now cancelled."})


BATCH_EXAMPLE = {"connection": "64b2e4d19ab7e72a4fb4ac20", "fence": 12, "invoices": [CANONICAL_EXAMPLE],
                 "cancellations": [{"invoice_platform_id": "YZ-2024-00870", "at": "2024-03-12T09:00:00.000Z"}]}


class BatchResultSchema(ma.Schema):
    created = fields.Integer()
    updated = fields.Integer()
    unchanged = fields.Integer()
    cancelled = fields.Integer()
    results = fields.List(fields.Dict())


class ReconcileSchema(StrictSchema):
    client = ObjectIdString(required=True)


class ReconcileResultSchema(ma.Schema):
    suppliers_rematched = fields.Integer()
    tickets_linked = fields.Integer()
