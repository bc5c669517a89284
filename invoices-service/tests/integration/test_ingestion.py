"""Batch ingestion against the embedded server: idempotence, updates, cancellations, races, refusals."""

from __future__ import annotations

import threading

from bobdesk_devtools.testing import public_token, user_token
from bobdesk_shared.auth import INGEST_WORKER
from bobdesk_shared.errors import Conflict
from bson import ObjectId


def stored(invoices_db, platform_id):
    return invoices_db.invoices.find_one({"invoice_platform_id": platform_id})


def test_created_then_unchanged_on_replay(api, make_invoice, invoices_db):
    client = ObjectId()
    batch = [make_invoice("A"), make_invoice("B")]
    first = api.ingest(client, batch)
    assert (first["created"], first["updated"], first["unchanged"]) == (2, 0, 0)
    assert [r["outcome"] for r in first["results"]] == ["created", "created"]
    before = stored(invoices_db, "A")
    replay = api.ingest(client, batch)
    assert (replay["created"], replay["updated"], replay["unchanged"]) == (0, 0, 2)
    assert [r["id"] for r in replay["results"]] == [r["id"] for r in first["results"]]
    after = stored(invoices_db, "A")
    assert after["updated_at"] == before["updated_at"] and after["rev"] == before["rev"]
    assert invoices_db.invoices.count_documents({}) == 2


def test_stored_document_holds_the_whole_canonical_invoice(api, make_invoice, invoices_db, make_siret):
    client = ObjectId()
    api.ingest(client, [make_invoice("A", supplier_siret=make_siret("732829320"), order_reference="PO-1")])
    doc = stored(invoices_db, "A")
    for field in ("client", "connection", "provider", "invoice_platform_id", "number", "issue_date", "due_date",
                  "currency", "amounts", "vat_lines", "lines", "supplier", "order_reference", "supplier_id",
                  "ticket_id", "state", "manual_link", "raw", "content_hash", "created_at", "updated_at"):
        assert field in doc, field
    assert doc["client"] == client and doc["provider"] == "yooz"
    assert doc["supplier"]["siren"] == "732829320" and doc["supplier"]["iban"].startswith("FR76")
    assert str(doc["amounts"]["ttc"]) == "1200.00"
    assert doc["_id"].generation_time.replace(microsecond=0) == doc["created_at"].replace(microsecond=0)


def test_invisible_change_updates_without_moving_updated_at(api, make_invoice, invoices_db):
    client = ObjectId()
    api.ingest(client, [make_invoice("A")])
    before = stored(invoices_db, "A")
    answer = api.ingest(client, [make_invoice("A", provider_status="paid")])
    assert answer["updated"] == 1
    after = stored(invoices_db, "A")
    assert after["provider_status"] == "paid"
    assert after["updated_at"] == before["updated_at"]


def test_visible_change_moves_updated_at(api, make_invoice, invoices_db):
    client = ObjectId()
    api.ingest(client, [make_invoice("A")])
    before = stored(invoices_db, "A")
    answer = api.ingest(client, [make_invoice("A", amounts={"ht": "1.00", "tva": "0.20", "ttc": "1.20"})])
    assert answer["updated"] == 1
    after = stored(invoices_db, "A")
    assert after["updated_at"] > before["updated_at"]
    assert after["created_at"] == before["created_at"] and after["_id"] == before["_id"]


def test_same_platform_id_in_two_companies_or_providers_are_distinct(api, make_invoice, invoices_db):
    one, two = ObjectId(), ObjectId()
    api.ingest(one, [make_invoice("A")])
    assert api.ingest(two, [make_invoice("A")])["created"] == 1
    assert api.ingest(one, [make_invoice("A")], provider="other")["created"] == 1
    assert invoices_db.invoices.count_documents({}) == 3


def test_cancellations(api, make_invoice, invoices_db):
    client = ObjectId()
    api.ingest(client, [make_invoice("A"), make_invoice("B"), make_invoice("R", cancelled=True)])
    assert stored(invoices_db, "R")["state"] == "cancelled"
    answer = api.ingest(client, [], cancellations=[{"invoice_platform_id": "A", "at": "2024-03-13T00:00:00Z"},
                                                   {"invoice_platform_id": "nope", "at": "2024-03-13T00:00:00Z"}])
    assert answer["cancelled"] == 1
    assert [r["outcome"] for r in answer["results"]] == ["cancelled", "not_found"]
    assert stored(invoices_db, "A")["state"] == "cancelled"
    again = api.ingest(client, [], cancellations=[{"invoice_platform_id": "A", "at": "2024-03-13T00:00:00Z"}])
    assert again["results"][0]["outcome"] == "unchanged"
    # A replay of older provider data does not bring a deleted document back.
    api.ingest(client, [make_invoice("A")])
    assert stored(invoices_db, "A")["state"] == "cancelled"
    assert stored(invoices_db, "B")["state"] == "ticket_unmatched"


def test_concurrent_batches_never_duplicate(app, authorizer, make_invoice, invoices_db):
    service = app.extensions["invoice_service"]
    client = ObjectId()
    connection = authorizer.add(client)
    batch = [make_invoice(f"C-{i}") for i in range(40)]
    barrier = threading.Barrier(4)
    answers, errors = [], []

    def run():
        try:
            barrier.wait()
            answers.append(service.ingest(connection, 1, batch, []))
        except Exception as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    assert invoices_db.invoices.count_documents({"client": client}) == 40
    assert sum(answer["created"] for answer in answers) == 40
    ids = {r["invoice_platform_id"]: r["id"] for r in answers[0]["results"]}
    for answer in answers[1:]:
        assert {r["invoice_platform_id"]: r["id"] for r in answer["results"]} == ids


def test_a_lost_insert_race_is_retried_as_an_update(app, authorizer, make_invoice, invoices_db, monkeypatch):
    """The batch read nothing, but another batch inserted the invoice before the write."""
    service = app.extensions["invoice_service"]
    client = ObjectId()
    connection = authorizer.add(client)
    service.ingest(connection, 1, [make_invoice("A")], [])
    real_find = service.invoices.find_for_ingest
    calls = []

    def stale_first(*args):
        calls.append(args)
        return {} if len(calls) == 1 else real_find(*args)

    monkeypatch.setattr(service.invoices, "find_for_ingest", stale_first)
    answer = service.ingest(connection, 1, [make_invoice("A", number="NEW")], [])
    assert answer["updated"] == 1 and len(calls) == 2
    assert invoices_db.invoices.count_documents({"client": client}) == 1
    assert stored(invoices_db, "A")["number"] == "NEW"


def test_refusals(api, authorizer, make_invoice, invoices_db):
    client = ObjectId()
    connection = authorizer.add(client)
    assert api.batch(str(ObjectId()), [make_invoice()]).status_code == 404
    response = api.batch(connection, [make_invoice()], fence=-1)
    assert response.status_code == 409 and response.get_json()["error"]["code"] == "lease_lost"
    authorizer.refusal[connection] = Conflict("inactive", code="connection_inactive")
    assert api.batch(connection, [make_invoice()]).get_json()["error"]["code"] == "connection_inactive"
    assert invoices_db.invoices.count_documents({}) == 0


def test_not_canonical_is_400_with_details_and_nothing_stored(api, authorizer, make_invoice, invoices_db):
    connection = authorizer.add(ObjectId())
    response = api.batch(connection, [make_invoice(), make_invoice(currency="euro"), make_invoice(number=None)])
    assert response.status_code == 400
    error = response.get_json()["error"]
    assert error["code"] == "validation_error"
    assert error["details"]["invoices"] == {"1": {"currency": ["Not a 3-letter upper-case ISO 4217 code."]},
                                            "2": {"number": ["Missing value."]}}
    assert api.batch(connection, [make_invoice(), "x"]).get_json()["error"]["details"] == {
        "invoices": {"1": {"_schema": ["Invalid input type."]}}}
    # The service applies the contract's limits too (the worker's gate is not the only one).
    too_many_vat_lines = make_invoice(vat_lines=make_invoice()["vat_lines"] * 51)
    assert api.batch(connection, [too_many_vat_lines]).get_json()["error"]["details"] == {
        "invoices": {"0": {"vat_lines": ["More than 50 rows."]}}}
    bad_siret = make_invoice(supplier_siret="1234")
    assert api.batch(connection, [bad_siret]).get_json()["error"]["details"] == {
        "invoices": {"0": {"supplier": {"siret": ["Not a SIRET (14 digits)."]}}}}
    assert invoices_db.invoices.count_documents({}) == 0
    assert authorizer.calls == 0


def test_batch_envelope_is_checked(api, authorizer, make_invoice):
    connection = authorizer.add(ObjectId())
    bad = [
        {"connection": connection, "fence": True, "invoices": []},
        {"connection": "nope", "fence": 1, "invoices": []},
        {"connection": connection, "fence": 1},
        {"connection": connection, "fence": 1, "invoices": [], "extra": 1},
        {"connection": connection, "fence": 1, "invoices": [make_invoice() for _ in range(501)]},
        {"connection": connection, "fence": 1, "invoices": [], "cancellations": [{"invoice_platform_id": "A"}]},
    ]
    for body in bad:
        response = api.http.post("/internal/invoices/batch", json=body,
                                 headers={"Authorization": f"Bearer {api_service_token()}"})
        assert response.status_code == 400, body
    malformed = api.http.post("/internal/invoices/batch", data="{", content_type="application/json",
                              headers={"Authorization": f"Bearer {api_service_token()}"})
    assert malformed.status_code == 400


def api_service_token():
    from bobdesk_devtools.testing import service_token

    return service_token(INGEST_WORKER)


def test_internal_routes_take_only_service_tokens(api, authorizer, make_invoice):
    client = ObjectId()
    connection = authorizer.add(client)
    for token in (public_token(client), user_token(client), "garbage"):
        assert api.batch(connection, [make_invoice()], token=token).status_code == 401
        response = api.http.post("/internal/invoices/reconcile", json={"client": str(client)},
                                 headers={"Authorization": f"Bearer {token}"})
        assert response.status_code == 401
    assert api.http.post("/internal/invoices/batch", json={}).status_code == 401


def test_internal_routes_serve_only_the_ingest_worker(api, authorizer, make_invoice, invoices_db):
    from bobdesk_devtools.testing import service_token
    from bobdesk_shared.auth import INVOICES_SERVICE

    client = ObjectId()
    connection = authorizer.add(client)
    for name in (INVOICES_SERVICE, "connections-service", "test"):
        response = api.batch(connection, [make_invoice()], token=service_token(name))
        assert response.status_code == 403 and response.get_json()["error"]["code"] == "service_not_allowed"
        response = api.http.post("/internal/invoices/reconcile", json={"client": str(client)},
                                 headers={"Authorization": f"Bearer {service_token(name)}"})
        assert response.status_code == 403
    assert invoices_db.invoices.count_documents({}) == 0 and authorizer.calls == 0
