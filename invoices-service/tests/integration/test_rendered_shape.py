"""The rendered invoice (api/rendering.py, hand-written for speed) held equal to the OpenAPI response
schema a client generates code from: every field, in order, its type, and null only where documented."""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal

import pytest
from bson import Decimal128, ObjectId
from invoices_service.api.rendering import render_page, render_single

ACME = "73282932000074"


FULL = {
    "_id": ObjectId(), "provider": "yooz", "invoice_platform_id": "YZ-1", "number": "FA-1",
    "issue_date": dt.datetime(2024, 3, 12, tzinfo=dt.UTC), "due_date": dt.datetime(2024, 4, 12, tzinfo=dt.UTC),
    "currency": "EUR", "amounts": {"ht": Decimal128("1.00"), "tva": Decimal128("0.20"), "ttc": Decimal128("1.20")},
    "supplier": {"name": "ACME", "siret": ACME}, "state": "linked", "ticket_id": ObjectId(),
    "supplier_id": ObjectId(), "created_at": dt.datetime(2024, 3, 12, tzinfo=dt.UTC),
    "updated_at": dt.datetime(2024, 3, 12, tzinfo=dt.UTC),
}
# Everything the stored model allows to be missing or null.
SPARSE = {**FULL, "due_date": None, "supplier": {"name": "ACME", "siret": None}, "state": "ticket_unmatched",
          "ticket_id": None, "supplier_id": None}

JSON_TYPES = {"string": str, "number": (int, Decimal), "integer": int, "object": dict, "array": list,
              "boolean": bool}


@pytest.fixture
def spec(http):
    return http.get("/openapi.json").get_json()


def resolve(spec: dict, schema: dict) -> dict:
    while "$ref" in schema:
        schema = spec["components"]["schemas"][schema["$ref"].rsplit("/", 1)[1]]
    if "allOf" in schema and len(schema["allOf"]) == 1:  # apispec's wrapper of a nullable reference
        return {**resolve(spec, schema["allOf"][0]), "nullable": schema.get("nullable", False)}
    return schema


def conforms(spec: dict, schema: dict, value, path: str) -> None:
    """`value` is exactly what `schema` documents: no field more or less, each of its type, null only
    where the schema says nullable."""
    schema = resolve(spec, schema)
    if value is None:
        assert schema.get("nullable") is True, f"{path} is null but not documented nullable"
        return
    assert isinstance(value, JSON_TYPES[schema["type"]]), f"{path}: {value!r} is not a {schema['type']}"
    if schema["type"] == "object":
        assert list(value) == list(schema["properties"]), path  # every field, in the documented order
        assert set(schema.get("required", ())) == set(schema["properties"]), f"{path}: fields not all required"
        for name, sub in schema["properties"].items():
            conforms(spec, sub, value[name], f"{path}.{name}")
    elif schema["type"] == "array":
        for index, item in enumerate(value):
            conforms(spec, schema["items"], item, f"{path}[{index}]")


def response_schema(spec: dict, path: str) -> dict:
    return spec["paths"][path]["get"]["responses"]["200"]["content"]["application/json"]["schema"]


@pytest.mark.parametrize("doc", [FULL, SPARSE], ids=["full", "sparse"])
@pytest.mark.parametrize("prefix", ["/api/v3.0/invoices", "/invoices"])
def test_the_rendered_invoice_is_the_documented_one(spec, doc, prefix):
    conforms(spec, response_schema(spec, prefix + "/{invoice_id}"), json.loads(render_single(doc),
                                                                               parse_float=Decimal), "invoice")
    conforms(spec, response_schema(spec, prefix), json.loads(render_page([doc, FULL]), parse_float=Decimal), "page")
    conforms(spec, response_schema(spec, prefix), json.loads(render_page([])), "empty page")


def test_a_shape_change_would_be_caught(spec):
    rendered = json.loads(render_single(FULL), parse_float=Decimal)
    rendered["invoice"]["extra"] = 1
    with pytest.raises(AssertionError):
        conforms(spec, response_schema(spec, "/invoices/{invoice_id}"), rendered, "invoice")
    rendered = json.loads(render_single(SPARSE), parse_float=Decimal)
    rendered["invoice"]["number"] = None
    with pytest.raises(AssertionError):
        conforms(spec, response_schema(spec, "/invoices/{invoice_id}"), rendered, "invoice")
