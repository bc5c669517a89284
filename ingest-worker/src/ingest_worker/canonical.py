"""What adapters map provider documents with, and the gate every mapped invoice passes.

Provider data is untrusted. An adapter only maps: the helpers below normalise the usual
spellings (spaces in a SIRET, `+12.50`, a JSON number parsed as `Decimal`, a time in any
offset) and leave anything else as it is, then `validate` loads the result with the shared
contract (`bobdesk_shared.canonical`), the very schema invoices-service loads it with. A bad
document is rejected here (skipped, counted, reported), so a 400 from invoices-service stays
a bug signal. Amounts are decimal strings end to end: never binary floats.
"""

from __future__ import annotations

import json
from decimal import Decimal, InvalidOperation

import marshmallow as ma
from bobdesk_shared.canonical import MAX_INVOICE_BYTES, CanonicalInvoiceSchema
from bobdesk_shared.timeutil import iso_ms, parse_iso

_SCHEMA = CanonicalInvoiceSchema()


class InvalidInvoice(ValueError):
    """A provider document that cannot become a canonical invoice; the message says why."""

    def __init__(self, reason: str, invoice_id: str | None = None):
        super().__init__(reason)
        self.reason = reason
        self.invoice_id = invoice_id


def decimal_string(value: object) -> object:
    """The plain decimal string of an exact number (a JSON string, an int, a parsed `Decimal`);
    anything else (a float, a boolean, text that is no number) is left for the gate to refuse."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        return str(value)
    if isinstance(value, Decimal):
        return format(value, "f") if value.is_finite() else value
    if not isinstance(value, str):
        return value
    text = value.strip().removeprefix("+")
    try:
        number = Decimal(text)
    except InvalidOperation:
        return value
    # Other exact spellings (".5", "1E+3") in plain notation; trailing zeros are kept as sent.
    return format(number, "f") if number.is_finite() else value


def text(value: object) -> object:
    """Stripped text; blank is None (missing)."""
    if isinstance(value, str):
        value = value.strip()
        return value or None
    return value


def timestamp(value: object) -> object:
    """ISO-8601 UTC with milliseconds (sub-millisecond digits dropped), when it is a time."""
    try:
        return iso_ms(parse_iso(value))
    except (ValueError, TypeError, OverflowError):
        return value


def currency(value: object) -> object:
    return value.strip().upper() if isinstance(value, str) else value


def siret(value: object) -> object:
    """Digits only (invoices print a SIRET with spaces); blank is None."""
    return (value.replace(" ", "") or None) if isinstance(value, str) else value


def iban(value: object) -> object:
    return (value.replace(" ", "").upper() or None) if isinstance(value, str) else value


def plain_json(value: object) -> object:
    """`value` with the `Decimal`s of a parsed provider payload turned back into JSON numbers."""
    if isinstance(value, Decimal):
        if not value.is_finite():
            return str(value)  # NaN or Infinity in a provider payload: kept, as text
        return int(value) if value.as_tuple().exponent >= 0 else float(value)
    if isinstance(value, dict):
        return {str(k): plain_json(v) for k, v in value.items()}
    if isinstance(value, list):
        return [plain_json(v) for v in value]
    return value


def validate(invoice: dict) -> dict:
    """`invoice` when it is a canonical invoice; `InvalidInvoice` naming what is wrong otherwise."""
    identifier = invoice.get("invoice_platform_id") if isinstance(invoice, dict) else None
    identifier = identifier if isinstance(identifier, str) else None
    try:
        _SCHEMA.load(invoice)
    except ma.ValidationError as exc:
        raise InvalidInvoice(describe(exc.messages), identifier) from None
    try:
        size = len(json.dumps(invoice, separators=(",", ":"), allow_nan=False))
    except (TypeError, ValueError):
        raise InvalidInvoice("the invoice is not plain JSON", identifier) from None
    if size > MAX_INVOICE_BYTES:
        raise InvalidInvoice(f"the invoice is larger than {MAX_INVOICE_BYTES} bytes", identifier)
    return invoice


def describe(messages: object, path: str = "") -> str:
    """marshmallow's nested messages as `field.sub: message; ...`."""
    if isinstance(messages, dict):
        return "; ".join(describe(value, f"{path}.{key}" if path else str(key)) for key, value in messages.items())
    if isinstance(messages, list):
        return f"{path}: {' '.join(str(m) for m in messages)}" if path else " ".join(str(m) for m in messages)
    return f"{path}: {messages}"
