"""The invoice as clients see it, rendered to JSON text by hand: a list page renders 200 of them, and
amounts are written as JSON number literals with their stored digits (`0.10`, `12345678901234.56`),
never through a binary float. `schemas.InvoiceSchema` documents this shape; a test holds the two
equal (every field, its type and whether it may be null)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from json.encoder import encode_basestring_ascii as _json_string

from bson import Decimal128, ObjectId

from ..amounts import json_number


def _number(value: Decimal128 | None) -> str:
    # A JSON number literal with the stored digits: no binary float ever holds an amount.
    return "null" if value is None else json_number(value)


def _string(value: str | None) -> str:
    return "null" if value is None else _json_string(value)


# `bobdesk_shared.timeutil.iso_ms` as a JSON string, for the driver's dates only: they come back in
# UTC (naive, from the repository's public reads; no `tzinfo` option), so nothing is converted, and
# %-formatting is the fastest way to write them (milliseconds truncated, a year keeps its leading zeros).
_DATE = '"%04d-%02d-%02dT%02d:%02d:%02d.%03dZ"'


def _time(value: dt.datetime | None, written: dict[dt.datetime, str]) -> str:
    """`written` holds the dates of the page written so far: a page of 200 has 800 dates, and most
    repeat (an invoice never updated has `updated_at == created_at`, a day's invoices one issue date)."""
    if value is None:
        return "null"
    text = written.get(value)
    if text is None:
        text = written[value] = _DATE % (value.year, value.month, value.day, value.hour, value.minute,
                                         value.second, value.microsecond // 1000)
    return text


def _id(value: ObjectId | None) -> str:
    return "null" if value is None else f'"{value}"'


def render_invoice(doc: Mapping, dates: dict[dt.datetime, str]) -> str:
    """One invoice (a document read with `repository.PUBLIC_PROJECTION`) as JSON text; `dates` is
    the page's dates written so far."""
    amounts = doc.get("amounts") or {}
    supplier = doc.get("supplier") or {}
    return (
        f'{{"id":"{doc["_id"]}","provider":{_string(doc.get("provider"))},'
        f'"invoice_platform_id":{_string(doc.get("invoice_platform_id"))},"number":{_string(doc.get("number"))},'
        f'"issue_date":{_time(doc.get("issue_date"), dates)},"due_date":{_time(doc.get("due_date"), dates)},'
        f'"currency":{_string(doc.get("currency"))},'
        f'"amounts":{{"ht":{_number(amounts.get("ht"))},"tva":{_number(amounts.get("tva"))},'
        f'"ttc":{_number(amounts.get("ttc"))}}},'
        f'"supplier":{{"name":{_string(supplier.get("name"))},"siret":{_string(supplier.get("siret"))}}},'
        f'"state":{_string(doc.get("state"))},"ticket_id":{_id(doc.get("ticket_id"))},'
        f'"supplier_id":{_id(doc.get("supplier_id"))},'
        f'"created_at":{_time(doc.get("created_at"), dates)},"updated_at":{_time(doc.get("updated_at"), dates)}}}'
    )


def render_page(docs: list[Mapping]) -> str:
    """`{"cursor", "invoices"}`: the cursor is the last item's id; an empty page ends the list."""
    cursor = _id(docs[-1]["_id"]) if docs else "null"
    dates: dict[dt.datetime, str] = {}
    return f'{{"cursor":{cursor},"invoices":[{",".join(render_invoice(d, dates) for d in docs)}]}}'


def render_single(doc: Mapping) -> str:
    return f'{{"invoice":{render_invoice(doc, {})}}}'
