"""Yooz document -> canonical invoice: every field, exact amounts, optional fields, bad data."""

import json
from decimal import Decimal

import pytest
from bobdesk_shared.canonical import EXAMPLE, MAX_INVOICE_BYTES
from ingest_worker import canonical
from ingest_worker.canonical import InvalidInvoice
from ingest_worker.providers.http import ProviderHttp, RetryPolicy
from ingest_worker.providers.yooz import YoozAdapter


@pytest.fixture
def adapter():
    adapter = YoozAdapter("http://yooz.invalid", ProviderHttp("yooz", timeout=(1, 1), policy=RetryPolicy()))
    yield adapter
    adapter.close()


def test_every_field_is_mapped(adapter, yooz_document):
    document = yooz_document()
    # The shared example is the canonical form of this very document.
    assert adapter.to_canonical(document) == {**EXAMPLE, "raw": document}


def test_the_result_is_plain_json(adapter, yooz_document):
    invoice = adapter.to_canonical(yooz_document())
    assert json.loads(json.dumps(invoice)) == invoice


@pytest.mark.parametrize("status, cancelled", [
    ("to_validate", False), ("validated", False), ("paid", False), ("rejected", True), ("deleted", True),
])
def test_rejected_and_deleted_documents_are_cancelled(adapter, yooz_document, status, cancelled):
    invoice = adapter.to_canonical(yooz_document(status=status))
    assert invoice["provider_status"] == status
    assert invoice["cancelled"] is cancelled


def test_amounts_keep_every_digit(adapter, yooz_document):
    invoice = adapter.to_canonical(yooz_document(
        total_excl_tax="0.10", total_tax="0.02", total_incl_tax="99999999999999999.12",
        vat_lines=[{"rate": "5.5", "base": "0.1", "amount": "0.0055000001"}],
    ))
    assert invoice["amounts"] == {"ht": "0.10", "tva": "0.02", "ttc": "99999999999999999.12"}
    assert invoice["vat_lines"] == [{"rate": "5.5", "base": "0.1", "amount": "0.0055000001"}]


def test_json_numbers_parsed_as_decimals_stay_exact(adapter, yooz_document):
    # The adapter parses provider JSON with parse_float=Decimal; numbers never pass through a float.
    body = json.dumps(yooz_document()).replace('"1200.00"', "1200.10").replace('"200.00"', "200").encode()
    document = json.loads(body, parse_float=Decimal)
    invoice = adapter.to_canonical(document)
    assert invoice["amounts"]["ttc"] == "1200.10"
    assert invoice["amounts"]["tva"] == "200"
    assert invoice["raw"]["total_incl_tax"] == 1200.1  # raw is plain JSON again


@pytest.mark.parametrize("spelling, exact", [("+12.50", "12.50"), (" 7.00 ", "7.00"), ("-3.20", "-3.20"),
                                             ("1E+3", "1000"), (".5", "0.5"), ("42", "42")])
def test_other_exact_decimal_spellings(spelling, exact):
    assert canonical.decimal_string(spelling) == exact


def test_optional_fields_may_be_missing_or_null(adapter, yooz_document):
    document = yooz_document()
    for field in ("due_date", "vat_lines", "lines", "order_reference"):
        del document[field]
    document["supplier"] = {"name": "ACME"}
    invoice = adapter.to_canonical(document)
    assert invoice["due_date"] is None
    assert invoice["vat_lines"] is None and invoice["lines"] is None
    assert invoice["order_reference"] is None
    assert invoice["supplier"] == {"platform_id": None, "name": "ACME", "siret": None, "iban": None}

    nulls = yooz_document(due_date=None, vat_lines=None, lines=None, order_reference=None,
                          supplier={"id": None, "name": "ACME", "siret": None, "iban": None})
    assert adapter.to_canonical(nulls)["supplier"]["siret"] is None


def test_siret_and_iban_are_normalised(adapter, yooz_document):
    invoice = adapter.to_canonical(yooz_document(
        supplier={"id": "S", "name": "ACME", "siret": "123 456 789 00011", "iban": "fr76 3000 6000 0112 3456 7890 189"}
    ))
    assert invoice["supplier"]["siret"] == "12345678900011"
    assert invoice["supplier"]["iban"] == "FR7630006000011234567890189"


def test_times_are_rendered_with_milliseconds(adapter, yooz_document):
    invoice = adapter.to_canonical(yooz_document(created_at="2024-03-12T10:00:00.123456+02:00",
                                                 updated_at="2024-03-12T08:00:01.5Z"))
    assert invoice["provider_created_at"] == "2024-03-12T08:00:00.123Z"
    assert invoice["provider_updated_at"] == "2024-03-12T08:00:01.500Z"


MALFORMED = [
    ("id", None), ("id", ""), ("id", 12), ("number", None), ("issue_date", "12/03/2024"),
    ("issue_date", "2024-02-30"), ("due_date", "soon"), ("currency", "euro"), ("currency", None),
    ("total_excl_tax", None), ("total_excl_tax", 1000.0), ("total_tax", "1,5"), ("total_incl_tax", "NaN"),
    ("total_incl_tax", "Infinity"), ("total_incl_tax", True), ("total_excl_tax", "1" * 30),
    ("vat_lines", "20%"), ("vat_lines", [{"rate": "20.0", "base": "1000.00"}]), ("vat_lines", ["x"]),
    ("lines", [{"label": None, "quantity": "1", "unit_price": "1", "total_excl_tax": "1"}]),
    ("lines", [{"label": "x", "quantity": "one", "unit_price": "1", "total_excl_tax": "1"}]),
    ("supplier", None), ("supplier", "ACME"), ("supplier", {"id": "S"}),
    ("supplier", {"name": "ACME", "siret": "1234"}), ("supplier", {"name": "ACME", "siret": 12345678900011}),
    ("supplier", {"name": "ACME", "iban": "not an iban"}), ("supplier", {"name": "A\x00B"}),
    ("order_reference", ["T-1"]), ("status", "archived"), ("status", None), ("created_at", "yesterday"),
    ("updated_at", "2024-03-12T08:00:00"), ("updated_at", None), ("number", "x" * 501),
]


@pytest.mark.parametrize("field, value", MALFORMED)
def test_malformed_documents_are_rejected_with_a_reason(adapter, yooz_document, field, value):
    with pytest.raises(InvalidInvoice) as caught:
        adapter.to_canonical(yooz_document(**{field: value}))
    assert caught.value.reason
    expected_id = value if field == "id" and isinstance(value, str) else "YZ-2024-00871"
    if field != "id":
        assert caught.value.invoice_id == expected_id


@pytest.mark.parametrize("document", [None, [], "invoice", 7])
def test_a_document_that_is_not_an_object_is_rejected(adapter, document):
    with pytest.raises(InvalidInvoice):
        adapter.to_canonical(document)


def test_a_missing_field_is_rejected(adapter, yooz_document):
    for field in ("number", "issue_date", "currency", "total_tax", "supplier", "status", "created_at"):
        document = yooz_document()
        del document[field]
        with pytest.raises(InvalidInvoice):
            adapter.to_canonical(document)


def test_the_canonical_gate_refuses_extra_or_missing_keys(adapter, yooz_document):
    invoice = adapter.to_canonical(yooz_document())
    with pytest.raises(InvalidInvoice):
        canonical.validate({**invoice, "extra": 1})
    del invoice["raw"]
    with pytest.raises(InvalidInvoice):
        canonical.validate(invoice)


def test_nan_and_infinity_in_a_payload_are_rejected_not_crashing(adapter, yooz_document):
    from ingest_worker.providers.http import json_answer

    body = json.dumps(yooz_document()).replace('"200.00"', "NaN").encode()
    document = json_answer(body)
    with pytest.raises(InvalidInvoice):
        adapter.to_canonical(document)
    assert canonical.plain_json(document)["total_tax"] == "NaN"


def test_an_oversized_invoice_is_rejected(adapter, yooz_document):
    with pytest.raises(InvalidInvoice, match="larger"):
        adapter.to_canonical(yooz_document(notes="x" * (MAX_INVOICE_BYTES + 1)))
