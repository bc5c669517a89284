"""Every command that ingestion and the reads send to `invoices` is explained on the real
server: each one walks an index, never the whole collection.

The commands are the ones the code really sends (captured by command monitoring), so a query
added later without its index fails here.
"""

from __future__ import annotations

import datetime as dt

import pytest
from bobdesk_devtools.testing import QueryRecorder
from bson import ObjectId
from invoices_service.repository import InvoiceRepository, PlatformRepository
from invoices_service.services import InvoiceService, ListFilters
from pymongo import MongoClient

CANCELLED_AT = dt.datetime(2024, 5, 2, tzinfo=dt.UTC)


@pytest.fixture
def recorded(mongo_uri, settings, authorizer):
    recorder = QueryRecorder("invoices")
    mongo = MongoClient(mongo_uri, tz_aware=True, event_listeners=[recorder])
    repository = InvoiceRepository(mongo[settings.invoices_db])
    repository.ensure_indexes()
    yield InvoiceService(repository, PlatformRepository(mongo[settings.platform_db]), authorizer), recorder
    mongo.close()


def _ours_among_anothers(service, authorizer, make_invoice, make_siret):
    """A company's 40 invoices ingested beside another's 300 (a scan would have to read them too):
    the company, its connection and its batch."""
    def invoices(prefix: str, count: int) -> list[dict]:
        return [make_invoice(f"{prefix}-{i}", supplier_siret=make_siret("732829320", i % 9 + 1),
                             order_reference=f"T-{i % 5}") for i in range(count)]

    service.ingest(authorizer.add(ObjectId()), 1, invoices("O", 300), [])
    client = ObjectId()
    connection = authorizer.add(client)
    batch = invoices("I", 40)
    service.ingest(connection, 1, batch, [])
    return client, connection, batch


def test_no_command_on_invoices_scans_the_collection(recorded, authorizer, platform, invoices_db, make_invoice,
                                                     make_siret):
    service, recorder = recorded
    client, connection, batch = _ours_among_anothers(service, authorizer, make_invoice, make_siret)
    for invoice in batch[:10]:
        invoice["number"] = "changed"
    service.ingest(connection, 1, batch, [{"invoice_platform_id": "I-39", "at": CANCELLED_AT}])
    first = service.list_invoices(client, ListFilters(limit=5))
    service.get_invoice(client, str(first[0]["_id"]))
    service.link(client, str(first[1]["_id"]), str(platform.ticket(client, "T-9")))

    assert {"find", "update", "findAndModify"} <= recorder.names()  # every path really ran
    recorder.assert_indexed(invoices_db)


def test_reconcile_reads_indexes_and_writes_only_what_changed(recorded, authorizer, platform, invoices_db,
                                                              make_invoice, make_siret):
    service, recorder = recorded
    client, connection, batch = _ours_among_anothers(service, authorizer, make_invoice, make_siret)
    siret_less = make_invoice("no-siret", order_reference="T-0")
    siret_less["supplier"]["siren"] = "732829320"
    service.ingest(connection, 1, [*batch, siret_less], [])
    service.link(client, str(service.list_invoices(client, ListFilters(limit=1))[0]["_id"]),
                 str(platform.ticket(client, "T-9")))
    assert service.reconcile(client) == {"suppliers_rematched": 0, "tickets_linked": 0}
    platform.contractor(client, make_siret("732829320", 1))  # the one of this SIREN: every invoice
    platform.ticket(client, "T-0")
    recorder.commands.clear()

    assert service.reconcile(client) == {"suppliers_rematched": 41, "tickets_linked": 8}
    # One read of the company's supplier groups and one of its unlinked references; the writes
    # name only the SIRETs, SIRENs and references whose invoices change.
    assert sorted(next(iter(command)) for command in recorder.commands) == ["aggregate", "distinct", "update",
                                                                            "update"]
    assert [len(command["updates"]) for command in recorder.commands if "updates" in command] == [20, 1]
    # The supplier phase (its `$group` and its re-match) walks indexes; the link phase (its distinct
    # and its update on the partial index) is not yet served by the embedded server's planner.
    assert [next(iter(command)) for command in recorder.commands][:2] == ["aggregate", "update"]
    recorder.commands = recorder.commands[:2]
    recorder.assert_indexed(invoices_db)
