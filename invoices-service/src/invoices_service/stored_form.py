"""The stored form of a canonical invoice (part of the repository layer): exact amounts as Decimal128,
dates as UTC datetimes truncated to the millisecond MongoDB keeps, the raw payload as JSON text."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping

from bobdesk_shared.timeutil import parse_iso

from .amounts import decimal128
from .domain import CanonicalInvoice


def _day(value: str | None) -> dt.datetime | None:
    if value is None:
        return None
    day = dt.date.fromisoformat(value)
    return dt.datetime(day.year, day.month, day.day, tzinfo=dt.UTC)


def _instant(value: str) -> dt.datetime:
    parsed = parse_iso(value)  # MongoDB keeps milliseconds
    return parsed.replace(microsecond=parsed.microsecond // 1000 * 1000)


def _decimals(row: Mapping, names: tuple[str, ...]) -> dict:
    return {name: decimal128(row[name]) for name in names}


def stored_content(invoice: CanonicalInvoice) -> dict:
    """The stored fields of a canonical invoice: exact amounts as Decimal128, dates as UTC datetimes,
    the raw payload as JSON text (provider keys may hold "$" or ".", not storable as field names
    everywhere; a mapping fix re-maps it without re-fetching)."""
    data, supplier = invoice.data, invoice.data["supplier"]
    return {
        "invoice_platform_id": data["invoice_platform_id"],
        "number": data["number"],
        "issue_date": _day(data["issue_date"]),
        "due_date": _day(data["due_date"]),
        "currency": data["currency"],
        "amounts": _decimals(data["amounts"], ("ht", "tva", "ttc")),
        "vat_lines": None if data["vat_lines"] is None else [
            _decimals(row, ("rate", "base", "amount")) for row in data["vat_lines"]],
        "lines": None if data["lines"] is None else [
            {"label": row["label"], **_decimals(row, ("quantity", "unit_price", "total_excl_tax"))}
            for row in data["lines"]],
        # An invalid SIRET is kept as received, with no SIREN (it matches nothing).
        "supplier": {"platform_id": supplier["platform_id"], "name": supplier["name"], "siret": supplier["siret"],
                     "siren": invoice.siren, "iban": supplier["iban"]},
        "order_reference": data["order_reference"],
        "provider_status": data["provider_status"],
        "provider_cancelled": data["cancelled"],
        "provider_created_at": _instant(data["provider_created_at"]),
        "provider_updated_at": _instant(data["provider_updated_at"]),
        "raw": invoice.raw_text,
    }
