"""The canonical invoice contract: every rule, the messages a 400 carries, and the fast path agreeing
with marshmallow on every input."""

from __future__ import annotations

import copy
import random

import marshmallow as ma
import pytest
from bobdesk_shared.canonical import EXAMPLE, MAX_LINES, MAX_VAT_LINES, CanonicalInvoiceSchema, _conforms

SCHEMA = CanonicalInvoiceSchema()
TEXT = "Not a non-empty printable string of at most 500 characters."
DECIMAL = "Not an exact decimal string (up to 18 digits and 10 decimals)."


def invoice(**changes) -> dict:
    data = copy.deepcopy(EXAMPLE)
    data.update(changes)
    return data


def errors(data) -> dict:
    with pytest.raises(ma.ValidationError) as caught:
        SCHEMA.load(data)
    return caught.value.messages


def test_the_example_loads_unchanged():
    assert SCHEMA.load(invoice()) == EXAMPLE
    assert SCHEMA.load(invoice(due_date=None, vat_lines=None, lines=None, order_reference=None,
                               supplier={"platform_id": None, "name": "A", "siret": None, "iban": None}))


def test_the_supplier_siren_is_optional_and_nine_digits():
    supplier = {**EXAMPLE["supplier"], "siret": None}
    assert SCHEMA.load(invoice(supplier={**supplier, "siren": "732829320"}))["supplier"]["siren"] == "732829320"
    assert SCHEMA.load(invoice(supplier={**supplier, "siren": None}))
    assert "siren" not in SCHEMA.load(invoice(supplier=supplier))["supplier"]
    assert errors(invoice(supplier={**supplier, "siren": "73282932"})) == {
        "supplier": {"siren": ["Not a SIREN (9 digits)."]}}


@pytest.mark.parametrize(("change", "expected"), [
    ({"amounts": {"ht": 1000.0, "tva": "200.00", "ttc": "1200.00"}},
     {"amounts": {"ht": [DECIMAL]}}),
    ({"amounts": {"ht": "1e3", "tva": "200.00", "ttc": "1200.00"}}, {"amounts": {"ht": [DECIMAL]}}),
    ({"amounts": {"ht": "1" * 19, "tva": "200.00", "ttc": "1200.00"}}, {"amounts": {"ht": [DECIMAL]}}),
    ({"amounts": {"ht": "1", "tva": "2"}}, {"amounts": {"ttc": ["Missing field."]}}),
    ({"issue_date": "2024-02-30"}, {"issue_date": ["Not a YYYY-MM-DD date."]}),
    ({"issue_date": None}, {"issue_date": ["Missing value."]}),
    ({"due_date": "12/04/2024"}, {"due_date": ["Not a YYYY-MM-DD date."]}),
    ({"currency": "eur"}, {"currency": ["Not a 3-letter upper-case ISO 4217 code."]}),
    ({"number": ""}, {"number": [TEXT]}),
    ({"number": "x" * 501}, {"number": [TEXT]}),
    ({"number": "A\x00B"}, {"number": [TEXT]}),
    ({"number": 12}, {"number": [TEXT]}),
    ({"cancelled": "false"}, {"cancelled": ["Not a boolean (true or false)."]}),
    ({"provider_created_at": "2024-03-12T08:00:00"},
     {"provider_created_at": ["Not an ISO-8601 time with a time zone."]}),
    ({"raw": "text"}, {"raw": ["Not an object."]}),
    ({"supplier": {"name": "ACME"}}, {"supplier": {"platform_id": ["Missing field."], "siret": ["Missing field."],
                                                   "iban": ["Missing field."]}}),
    ({"supplier": {**EXAMPLE["supplier"], "siret": "123 456 789 00011"}},
     {"supplier": {"siret": ["Not a SIRET (14 digits)."]}}),
    ({"supplier": {**EXAMPLE["supplier"], "iban": "fr7630006000011234567890189"}},
     {"supplier": {"iban": ["Not an IBAN (upper case, no spaces)."]}}),
    ({"lines": [{"label": "x"}]}, {"lines": {0: {"quantity": ["Missing field."], "unit_price": ["Missing field."],
                                                "total_excl_tax": ["Missing field."]}}}),
    ({"vat_lines": "none"}, {"vat_lines": ["Not a valid list."]}),
    ({"vat_lines": [EXAMPLE["vat_lines"][0]] * (MAX_VAT_LINES + 1)},
     {"vat_lines": [f"More than {MAX_VAT_LINES} rows."]}),
    ({"lines": [EXAMPLE["lines"][0]] * (MAX_LINES + 1)}, {"lines": [f"More than {MAX_LINES} rows."]}),
    ({"unexpected": 1}, {"unexpected": ["Unknown field."]}),
])
def test_each_rule_names_its_field(change, expected):
    assert errors(invoice(**change)) == expected


def test_missing_fields_are_named():
    data = invoice()
    del data["raw"]
    assert errors(data) == {"raw": ["Missing field."]}
    assert errors([]) == {"_schema": ["Invalid input type."]}


def _corrupt(rng: random.Random, data: dict) -> dict:
    data = copy.deepcopy(data)
    key = rng.choice(list(data))
    roll = rng.random()
    if roll < 0.15:
        del data[key]
    elif roll < 0.3:
        data[key] = None
    elif roll < 0.4:
        data["extra"] = 1
    elif roll < 0.6 and isinstance(data[key], dict) and data[key]:
        data[key] = _corrupt(rng, data[key])
    elif roll < 0.7 and isinstance(data[key], list) and data[key]:
        data[key] = [_corrupt(rng, data[key][0]), *data[key][1:]]
    else:
        data[key] = rng.choice(["", "x" * 501, 1, 1.5, True, [], {}, "2024-02-30", "EUR", "1.5", "12345678901234",
                                "2024-03-12T08:00:00Z", "FR7630006000011234567890189", "732829320"])
    return data


def test_the_fast_path_accepts_exactly_what_marshmallow_accepts():
    rng = random.Random(7)
    full = invoice(supplier={**EXAMPLE["supplier"], "siren": "732829320"})
    accepted = refused = 0
    for _ in range(3000):
        data = _corrupt(rng, _corrupt(rng, full) if rng.random() < 0.3 else full)
        try:
            ma.Schema.load(SCHEMA, data)  # marshmallow's own machinery, bypassing the fast path
            valid = True
        except ma.ValidationError:
            valid = False
        assert _conforms(SCHEMA, data) is valid, data
        accepted, refused = accepted + valid, refused + (not valid)
    assert accepted > 100 and refused > 1000
