"""Pennylane supplier invoices (with their Supplier merged) -> canonical invoices, and the refusals."""

import copy
from decimal import Decimal

import pytest
from bobdesk_shared.canonical import CanonicalInvoiceSchema
from ingest_worker.canonical import InvalidInvoice
from ingest_worker.providers.http import ProviderHttp, RetryPolicy
from ingest_worker.providers.pennylane import UNKNOWN_SUPPLIER, PennylaneAdapter

DOCUMENT = {
    "id": 123,
    "invoice_number": "F20230001",
    "label": "Plomberie - fuite local technique",
    "date": "2023-08-30",
    "deadline": "2023-09-30",
    "currency": "EUR",
    "currency_amount_before_tax": "196.32",
    "currency_tax": "34.0",
    "currency_amount": "230.32",
    "supplier": {"id": 456, "name": "ACME", "establishment_no": "44306184100013", "reg_no": "443061841",
                 "vat_number": "FR64443061841", "iban": "FR76 3000 6000 0112 3456 7890 189"},
    "payment_status": "to_be_processed",
    "archived_at": None,
    "created_at": "2023-08-30T10:08:08.146343Z",
    "updated_at": "2023-08-30T10:08:08.146343Z",
}


@pytest.fixture(scope="module")
def adapter():
    adapter = PennylaneAdapter("http://pennylane.invalid", ProviderHttp("pennylane", timeout=(1, 1),
                                                                         policy=RetryPolicy()))
    yield adapter
    adapter.close()


def document(**overrides):
    return {**copy.deepcopy(DOCUMENT), **overrides}


def supplier(**overrides):
    return {**DOCUMENT["supplier"], **overrides}


def test_a_supplier_invoice_maps_to_the_canonical_invoice(adapter):
    invoice = adapter.to_canonical(document())
    assert CanonicalInvoiceSchema().load(invoice) == invoice
    assert {k: invoice[k] for k in ("invoice_platform_id", "number", "issue_date", "due_date", "currency")} == {
        "invoice_platform_id": "123", "number": "F20230001", "issue_date": "2023-08-30",
        "due_date": "2023-09-30", "currency": "EUR"}
    assert invoice["amounts"] == {"ht": "196.32", "tva": "34.0", "ttc": "230.32"}
    assert invoice["supplier"] == {"platform_id": "456", "name": "ACME", "siret": "44306184100013", "siren": None,
                                   "iban": "FR7630006000011234567890189"}
    assert (invoice["order_reference"], invoice["vat_lines"], invoice["lines"]) == (None, None, None)
    assert (invoice["provider_status"], invoice["cancelled"]) == ("to_be_processed", False)
    assert invoice["provider_updated_at"] == "2023-08-30T10:08:08.146Z"
    assert invoice["raw"]["supplier"]["name"] == "ACME"


def test_a_siren_only_supplier_gives_its_siren_for_matching_and_no_siret(adapter):
    invoice = adapter.to_canonical(document(supplier=supplier(establishment_no=None, reg_no="443 061 841")))
    assert (invoice["supplier"]["siret"], invoice["supplier"]["siren"]) == (None, "443061841")


@pytest.mark.parametrize("reg_no", [None, "", "12345", "44306184X", 443061841])
def test_an_unusable_siren_matches_nothing_but_keeps_the_invoice(adapter, reg_no):
    invoice = adapter.to_canonical(document(supplier=supplier(establishment_no=None, reg_no=reg_no)))
    assert (invoice["supplier"]["siret"], invoice["supplier"]["siren"]) == (None, None)


def test_an_archived_invoice_is_cancelled(adapter):
    assert adapter.to_canonical(document(archived_at="2023-09-01T00:00:00Z"))["cancelled"] is True


def test_an_invoice_without_supplier_or_whose_supplier_is_gone_keeps_a_placeholder_name(adapter):
    assert adapter.to_canonical(document(supplier=None))["supplier"] == {
        "platform_id": None, "name": UNKNOWN_SUPPLIER, "siret": None, "siren": None, "iban": None}
    assert adapter.to_canonical(document(supplier={"id": 9}))["supplier"]["platform_id"] == "9"


def test_json_numbers_parsed_as_decimals_stay_exact(adapter):
    invoice = adapter.to_canonical(document(currency_amount=Decimal("230.320"), currency_tax=34))
    assert invoice["amounts"] == {"ht": "196.32", "tva": "34", "ttc": "230.320"}


@pytest.mark.parametrize("overrides", [
    {"currency_amount": "230,32"}, {"currency_tax": 1.5}, {"currency_amount_before_tax": None},
    {"date": "30/08/2023"}, {"date": "2023-02-30"}, {"deadline": "soon"}, {"id": "123"}, {"id": True},
    {"payment_status": "lost"}, {"supplier": "ACME"}, {"invoice_number": None}, {"currency": "euro"},
    {"updated_at": "yesterday"},
])
def test_a_bad_document_is_refused_with_a_reason(adapter, overrides):
    with pytest.raises(InvalidInvoice) as refused:
        adapter.to_canonical(document(**overrides))
    assert refused.value.reason
    if not isinstance(overrides.get("id", 0), (str, bool)):
        assert refused.value.invoice_id == "123"


def test_a_non_object_is_refused(adapter):
    with pytest.raises(InvalidInvoice):
        adapter.to_canonical([DOCUMENT])
