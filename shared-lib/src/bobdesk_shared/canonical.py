"""The canonical invoice: the contract between the ingest worker and invoices-service.

Every provider adapter maps a provider document to this shape; the worker loads the result
with `CanonicalInvoiceSchema` before sending it, and invoices-service's batch endpoint loads
every invoice with the same schema, so both sides apply exactly one set of rules. Values stay
JSON: amounts are exact decimal strings (never binary floats), dates `YYYY-MM-DD`, times
ISO-8601 with a time zone; loading checks them and returns them unchanged.

The supplier's `siren` (9 digits) is the provider's own company number, for providers that
can give one without a SIRET; it may be missing or null. Matching uses the SIRET's first 9
digits, or this SIREN when there is no SIRET.
"""

from __future__ import annotations

import datetime as dt
import re

import marshmallow as ma
from marshmallow import validate

from .schemas import JsonBoolean, StrictSchema
from .timeutil import parse_iso

MAX_TEXT = 500
MAX_VAT_LINES = 50  # one row per VAT rate: a handful on a real invoice
MAX_LINES = 1000
MAX_INVOICE_BYTES = 1 << 20  # the JSON of one invoice; a batch (5 MiB) always holds a few

_DECIMAL = re.compile(r"-?\d{1,18}(\.\d{1,10})?")
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
_CURRENCY = re.compile(r"[A-Z]{3}")
_SIRET = re.compile(r"\d{14}")
_SIREN = re.compile(r"\d{9}")
_IBAN = re.compile(r"[A-Z]{2}\d{2}[A-Z0-9]{10,30}")

_MESSAGES = {"required": "Missing field.", "null": "Missing value."}


class _Checked(ma.fields.Field):
    """A JSON value returned unchanged when `valid` holds; `message` says the rule otherwise."""

    message = "Invalid value."

    def __init__(self, *, nullable: bool = False, required: bool = True, **kwargs):
        super().__init__(required=required, allow_none=nullable,
                         error_messages={**_MESSAGES, "invalid": self.message}, **kwargs)

    @staticmethod
    def valid(value) -> bool:
        raise NotImplementedError

    def _deserialize(self, value, attr, data, **kwargs):
        if not self.valid(value):
            raise self.make_error("invalid")
        return value


class Text(_Checked):
    message = f"Not a non-empty printable string of at most {MAX_TEXT} characters."

    @staticmethod
    def valid(value) -> bool:
        return isinstance(value, str) and 0 < len(value) <= MAX_TEXT and value.isprintable()


class DecimalString(_Checked):
    message = "Not an exact decimal string (up to 18 digits and 10 decimals)."

    @staticmethod
    def valid(value) -> bool:
        return isinstance(value, str) and _DECIMAL.fullmatch(value) is not None


class CalendarDate(_Checked):
    message = "Not a YYYY-MM-DD date."

    @staticmethod
    def valid(value) -> bool:
        if not isinstance(value, str) or not _DATE.fullmatch(value):
            return False
        try:
            dt.date.fromisoformat(value)
        except ValueError:
            return False
        return True


class Timestamp(_Checked):
    message = "Not an ISO-8601 time with a time zone."

    @staticmethod
    def valid(value) -> bool:
        try:
            parse_iso(value)
        except (ValueError, TypeError, OverflowError):
            return False
        return True


def _pattern(regex: re.Pattern, rule: str) -> type[_Checked]:
    class Pattern(_Checked):
        message = rule

        @staticmethod
        def valid(value) -> bool:
            return isinstance(value, str) and regex.fullmatch(value) is not None

    return Pattern


Currency = _pattern(_CURRENCY, "Not a 3-letter upper-case ISO 4217 code.")
Siret = _pattern(_SIRET, "Not a SIRET (14 digits).")
Siren = _pattern(_SIREN, "Not a SIREN (9 digits).")
Iban = _pattern(_IBAN, "Not an IBAN (upper case, no spaces).")


class ProviderObject(_Checked):
    message = "Not an object."

    @staticmethod
    def valid(value) -> bool:
        return isinstance(value, dict)


class Rows(ma.fields.List):
    """A nullable list of at most `limit` rows of `schema`."""

    def __init__(self, schema: type[ma.Schema], limit: int):
        super().__init__(ma.fields.Nested(schema), required=True, allow_none=True, error_messages=_MESSAGES,
                         validate=validate.Length(max=limit, error=f"More than {limit} rows."))
        self.limit = limit


class _ContractSchema(StrictSchema):
    """Loads a valid invoice in one plain pass over the declared fields (a batch holds 500 of them,
    and marshmallow's machinery costs several times the checks); anything invalid goes through
    marshmallow itself, which names every wrong field. Both apply the same field rules."""

    def load(self, data, *, many=None, partial=None, unknown=None):
        if not (many or self.many) and partial is None and _conforms(self, data):
            return data
        return super().load(data, many=many, partial=partial, unknown=unknown)


_ABSENT = object()


def _conforms(schema: ma.Schema, data: object) -> bool:
    """Whether `data` passes every rule of `schema`'s fields (checked by a closure built once per schema)."""
    check = schema.__dict__.get("_conformance")
    if check is None:
        check = schema._conformance = _conformance(schema)
    return check(data)


def _conformance(schema: ma.Schema):
    names = frozenset(schema.fields)
    rules = tuple((name, field.required, field.allow_none, _value_rule(field)) for name, field in schema.fields.items())

    def conforms(data: object) -> bool:
        if not isinstance(data, dict) or not data.keys() <= names:
            return False
        for name, required, nullable, rule in rules:
            value = data.get(name, _ABSENT)
            if value is _ABSENT:
                if required:
                    return False
            elif value is None:
                if not nullable:
                    return False
            elif not rule(value):
                return False
        return True

    return conforms


def _value_rule(field: ma.fields.Field):
    """The check of a present, non-null value of `field`."""
    if isinstance(field, _Checked):
        return field.valid
    if isinstance(field, ma.fields.Nested):
        nested = field.schema
        return lambda value: _conforms(nested, value)
    if isinstance(field, Rows):
        row_schema, limit = field.inner.schema, field.limit
        return lambda value: isinstance(value, list) and len(value) <= limit and all(
            _conforms(row_schema, row) for row in value)
    if isinstance(field, JsonBoolean):
        return lambda value: isinstance(value, bool)
    return lambda value: False  # a field kind this pass does not know: marshmallow decides


class CanonicalAmountsSchema(_ContractSchema):
    ht = DecimalString(metadata={"description": "Excluding tax."})
    tva = DecimalString(metadata={"description": "Tax."})
    ttc = DecimalString(metadata={"description": "Including tax."})


class CanonicalVatLineSchema(_ContractSchema):
    rate = DecimalString()
    base = DecimalString()
    amount = DecimalString()


class CanonicalLineSchema(_ContractSchema):
    label = Text()
    quantity = DecimalString()
    unit_price = DecimalString()
    total_excl_tax = DecimalString()


class CanonicalSupplierSchema(_ContractSchema):
    platform_id = Text(nullable=True, metadata={"description": "The provider's supplier id."})
    name = Text()
    siret = Siret(nullable=True)
    siren = Siren(nullable=True, required=False, metadata={
        "description": "The provider's SIREN, for a supplier it knows without a SIRET; may be missing."})
    iban = Iban(nullable=True)


class CanonicalInvoiceSchema(_ContractSchema):
    """One invoice as every adapter produces it; `cancelled` when the provider rejected or deleted it."""

    invoice_platform_id = Text(metadata={"description": "The provider's document id."})
    number = Text()
    issue_date = CalendarDate()
    due_date = CalendarDate(nullable=True)
    currency = Currency()
    amounts = ma.fields.Nested(CanonicalAmountsSchema, required=True, error_messages=_MESSAGES)
    vat_lines = Rows(CanonicalVatLineSchema, MAX_VAT_LINES)
    lines = Rows(CanonicalLineSchema, MAX_LINES)
    supplier = ma.fields.Nested(CanonicalSupplierSchema, required=True, error_messages=_MESSAGES)
    order_reference = Text(nullable=True)
    provider_status = Text()
    cancelled = JsonBoolean(required=True, error_messages=_MESSAGES)
    provider_created_at = Timestamp()
    provider_updated_at = Timestamp()
    raw = ProviderObject(metadata={"description": "The provider's payload, as received."})


EXAMPLE = {
    "invoice_platform_id": "YZ-2024-00871",
    "number": "FA-2024-00871",
    "issue_date": "2024-03-12",
    "due_date": "2024-04-12",
    "currency": "EUR",
    "amounts": {"ht": "1000.00", "tva": "200.00", "ttc": "1200.00"},
    "vat_lines": [{"rate": "20.0", "base": "1000.00", "amount": "200.00"}],
    "lines": [{"label": "Repair", "quantity": "1", "unit_price": "1000.00", "total_excl_tax": "1000.00"}],
    "supplier": {"platform_id": "SUP-77", "name": "ACME", "siret": "12345678900011",
                 "iban": "FR7630006000011234567890189"},
    "order_reference": "T-2024-0042",
    "provider_status": "validated",
    "cancelled": False,
    "provider_created_at": "2024-03-12T08:00:00.000Z",
    "provider_updated_at": "2024-03-12T08:00:00.000Z",
    "raw": {"id": "YZ-2024-00871", "status": "validated"},
}
"""A valid canonical invoice: the OpenAPI example, and the one fixture every test suite copies."""
