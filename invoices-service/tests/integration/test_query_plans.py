"""Every command that ingestion, reconcile and the reads send to `invoices` is explained on the real
server: each one walks an index, never the whole collection.

The commands are the ones the code really sends (captured by command monitoring), so a query
added later without its index fails here.
"""

from __future__ import annotations

import json

import pytest
from bson import ObjectId
from invoices_service.repository import InvoiceRepository, PlatformRepository
from invoices_service.services import InvoiceService, ListFilters
from pymongo import MongoClient, monitoring

EXPLAINABLE = {"find", "aggregate", "update", "delete", "findAndModify", "distinct", "count"}


class Recorder(monitoring.CommandListener):
    def __init__(self, collection: str):
        self.collection = collection
        self.commands: list[dict] = []

    def started(self, event):
        if event.command_name in EXPLAINABLE and event.command.get(event.command_name) == self.collection:
            command = {k: v for k, v in event.command.items() if k not in ("lsid", "$db", "txnNumber",
                                                                          "$clusterTime", "writeConcern")}
            self.commands.append(command)

    def succeeded(self, event):
        pass

    def failed(self, event):
        pass


def explained_plans(db, command: dict) -> list[str]:
    """The winning plan of `command`; for an update, of the find each statement's filter and hint
    make (the embedded server explains every update as a collection scan, whatever it runs)."""
    if "updates" in command:
        singles = [{"find": command["update"], "filter": statement["q"],
                    **({"hint": statement["hint"]} if "hint" in statement else {})}
                   for statement in command["updates"]]
    else:
        singles = [command]
    return [json.dumps(db.command("explain", single)["queryPlanner"]["winningPlan"], default=str)
            for single in singles]


@pytest.fixture
def recorded(mongo_uri, settings, authorizer):
    recorder = Recorder("invoices")
    mongo = MongoClient(mongo_uri, tz_aware=True, event_listeners=[recorder])
    repository = InvoiceRepository(mongo[settings.invoices_db])
    repository.ensure_indexes()
    yield InvoiceService(repository, PlatformRepository(mongo[settings.platform_db]), authorizer), recorder
    mongo.close()


def test_no_command_on_invoices_scans_the_collection(recorded, authorizer, platform, invoices_db, make_invoice,
                                                     make_siret):
    service, recorder = recorded
    client, other = ObjectId(), ObjectId()
    # Another company's invoices fill the collection: a scan would have to read them.
    other_connection = authorizer.add(other)
    service.ingest(other_connection, 1, [make_invoice(f"O-{i}", supplier_siret=make_siret("732829320", i % 9 + 1),
                                                      order_reference=f"T-{i % 5}") for i in range(300)], [])
    connection = authorizer.add(client)
    batch = [make_invoice(f"I-{i}", supplier_siret=make_siret("732829320", i % 9 + 1), order_reference=f"T-{i % 5}")
             for i in range(40)]
    service.ingest(connection, 1, batch, [])
    for invoice in batch[:10]:
        invoice["number"] = "changed"
    service.ingest(connection, 1, batch, [{"invoice_platform_id": "I-39", "at": "2024-05-02T00:00:00Z"}])
    # Contractors and tickets appear: reconcile re-matches suppliers and links references.
    supplier = platform.contractor(client, make_siret("732829320", 1))
    platform.ticket(client, "T-1", supplier)
    platform.ticket(client, "T-2")
    service.reconcile(client)
    first = service.list_invoices(client, ListFilters(limit=5))
    service.get_invoice(client, str(first[0]["_id"]))
    service.link(client, str(first[1]["_id"]), str(platform.ticket(client, "T-9")))

    names = {next(iter(command)) for command in recorder.commands}
    assert {"find", "aggregate", "update"} <= names, names  # the paths really ran
    for command in recorder.commands:
        for plan in explained_plans(invoices_db, command):
            assert "COLLSCAN" not in plan, (command, plan)
            assert "IXSCAN" in plan or "IDHACK" in plan or "EXPRESS" in plan, (command, plan)
