"""The canonical invoice every adapter produces (docs/internal-api.md), and its checks.

Provider data is untrusted: an adapter maps a provider document with the helpers
below, then `validate` checks the result against what invoices-service accepts,
so a bad document is rejected here (skipped, counted, reported) and a 400 from
invoices-service stays a bug signal. Amounts are decimal strings end to end:
they are never turned into binary floats.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from decimal import Decimal, InvalidOperation

from bobdesk_shared.timeutil import iso_ms, parse_iso

MAX_TEXT = 500
MAX_LINES = 1000
MAX_VAT_LINES = 50
MAX_INVOICE_BYTES = 1 << 20  # a batch (5 MiB) always fits a few
_DECIMAL = re.compile(r"-?\d{1,18}(\.\d{1,10})?")
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
_CURRENCY = re.compile(r"[A-Z]{3}")
_SIRET = re.compile(r"\d{14}")
_IBAN = re.compile(r"[A-Z]{2}\d{2}[A-Z0-9]{10,30}")

FIELDS = (
    "invoice_platform_id", "number", "issue_date", "due_date", "currency", "amounts", "vat_lines", "lines",
    "supplier", "order_reference", "provider_status", "cancelled", "provider_created_at",
    "provider_updated_at", "raw",
)


class InvalidInvoice(ValueError):
    """A provider document that cannot become a canonical invoice; the message says why."""

    def __init__(self, reason: str, invoice_id: str | None = None):
        super().__init__(reason)
        self.reason = reason
        self.invoice_id = invoice_id


def decimal_string(value: object, field: str) -> str:
    """An exact decimal string from a JSON string or number parsed as `Decimal` (never a float)."""
    if isinstance(value, (bool, float)):
        raise InvalidInvoice(f"{field} is not an exact decimal")
    if isinstance(value, int):
        value = str(value)
    elif isinstance(value, Decimal):
        value = format(value, "f")
    if not isinstance(value, str):
        raise InvalidInvoice(f"{field} must be a decimal string")
    text = value.strip()
    if text.startswith("+"):
        text = text[1:]
    if not _DECIMAL.fullmatch(text):
        # Accept other exact spellings (".5", "1E+3") by rewriting them in plain notation.
        try:
            number = Decimal(text)
        except InvalidOperation:
            raise InvalidInvoice(f"{field} is not a decimal: {value[:40]!r}") from None
        if not number.is_finite():
            raise InvalidInvoice(f"{field} is not a finite decimal")
        text = format(number, "f")
        if not _DECIMAL.fullmatch(text):
            raise InvalidInvoice(f"{field} is out of range")
    return text


def optional_decimal(value: object, field: str) -> str | None:
    return None if value is None else decimal_string(value, field)


def text(value: object, field: str, *, required: bool = True) -> str | None:
    if value is None or (isinstance(value, str) and not value.strip()):
        if required:
            raise InvalidInvoice(f"{field} is missing")
        return None
    if not isinstance(value, str):
        raise InvalidInvoice(f"{field} must be a string")
    value = value.strip()
    if len(value) > MAX_TEXT:
        raise InvalidInvoice(f"{field} is longer than {MAX_TEXT} characters")
    if not value.isprintable():
        raise InvalidInvoice(f"{field} holds control characters")
    return value


def date(value: object, field: str, *, required: bool = True) -> str | None:
    if value is None and not required:
        return None
    if not isinstance(value, str) or not _DATE.fullmatch(value):
        raise InvalidInvoice(f"{field} must be a YYYY-MM-DD date")
    try:
        dt.date.fromisoformat(value)
    except ValueError:
        raise InvalidInvoice(f"{field} is not a calendar date") from None
    return value


def timestamp(value: object, field: str) -> str:
    """ISO-8601 UTC with milliseconds (sub-millisecond digits are dropped)."""
    try:
        return iso_ms(parse_iso(value))
    except (ValueError, TypeError, OverflowError):
        raise InvalidInvoice(f"{field} must be an ISO-8601 time with a time zone") from None


def currency(value: object) -> str:
    if not isinstance(value, str) or not _CURRENCY.fullmatch(value.strip().upper()):
        raise InvalidInvoice("currency must be a 3-letter ISO 4217 code")
    return value.strip().upper()


def siret(value: object) -> str | None:
    """14 digits (spaces tolerated, as printed on invoices), or None."""
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise InvalidInvoice("supplier.siret must be a string")
    digits = value.replace(" ", "")
    if not _SIRET.fullmatch(digits):
        raise InvalidInvoice("supplier.siret must be 14 digits")
    return digits


def iban(value: object) -> str | None:
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise InvalidInvoice("supplier.iban must be a string")
    compact = value.replace(" ", "").upper()
    if not _IBAN.fullmatch(compact):
        raise InvalidInvoice("supplier.iban is not an IBAN")
    return compact


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
    """`invoice` when it has exactly the canonical shape; `InvalidInvoice` otherwise.

    Adapters build invoices with the helpers above; this is the last gate before
    invoices-service, independent of any provider.
    """
    identifier = invoice.get("invoice_platform_id")
    try:
        if set(invoice) != set(FIELDS):
            raise InvalidInvoice("the canonical invoice has missing or extra fields")
        text(identifier, "invoice_platform_id")
        text(invoice["number"], "number")
        date(invoice["issue_date"], "issue_date")
        date(invoice["due_date"], "due_date", required=False)
        currency(invoice["currency"])
        amounts = invoice["amounts"]
        if not isinstance(amounts, dict) or set(amounts) != {"ht", "tva", "ttc"}:
            raise InvalidInvoice("amounts must hold ht, tva and ttc")
        for name, value in amounts.items():
            decimal_string(value, f"amounts.{name}")
        _check_rows(invoice["vat_lines"], "vat_lines", ("rate", "base", "amount"), (), MAX_VAT_LINES)
        _check_rows(invoice["lines"], "lines", ("quantity", "unit_price", "total_excl_tax"), ("label",), MAX_LINES)
        supplier = invoice["supplier"]
        if not isinstance(supplier, dict) or set(supplier) != {"platform_id", "name", "siret", "iban"}:
            raise InvalidInvoice("supplier must hold platform_id, name, siret and iban")
        text(supplier["platform_id"], "supplier.platform_id", required=False)
        text(supplier["name"], "supplier.name")
        siret(supplier["siret"])
        iban(supplier["iban"])
        text(invoice["order_reference"], "order_reference", required=False)
        text(invoice["provider_status"], "provider_status")
        if not isinstance(invoice["cancelled"], bool):
            raise InvalidInvoice("cancelled must be a boolean")
        timestamp(invoice["provider_created_at"], "provider_created_at")
        timestamp(invoice["provider_updated_at"], "provider_updated_at")
        if not isinstance(invoice["raw"], dict):
            raise InvalidInvoice("raw must be the provider's object")
        try:
            size = len(json.dumps(invoice, separators=(",", ":"), allow_nan=False))
        except (TypeError, ValueError):
            raise InvalidInvoice("the invoice is not plain JSON") from None
        if size > MAX_INVOICE_BYTES:
            raise InvalidInvoice(f"the invoice is larger than {MAX_INVOICE_BYTES} bytes")
    except InvalidInvoice as exc:
        exc.invoice_id = identifier if isinstance(identifier, str) else None
        raise
    return invoice


def _check_rows(rows: object, field: str, decimals: tuple[str, ...], texts: tuple[str, ...], limit: int) -> None:
    if rows is None:
        return
    if not isinstance(rows, list):
        raise InvalidInvoice(f"{field} must be a list")
    if len(rows) > limit:
        raise InvalidInvoice(f"{field} has more than {limit} entries")
    for index, row in enumerate(rows):
        if not isinstance(row, dict) or set(row) != set(decimals) | set(texts):
            raise InvalidInvoice(f"{field}[{index}] must hold {', '.join(texts + decimals)}")
        for name in decimals:
            decimal_string(row[name], f"{field}[{index}].{name}")
        for name in texts:
            text(row[name], f"{field}[{index}].{name}")
