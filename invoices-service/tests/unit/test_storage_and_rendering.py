"""The stored form of a canonical invoice (stored_form.py) and what clients see of it (api/rendering.py);
tests/integration/test_rendered_shape.py holds the rendering equal to the OpenAPI document."""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal

from bson import Decimal128, ObjectId
from invoices_service.api.rendering import render_page, render_single
from invoices_service.domain import canonical_invoice
from invoices_service.stored_form import stored_content

ACME = "73282932000074"


def test_the_stored_form_of_every_field(make_invoice):
    content = stored_content(canonical_invoice(make_invoice(
        "YZ-1", supplier_siret=ACME, order_reference="T-1",
        amounts={"ht": "12345678901234.56", "tva": "0.10", "ttc": "12345678901234.66"})))
    assert content["invoice_platform_id"] == "YZ-1"
    assert content["issue_date"] == dt.datetime(2024, 3, 12, tzinfo=dt.UTC)
    assert content["due_date"] == dt.datetime(2024, 4, 12, tzinfo=dt.UTC)
    assert content["amounts"]["ht"] == Decimal128("12345678901234.56")
    assert content["amounts"]["tva"] == Decimal128("0.10")
    assert content["vat_lines"] == [{"rate": Decimal128("20.0"), "base": Decimal128("1000.00"),
                                     "amount": Decimal128("200.00")}]
    assert content["lines"][0]["label"] == "Repair"
    assert content["supplier"] == {"platform_id": "SUP-77", "name": "ACME", "siret": ACME, "siren": "732829320",
                                   "iban": "FR7630006000011234567890189"}
    assert content["order_reference"] == "T-1"
    assert content["provider_created_at"] == dt.datetime(2024, 3, 12, 8, tzinfo=dt.UTC)
    assert content["provider_cancelled"] is False
    assert json.loads(content["raw"]) == {"id": "YZ-1", "status": "validated"}


def test_an_invalid_siret_is_stored_as_received_without_siren(make_invoice):
    content = stored_content(canonical_invoice(make_invoice(supplier_siret="12345678900011")))
    assert content["supplier"]["siret"] == "12345678900011"
    assert content["supplier"]["siren"] is None


def test_times_keep_milliseconds_only(make_invoice):
    content = stored_content(canonical_invoice(make_invoice(provider_updated_at="2024-03-12T10:00:00.123456+02:00")))
    assert content["provider_updated_at"] == dt.datetime(2024, 3, 12, 8, 0, 0, 123000, tzinfo=dt.UTC)


def test_render_is_exact_and_in_the_documented_order():
    doc = {
        "_id": ObjectId("64a1f3c89ab7e72a4fb4ae01"), "provider": "yooz", "invoice_platform_id": "YZ-1",
        "number": 'FA "1" é', "issue_date": dt.datetime(2024, 3, 12, tzinfo=dt.UTC), "due_date": None,
        "currency": "EUR",
        "amounts": {"ht": Decimal128("12345678901234.56"), "tva": Decimal128("0.10"),
                    "ttc": Decimal128("12345678901234.66")},
        "supplier": {"name": "ACME", "siret": None}, "state": "ticket_unmatched", "ticket_id": None,
        "supplier_id": ObjectId("64a1f3c89ab7e72a4fb4ae02"),
        "created_at": dt.datetime(2024, 3, 12, 8, 0, 0, 123000, tzinfo=dt.UTC),
        "updated_at": dt.datetime(2024, 3, 12, 8, tzinfo=dt.UTC),
    }
    text = render_single(doc)
    assert '"ht":12345678901234.56,"tva":0.10,"ttc":12345678901234.66' in text
    invoice = json.loads(text, parse_float=Decimal)["invoice"]
    assert list(invoice) == ["id", "provider", "invoice_platform_id", "number", "issue_date", "due_date",
                             "currency", "amounts", "supplier", "state", "ticket_id", "supplier_id",
                             "created_at", "updated_at"]
    assert invoice["amounts"]["ht"] == Decimal("12345678901234.56")
    assert invoice["number"] == 'FA "1" é'
    assert invoice["issue_date"] == "2024-03-12T00:00:00.000Z"
    assert invoice["created_at"] == "2024-03-12T08:00:00.123Z"
    assert invoice["due_date"] is None and invoice["ticket_id"] is None
    assert invoice["supplier_id"] == "64a1f3c89ab7e72a4fb4ae02"
    assert json.loads(render_page([doc]))["cursor"] == "64a1f3c89ab7e72a4fb4ae01"
    assert json.loads(render_page([])) == {"cursor": None, "invoices": []}
